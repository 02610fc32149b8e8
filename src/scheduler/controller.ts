/**
 * The donor page's controller: leases tasks, prepares them, runs them on a pool of workers,
 * posts the results. Components only render its state; `window.dewgrid` is this object's
 * public face (see README).
 */
import { toBase64 } from '../protocol/bytes.ts';
import type { Lease, ResultSubmission, TaskManifest } from '../protocol/schema.ts';
import { failedOutcome, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';
import { REFUSAL_TEXT } from '../protocol/verify.ts';
import { TaskPreparer, type ReadyTask } from './prepare.ts';
import { TaskServer } from './server-api.ts';
import { RunCancelled, WorkerSlot } from './worker-slot.ts';
import type { BlobCache } from '../storage/blob-cache.ts';

export interface Limits {
  /** Share of each worker's core a run may use, 0.1 to 1. */
  cpu: number;
  /** How many tasks run at once, 1 to the device's core count. */
  workers: number;
}

export interface Counts {
  running: number;
  queued: number;
  done: number;
  failed: number;
  refused: number;
}

export interface Status {
  running: boolean;
  limits: Limits;
  counts: Counts;
  deviceId: string;
  project: string;
}

export type LogLevel = 'info' | 'done' | 'error' | 'refused';
export interface LogEntry {
  at: number;
  level: LogLevel;
  text: string;
}

export interface CompletedRun {
  manifest: TaskManifest;
  outcome: WorkerOutcome;
}

export interface ControllerEvents {
  status: Status;
  log: LogEntry;
  completed: CompletedRun;
}

type Listener<K extends keyof ControllerEvents> = (value: ControllerEvents[K]) => void;

/** How long to wait before asking again when the server has no work or cannot be reached. */
const IDLE_POLL_MS = 3000;
const RESULT_RETRY_MS = [500, 2000, 5000, 15000];

export class Controller {
  private readonly slots: WorkerSlot[] = [];
  private readonly queue: Lease[] = [];
  private readonly active = new Map<WorkerSlot, Lease>();
  private readonly counts: Counts = { running: 0, queued: 0, done: 0, failed: 0, refused: 0 };
  private readonly listeners: { [K in keyof ControllerEvents]: Set<Listener<K>> } = {
    status: new Set(),
    log: new Set(),
    completed: new Set(),
  };
  private running = false;
  private fetching = false;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private limits: Limits;
  private readonly preparer: TaskPreparer;

  constructor(
    private readonly server: TaskServer,
    cache: BlobCache,
    trustedKeys: ReadonlyMap<string, Uint8Array>,
    private readonly deviceId: string,
    private readonly project: string,
    private readonly maxWorkers = Math.max(1, navigator.hardwareConcurrency || 1),
  ) {
    this.preparer = new TaskPreparer(server, cache, trustedKeys);
    this.limits = { cpu: 1, workers: this.maxWorkers };
  }

  on<K extends keyof ControllerEvents>(event: K, listener: Listener<K>): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  private emit<K extends keyof ControllerEvents>(event: K, value: ControllerEvents[K]): void {
    for (const listener of this.listeners[event]) listener(value);
  }

  private log(level: LogLevel, text: string): void {
    this.emit('log', { at: Date.now(), level, text });
  }

  status(): Status {
    return {
      running: this.running,
      limits: { ...this.limits },
      counts: { ...this.counts, running: this.active.size, queued: this.queue.length },
      deviceId: this.deviceId,
      project: this.project,
    };
  }

  private changed(): void {
    this.emit('status', this.status());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.log('info', `Started: up to ${this.limits.workers} task${this.limits.workers === 1 ? '' : 's'} at once, ${Math.round(this.limits.cpu * 100)}% CPU each.`);
    this.changed();
    this.pump();
  }

  /** Stops now: running tasks are cut short and kept, to run first on the next start. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const slot of [...this.active.keys()]) slot.cancel('stopped by the user');
    this.log('info', 'Stopped.');
    this.changed();
  }

  /** @throws RangeError naming the bad value; nothing changes then. */
  setLimits(limits: Partial<Limits>): Limits {
    const next = { ...this.limits, ...limits };
    if (typeof next.cpu !== 'number' || !(next.cpu >= 0.1 && next.cpu <= 1)) {
      throw new RangeError(`cpu must be a number from 0.1 to 1, got ${String(limits.cpu)}`);
    }
    if (!Number.isInteger(next.workers) || next.workers < 1 || next.workers > this.maxWorkers) {
      throw new RangeError(`workers must be a whole number from 1 to ${this.maxWorkers}, got ${String(limits.workers)}`);
    }
    this.limits = next;
    this.changed();
    this.pump();
    return { ...next };
  }

  /** Fills free worker slots from the local queue, asking the server when the queue is empty. */
  private pump(): void {
    if (!this.running) return;
    while (this.active.size < this.limits.workers && this.queue.length > 0) {
      const lease = this.queue.shift()!;
      // A lease that lapsed while it waited (say, across a long stop) has been or will be given to another device.
      if (lease.expiresAt <= Date.now()) continue;
      void this.runLease(this.freeSlot(), lease);
    }
    const free = this.limits.workers - this.active.size;
    if (free > 0 && !this.fetching && !this.idleTimer) void this.fetchWork(free);
    this.changed();
  }

  private freeSlot(): WorkerSlot {
    const busy = new Set(this.active.keys());
    let slot = this.slots.find((s) => !busy.has(s));
    if (!slot) {
      slot = new WorkerSlot();
      this.slots.push(slot);
    }
    return slot;
  }

  private async fetchWork(max: number): Promise<void> {
    this.fetching = true;
    let leases: Lease[] = [];
    try {
      leases = await this.server.requestWork({ deviceId: this.deviceId, engines: ['wasi-preview1'], max });
    } catch (error) {
      this.log('error', `Could not reach the task server: ${(error as Error).message}`);
    } finally {
      this.fetching = false;
    }
    this.queue.push(...leases);
    if (leases.length === 0 && this.running) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.pump();
      }, IDLE_POLL_MS);
    }
    this.pump();
  }

  private async runLease(slot: WorkerSlot, lease: Lease): Promise<void> {
    this.active.set(slot, lease);
    this.changed();
    const name = `${lease.task.manifest.name} ${lease.task.manifest.taskId}`;
    try {
      const prepared = await this.preparer.prepare(lease);
      if (prepared.kind === 'refused') {
        this.counts.refused++;
        this.log('refused', `Refused ${name}: ${REFUSAL_TEXT[prepared.reason]} (${prepared.detail}).`);
        await this.server
          .reportRefusal({ leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: this.deviceId, reason: prepared.reason, detail: prepared.detail })
          .catch((error: Error) => this.log('error', `Could not report the refusal: ${error.message}`));
        return;
      }
      if (prepared.kind === 'failed') {
        const outcome = failedOutcome(prepared.code, prepared.message, 0);
        await this.finish(lease, prepared.manifest, outcome, prepared.fetchMs, prepared.compileMs);
        return;
      }
      if (!this.running) throw new RunCancelled('stopped');
      const outcome = await slot.run(jobOf(prepared, this.limits.cpu), prepared.manifest.limits.wallTimeMs);
      await this.finish(lease, prepared.manifest, outcome, prepared.fetchMs, prepared.compileMs);
      await this.throttleGap(outcome.runMs);
    } catch (error) {
      if (error instanceof RunCancelled) {
        this.queue.unshift(lease); // run again first on the next start, while the lease lasts
      } else {
        this.counts.failed++;
        this.log('error', `Could not run ${name}: ${(error as Error).message}`);
      }
    } finally {
      this.active.delete(slot);
      this.pump();
    }
  }

  /**
   * Between tasks, rest so that a slot's average use matches the CPU limit even for tasks that
   * make few syscalls (the in-run duty cycle naps only at syscalls).
   */
  private throttleGap(runMs: number): Promise<void> {
    const cpu = this.limits.cpu;
    if (cpu >= 1 || !this.running) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, (runMs * (1 - cpu)) / cpu));
  }

  private async finish(lease: Lease, manifest: TaskManifest, outcome: WorkerOutcome, fetchMs: number, compileMs: number): Promise<void> {
    const submission: ResultSubmission = {
      leaseId: lease.leaseId,
      taskId: manifest.taskId,
      deviceId: this.deviceId,
      exitCode: outcome.exitCode,
      stdout: toBase64(outcome.stdout),
      stderr: toBase64(outcome.stderr),
      files: outcome.files.map((f) => ({ path: f.path, data: toBase64(f.data) })),
      truncated: outcome.truncated,
      error: outcome.error,
      timings: { fetchMs: round(fetchMs), compileMs: round(compileMs), runMs: round(outcome.runMs) },
    };
    const name = `${manifest.name} ${manifest.taskId}`;
    if (outcome.error) {
      this.counts.failed++;
      this.log('error', `${name} failed: ${outcome.error.code}: ${outcome.error.message}`);
    } else {
      this.counts.done++;
      this.log('done', `${name} finished in ${Math.round(outcome.runMs)} ms with exit code ${outcome.exitCode}.`);
      this.emit('completed', { manifest, outcome });
    }
    await this.deliver(submission);
  }

  private async deliver(submission: ResultSubmission): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.server.submitResult(submission);
        return;
      } catch (error) {
        const status = (error as { status?: number }).status ?? 0;
        // 4xx other than 408/429: the server has ruled on this result; retrying cannot change it.
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
          this.log('error', `The server did not take the result of ${submission.taskId}: ${(error as Error).message}`);
          return;
        }
        const wait = RESULT_RETRY_MS[Math.min(attempt, RESULT_RETRY_MS.length - 1)]!;
        if (attempt >= 8) {
          this.log('error', `Gave up posting the result of ${submission.taskId}: ${(error as Error).message}`);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}

function jobOf(task: ReadyTask, cpu: number): WorkerJob {
  const m = task.manifest;
  return {
    taskId: m.taskId,
    module: task.module,
    args: m.args,
    env: m.env,
    stdin: task.stdin,
    files: task.files,
    preopens: m.preopens,
    limits: { memoryBytes: m.limits.memoryBytes, outputBytes: m.limits.outputBytes },
    cpu,
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
