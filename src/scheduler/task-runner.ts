/**
 * One lease, from its envelope to its answer, on one worker slot: prepare it (verify, fetch,
 * compile: the TaskPreparer), run it with its checkpoint if it keeps one, and answer it. Every
 * lease ends one of these ways:
 *  - answered: a signed result is in the outbox (a program result, a run error, or this device's
 *    own failure, code `device`);
 *  - refused: the task failed a check, and the refusal is reported;
 *  - cut short (Stop, or a pause where the run cannot pause in place): it runs again first;
 *  - waiting: its inputs cannot be fetched now;
 *  - dropped: its task needs no result any more (finished elsewhere).
 */
import { CHECKPOINT_DIR } from '../protocol/api.ts';
import { isDeterministic, type Lease, type RefusalReason, type TaskManifest } from '../protocol/schema.ts';
import { failedOutcome, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';
import { REFUSAL_TEXT } from '../protocol/verify.ts';
import type { RunProgress, Throttle } from '../protocol/throttle.ts';
import type { RefusalClaim } from '../protocol/device-signing.ts';
import type { Prepared, PrepareProgress, ReadyTask } from './prepare.ts';
import type { LeaseProgress } from './lease-keeper.ts';
import type { Say } from './activity-log.ts';
import type { Clock } from './clock.ts';
import type { FinishedRun } from './result-outbox.ts';
import { RunCancelled } from './run-cancelled.ts';

/** What a run needs of a worker slot (worker-slot.ts; tests pass fakes). */
export interface TaskSlot {
  /**
   * Hands the job's stdin and files to the run (WorkerSlot transfers their buffers to its worker,
   * detaching them here): the caller gives bytes nothing else holds, as a prepare gives each run
   * its own (the prepare worker's copies, src/scheduler/prepare-worker.ts) and a checkpoint read
   * is a fresh copy from storage.
   * @throws RunCancelled when cancel() is called, or a pause cannot hold the run in place.
   */
  run(job: WorkerJob, wallTimeMs: number, onCheckpoint?: (file: { path: string; data: Uint8Array }) => void): Promise<WorkerOutcome>;
  setThrottle(throttle: Throttle): void;
  /** The current run's figures (zeros when idle, or where the page cannot share memory with the worker). */
  progress(): RunProgress;
  /** Everything this slot has computed, ended runs included. */
  computed(): { work: number; busyMs: number };
  /** When the running task last stopped for a pause (epoch ms), or 0. */
  pausedAt(): number;
  cancel(reason: string): void;
}

/** The preparer's interface (prepare.ts), the one the runner and the supply call. */
export interface Preparer {
  /** @param onProgress told the bytes readied as preparing goes on (the lease keeper shows them when it renews). */
  prepare(lease: Lease, onProgress?: PrepareProgress): Promise<Prepared>;
  prefetch(lease: Lease): Promise<void>;
}

export interface CheckpointStore {
  checkpoint(leaseId: string): Promise<{ path: string; data: Uint8Array }[]>;
  saveCheckpoint(leaseId: string, file: { path: string; data: Uint8Array }): Promise<void>;
  dropLease(leaseId: string): Promise<void>;
}

export interface RefusalReporter {
  /** Signs the refusal with the device's key and reports it. */
  reportRefusal(report: RefusalClaim): Promise<void>;
}

export interface ResultSink {
  add(run: FinishedRun): Promise<void>;
}

export type RunEnd =
  /** `device`: answered with this device's own failure (a worker that would not start, storage that failed). */
  | { kind: 'answered'; ranMs: number | undefined; device?: true }
  | { kind: 'refused' }
  | { kind: 'cut-short' }
  | { kind: 'waiting'; why: string }
  | { kind: 'dropped' };

/** Tasks that ended here, for the page's counters. */
export interface Tally {
  done: number;
  failed: number;
  refused: number;
}

export interface RunnerHooks {
  /** Resolves when the keyset the runs must be checked against is settled (a refresh under way). */
  keysReady(): Promise<unknown>;
  /** Whether the donor still wants work done (false after Stop). */
  running(): boolean;
  /** Whether the project still needs the lease's result (the server said otherwise on renewal); by default it does. */
  needed?(lease: Lease): boolean;
  /** The CPU share a run starts with where no control block can change it later. */
  cpu(): number;
  /** A task finished with a program result (for the picture). */
  completed?(run: { manifest: TaskManifest; outcome: WorkerOutcome }): void;
  /** The tally changed. */
  onChange?(): void;
  /** Where the lease keeper reads each lease's progress, to renew it while its task prepares and runs. */
  progress?: LeaseProgress;
}

/** A cancellation reason meaning the lease is to be let go, not run again. */
export const NOT_NEEDED = 'the project no longer needs it';

export class TaskRunner {
  readonly tally: Tally = { done: 0, failed: 0, refused: 0 };

  constructor(
    private readonly preparer: Preparer,
    private readonly outbox: ResultSink,
    private readonly store: CheckpointStore,
    private readonly server: RefusalReporter,
    private readonly deviceId: string,
    private readonly clock: Clock,
    private readonly say: Say,
    private readonly hooks: RunnerHooks,
  ) {}

  async run(slot: TaskSlot, lease: Lease): Promise<RunEnd> {
    try {
      return await this.runLease(slot, lease);
    } finally {
      this.hooks.progress?.idle(lease.leaseId);
    }
  }

  private async runLease(slot: TaskSlot, lease: Lease): Promise<RunEnd> {
    const name = `${lease.task?.manifest?.name} ${lease.task?.manifest?.taskId}`;
    const progress = this.hooks.progress;
    let manifest: TaskManifest | null = null;
    try {
      await this.clock.yield(); // slots starting together verify their envelopes in separate tasks
      await this.hooks.keysReady();
      const prepared = await this.preparer.prepare(lease, progress && ((readied) => progress.preparing(lease.leaseId, readied)));
      if (prepared.kind === 'refused') {
        await this.refuse(lease, name, prepared.reason, prepared.detail);
        return { kind: 'refused' };
      }
      manifest = prepared.manifest;
      if (prepared.kind === 'failed') {
        await this.answer({ lease, manifest, outcome: failedOutcome(prepared.code, prepared.message, 0), fetchMs: prepared.fetchMs, compileMs: prepared.compileMs });
        return { kind: 'answered', ranMs: undefined };
      }
      if (!this.hooks.running()) throw new RunCancelled('stopped');
      if (this.hooks.needed && !this.hooks.needed(lease)) throw new RunCancelled(NOT_NEEDED);
      const outcome = await this.execute(slot, lease, prepared, name);
      await this.answer({ lease, manifest, outcome, fetchMs: prepared.fetchMs, compileMs: prepared.compileMs });
      return { kind: 'answered', ranMs: outcome.error ? undefined : outcome.runMs };
    } catch (error) {
      if (error instanceof RunCancelled) {
        if (error.message !== NOT_NEEDED) return { kind: 'cut-short' };
        await this.store.dropLease(lease.leaseId).catch(() => undefined);
        this.say('info', `Dropped ${name}: ${NOT_NEEDED} (another device finished it).`);
        return { kind: 'dropped' };
      }
      if ((error as Error).name === 'FetchDeferred') return { kind: 'waiting', why: `Waiting to run ${name}: ${(error as Error).message}.` };
      if (isTransient(error)) return { kind: 'waiting', why: `Waiting for the network to fetch what ${name} needs.` };
      return this.deviceFailure(lease, manifest, name, error);
    }
  }

  /** Runs a prepared task, from its checkpoint if it keeps one (docs/protocol.md, "Checkpoints"). */
  private async execute(slot: TaskSlot, lease: Lease, prepared: ReadyTask, name: string): Promise<WorkerOutcome> {
    const job = jobOf(prepared, this.hooks.cpu());
    const saving: Promise<void>[] = [];
    let keepCheckpoint: ((file: { path: string; data: Uint8Array }) => void) | undefined;
    if (prepared.manifest.preopens.includes(CHECKPOINT_DIR)) {
      const checkpoint = await this.store.checkpoint(lease.leaseId);
      if (checkpoint.length) {
        job.files = [...job.files.filter((f) => !checkpoint.some((c) => c.path === f.path)), ...checkpoint];
        this.say('info', `Resuming ${name} from its checkpoint.`);
      }
      keepCheckpoint = (file) => void saving.push(this.store.saveCheckpoint(lease.leaseId, file));
    }
    this.hooks.progress?.running(lease.leaseId, () => slot.progress().work);
    const outcome = await slot.run(job, prepared.manifest.limits.wallTimeMs, keepCheckpoint);
    await Promise.allSettled(saving);
    return outcome;
  }

  private async answer(run: FinishedRun): Promise<void> {
    const { manifest, outcome } = run;
    const name = `${manifest.name} ${manifest.taskId}`;
    await this.outbox.add(run);
    if (outcome.error) {
      this.tally.failed++;
      this.say('error', `${name} failed: ${outcome.error.code}: ${outcome.error.message}`);
    } else {
      this.tally.done++;
      this.say('done', `${name} finished in ${Math.round(outcome.runMs)} ms with exit code ${outcome.exitCode}.`);
      try {
        this.hooks.completed?.({ manifest, outcome });
      } catch {
        // a view's trouble with the result (the picture) is not the task's: it is answered already
      }
    }
    this.hooks.onChange?.();
  }

  private async refuse(lease: Lease, name: string, reason: RefusalReason, detail: string): Promise<void> {
    this.tally.refused++;
    this.hooks.onChange?.();
    this.say('refused', `Refused ${name}: ${REFUSAL_TEXT[reason]} (${detail}).`);
    await this.store.dropLease(lease.leaseId);
    // The task id the envelope named: a malformed one cannot be reported under its own.
    const taskId = /^[A-Za-z0-9_-]{1,64}$/.test(String(lease.task?.manifest?.taskId)) ? lease.task.manifest.taskId : 'unreadable';
    await this.server
      .reportRefusal({ kind: 'task', leaseId: lease.leaseId, taskId, deviceId: this.deviceId, reason, detail: detail.slice(0, 2000) })
      .catch((error: Error) => this.say('error', `Could not report the refusal: ${error.message}`));
  }

  /**
   * The device could not prepare or run the task (a worker that cannot start, storage that fails):
   * the project hears of it as a signed result with error `device`, and the lease is let go at once,
   * so the task goes to another device. It is never counted as done here.
   */
  private async deviceFailure(lease: Lease, manifest: TaskManifest | null, name: string, error: unknown): Promise<RunEnd> {
    const message = `this device could not run it: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`.slice(0, 2000);
    const named = manifest ?? lease.task?.manifest;
    if (named && /^[A-Za-z0-9_-]{1,64}$/.test(String(named.taskId))) {
      try {
        await this.answer({ lease, manifest: named, outcome: failedOutcome('device', message, 0), fetchMs: 0, compileMs: 0 });
        return { kind: 'answered', ranMs: undefined, device: true };
      } catch (failure) {
        this.say('error', `Could not keep the failure of ${name} to send it: ${(failure as Error).message}`);
      }
    }
    this.tally.failed++;
    this.hooks.onChange?.();
    this.say('error', `Could not run ${name}: ${message}`);
    await this.store.dropLease(lease.leaseId).catch(() => undefined);
    return { kind: 'dropped' };
  }
}

function jobOf(task: ReadyTask, cpu: number): WorkerJob {
  const m = task.manifest;
  return {
    taskId: m.taskId,
    engine: m.engine,
    module: task.module,
    ...(task.moduleBytes ? { moduleBytes: task.moduleBytes } : {}),
    args: m.args,
    env: m.env,
    stdin: task.stdin,
    files: task.files,
    preopens: m.preopens,
    limits: { memoryBytes: m.limits.memoryBytes, outputBytes: m.limits.outputBytes },
    cpu,
    deterministic: isDeterministic(m),
  };
}

/** A failure of the network or the server, as opposed to a verdict on the task. */
function isTransient(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch() could not reach the server
  const status = (error as { status?: number }).status;
  return status === 0 || status === 408 || status === 429 || (typeof status === 'number' && status >= 500);
}
