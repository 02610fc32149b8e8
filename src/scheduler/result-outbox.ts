/**
 * Results, from a finished run to the server: each is signed with the device's key, put in the
 * outbox in the same transaction that drops its lease (src/storage/work-store.ts), then posted;
 * one that could not be posted waits and is posted again (1 s, 2 s, 5 s, 15 s, then every minute),
 * and at once when the network may be back. Nothing is lost, and posting twice is harmless
 * (the server answers `duplicate`).
 */
import type { Lease, TaskManifest } from '../protocol/schema.ts';
import { outputDigests, resultSigningBytes } from '../protocol/results.ts';
import { toBase64 } from '../protocol/bytes.ts';
import type { WorkerOutcome } from '../protocol/worker-api.ts';
import type { OutboxEntry, StoredOutput, StoredSubmission } from '../storage/db.ts';
import type { Say } from './activity-log.ts';
import { Timer, type Clock } from './clock.ts';

export interface OutboxStore {
  /** Moves a finished lease's result into the outbox and drops the lease, atomically. */
  finish(submission: StoredSubmission, expiresAt: number): Promise<void>;
  dueResults(now: number): Promise<OutboxEntry[]>;
  outboxSchedule(): Promise<{ count: number; nextAttemptAt: number | null }>;
  delivered(leaseId: string): Promise<void>;
  retryLater(entry: OutboxEntry, nextAttemptAt: number): Promise<void>;
}

export interface ResultPoster {
  submitResult(result: StoredSubmission): Promise<'accepted' | 'duplicate'>;
}

export interface ResultSigner {
  deviceId: string;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** Waits between posting attempts of one result; the last repeats. */
export const RESULT_RETRY_MS = [1000, 2000, 5000, 15000, 60000];
/**
 * The server failing on one result (a 5xx) this many times: the result is given up, and the log
 * says so. A server that is down or restarting says 503 and recovers in seconds to minutes; one
 * that keeps failing on a result will not take it (issue #13: a malformed result once got 500
 * forever, and the client posted it again forever). Network failures never count: offline, a
 * result waits as long as it takes.
 */
export const MAX_SERVER_ERRORS = 5;

export interface FinishedRun {
  lease: Lease;
  manifest: TaskManifest;
  outcome: WorkerOutcome;
  fetchMs: number;
  compileMs: number;
}

export class ResultOutbox {
  private flushing: Promise<void> | null = null;
  /** Posting nothing (hold()): results wait in the outbox until release(). */
  private held = false;
  private readonly retry: Timer;
  /** Results on this device that the server does not have yet. */
  unsent = 0;

  /**
   * @param onChange the unsent count changed
   * @param onDelivered a result reached the server (the credit it earns is worth asking for)
   */
  constructor(
    private readonly store: OutboxStore,
    private readonly server: ResultPoster,
    private readonly signer: ResultSigner,
    private readonly clock: Clock,
    private readonly say: Say,
    private readonly onChange: () => void = () => undefined,
    private readonly onDelivered: () => void = () => undefined,
  ) {
    this.retry = new Timer(clock, () => void this.flush());
  }

  /** Reads how many results an earlier session left, and posts them. */
  async restore(): Promise<void> {
    this.unsent = (await this.store.outboxSchedule()).count;
    this.onChange();
    void this.flush();
  }

  /** Signs a run's result and puts it in the outbox (dropping its lease), then posts it. */
  async add({ lease, manifest, outcome, fetchMs, compileMs }: FinishedRun): Promise<void> {
    const claim = {
      leaseId: lease.leaseId,
      taskId: manifest.taskId,
      deviceId: this.signer.deviceId,
      exitCode: outcome.exitCode,
      truncated: outcome.truncated,
      error: outcome.error,
      timings: { fetchMs: round(fetchMs), compileMs: round(compileMs), runMs: round(outcome.runMs) },
      work: outcome.work,
    };
    // Signed over the outputs' hashes (made in the worker): the server checks them against what it receives.
    const outputs = outcome.digests ?? (await outputDigests(outcome));
    const signature = toBase64(await this.signer.sign(resultSigningBytes({ ...claim, outputs })));
    const submission: StoredSubmission = {
      ...claim,
      encoding: 'bytes',
      // A large output in the Blob the worker made; a small one as its bytes (WorkerOutcome.blobs).
      stdout: outcome.blobs.stdout ?? kept(outcome.stdout),
      stderr: outcome.blobs.stderr ?? kept(outcome.stderr),
      files: outcome.files.map((f, i) => ({ path: f.path, data: outcome.blobs.files[i] ?? kept(f.data) })),
      signature,
    };
    await this.store.finish(submission, manifest.expiresAt);
    this.unsent++;
    this.onChange();
    void this.flush();
  }

  /**
   * Posts nothing more from now on, until release(): the person withdrew their consent (the
   * embed's card), after which nothing may reach the server. Results, those waiting and those
   * finished later, stay in the outbox. A post already under way cannot be called back.
   */
  hold(): void {
    this.held = true;
    this.retry.cancel();
  }

  /** Posts again (consent given again), starting with what waited. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    void this.flush();
  }

  /**
   * Posts every result that is due; one flush at a time. Called after each result, on start, when
   * the network may be back (`ignoreBackoff`: post every waiting result now), and by its own timer.
   */
  flush(ignoreBackoff = false): Promise<void> {
    if (this.held) return this.flushing ?? Promise.resolve();
    if (!this.flushing) {
      this.flushing = this.flushDue(ignoreBackoff).finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async flushDue(ignoreBackoff: boolean): Promise<void> {
    this.retry.cancel();
    for (const entry of await this.store.dueResults(ignoreBackoff ? Infinity : this.clock.now())) {
      if (this.held) return; // held while this flush was posting: the rest wait (release() flushes them)
      if (!(await this.post(entry))) break; // the server is unreachable: the rest would fail the same way
    }
    // Read again, from keys only: results may have arrived while this flush was posting.
    const { count, nextAttemptAt } = await this.store.outboxSchedule();
    if (count !== this.unsent) {
      this.unsent = count;
      this.onChange();
    }
    if (nextAttemptAt !== null && !this.held) this.retry.arm(Math.max(250, nextAttemptAt - this.clock.now()));
  }

  /** Posts one result; false when the server could not be reached (it stays in the outbox). */
  private async post(entry: OutboxEntry): Promise<boolean> {
    try {
      await this.server.submitResult(entry.submission);
      await this.store.delivered(entry.leaseId);
      this.onDelivered();
      return true;
    } catch (error) {
      const status = (error as { status?: number }).status ?? 0;
      // A 4xx other than 408/429 is the server's ruling on this result: posting again cannot change it.
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        this.say('error', `The server did not take the result of ${entry.submission.taskId}: ${(error as Error).message}`);
        await this.store.delivered(entry.leaseId);
        return true;
      }
      const serverErrors = (entry.serverErrors ?? 0) + (status >= 500 ? 1 : 0);
      if (serverErrors >= MAX_SERVER_ERRORS) {
        this.say('error', `The server failed on the result of ${entry.submission.taskId} ${serverErrors} times (${(error as Error).message}): it is given up.`);
        await this.store.delivered(entry.leaseId);
        return true;
      }
      const wait = RESULT_RETRY_MS[Math.min(entry.attempts, RESULT_RETRY_MS.length - 1)]!;
      await this.store.retryLater({ ...entry, serverErrors }, this.clock.now() + wait);
      return false;
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** A small output's bytes as the outbox keeps them: a buffer of their own (IndexedDB would store all of a larger one a view sits in). */
function kept(bytes: Uint8Array): StoredOutput {
  return (bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice()) as Uint8Array<ArrayBuffer>;
}
