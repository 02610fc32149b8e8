/**
 * The workers of one slot (one per engine, see spawn) and the run it is doing. Cancelling (stop,
 * timeout) terminates them and starts a fresh one: a running Wasm instance cannot be interrupted
 * any other way.
 */
import { failedOutcome, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';
import { inputBuffers, taskWorkerClient, type TaskWorkerClient } from '../protocol/task-channel.ts';
import type { Engine } from '../protocol/schema.ts';
import { ThrottleBlock, type RunProgress, type Throttle } from '../protocol/throttle.ts';
import { RunCancelled } from './run-cancelled.ts';
import { canShareMemory } from '../protocol/shared-memory.ts';

export { RunCancelled };

/** A worker for one engine and its RPC handle. */
interface EngineWorker {
  worker: Worker;
  api: TaskWorkerClient;
  /**
   * Why the worker failed (its script would not load or start, or it crashed), kept from its first
   * error event: the slot starts its worker ahead of the first run, so the event may come before.
   */
  failure: Error | null;
  /** Told of the failure when it comes during a run. */
  onFailure: ((error: Error) => void) | null;
}

/** Each engine's worker script; Vite bundles each as its own worker entry. */
function spawn(engine: Engine): EngineWorker {
  const worker =
    engine === 'wasix'
      ? new Worker(new URL('../../worker/wasix/runtime.ts', import.meta.url), { type: 'module', name: 'dewgrid-wasix-task' })
      : new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module', name: 'dewgrid-task' });
  const entry: EngineWorker = { worker, api: taskWorkerClient(worker), failure: null, onFailure: null };
  // A worker whose script cannot load or start fails with an error event, not an answer.
  worker.addEventListener('error', (event) => {
    entry.failure ??= new Error(`the task's worker failed to start or crashed${event instanceof ErrorEvent && event.message ? `: ${event.message}` : ''}`);
    entry.onFailure?.(entry.failure);
  });
  return entry;
}

export class WorkerSlot {
  /** The preview1 worker starts with the slot; a WASIX one (it loads the SDK) only when a WASIX job comes. */
  private readonly workers = new Map<Engine, EngineWorker>([['wasi-preview1', spawn('wasi-preview1')]]);
  private cancelCurrent: ((error: Error) => void) | null = null;

  private workerFor(engine: Engine): EngineWorker {
    let found = this.workers.get(engine);
    if (!found) {
      found = spawn(engine);
      this.workers.set(engine, found);
    }
    return found;
  }

  /** What running tasks in this slot may use; kept for the next runs too. */
  private throttle: Throttle = { cpu: 1, paused: false };
  /** The current run's control block (pages that can share memory with workers only). */
  private block: ThrottleBlock | null = null;
  /** The current run's wall-time clock, which stands still while the run is paused. */
  private wallClock: PausableTimer | null = null;

  /**
   * Runs a job; a run still going after `wallTimeMs` (time paused not counted) ends with a
   * 'timeout' outcome and a new worker.
   * The job's stdin and files go to the worker by transfer: their buffers are detached here once
   * the job is posted (see TaskSlot.run).
   * @throws RunCancelled when cancel() is called during the run, or when it is paused on a page
   *   that cannot pause it in place (no memory shared with the worker, or a WASIX task).
   */
  run(job: WorkerJob, wallTimeMs: number, onCheckpoint?: (file: { path: string; data: Uint8Array }) => void): Promise<WorkerOutcome> {
    const started = performance.now();
    let channel: MessageChannel | null = null;
    if (onCheckpoint) {
      channel = new MessageChannel();
      channel.port1.onmessage = (event: MessageEvent<{ path: string; data: Uint8Array }>) => onCheckpoint(event.data);
      job = { ...job, checkpoints: channel.port2 };
    }
    // The block needs memory shared with the worker (tested, not assumed from isolation); WASIX
    // runs are the SDK's, with no yield hook to read it.
    this.block = canShareMemory() && job.engine === 'wasi-preview1' ? new ThrottleBlock() : null;
    if (this.block) {
      this.block.set(this.throttle);
      job = { ...job, control: this.block.buffer };
    } else {
      job = { ...job, cpu: this.throttle.cpu };
    }
    /** The worker's accounting of the run as its outcome gives it, for a page without the block. */
    let accounted: RunProgress | undefined;
    const run = new Promise<WorkerOutcome>((resolve, reject) => {
      const clock = new PausableTimer(wallTimeMs, () => {
        this.cancelCurrent = null;
        this.restart();
        resolve(failedOutcome('timeout', `the run took longer than its wall-time limit of ${wallTimeMs} ms`, performance.now() - started));
      });
      this.wallClock = clock;
      if (this.throttle.paused) clock.pause();
      this.cancelCurrent = (error) => {
        clock.stop();
        reject(error);
      };
      const engineWorker = this.workerFor(job.engine);
      const failed = (error: Error) => {
        if (this.cancelCurrent === null) return;
        engineWorker.onFailure = null;
        clock.stop();
        this.cancelCurrent = null;
        this.restart();
        reject(error);
      };
      if (engineWorker.failure) {
        failed(engineWorker.failure);
        return;
      }
      engineWorker.onFailure = failed;
      const { api } = engineWorker;
      // The inputs are handed over, not copied: see TaskSlot.run.
      api.run(job, [...(channel ? [channel.port2] : []), ...inputBuffers(job)]).then(
        (outcome) => {
          engineWorker.onFailure = null;
          clock.stop();
          this.cancelCurrent = null;
          accounted = outcome.progress;
          resolve(outcome);
        },
        (error: unknown) => {
          engineWorker.onFailure = null;
          clock.stop();
          this.cancelCurrent = null;
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
    // Checkpoints posted just before the run ended arrive before the port is closed: same task queue order.
    return run.finally(() => {
      // Final: the run's worker has finished or been terminated. Without a block, only a run that
      // finished tells (a terminated one's accounting ends with its worker).
      const last = this.block?.progress() ?? accounted;
      if (last) this.finished = { work: this.finished.work + last.work, busyMs: this.finished.busyMs + last.busyMs };
      this.block = null;
      this.wallClock = null;
      setTimeout(() => channel?.port1.close(), 0);
    });
  }

  /**
   * Applies to the running task at its next yield (well within 50 ms), and to the next runs. Where
   * the run cannot be paused in place, a pause cuts it short (RunCancelled from run()): the caller
   * keeps the task and runs it again later.
   */
  setThrottle(throttle: Throttle): void {
    this.throttle = { ...throttle };
    if (this.block) {
      this.block.set(throttle);
      if (throttle.paused) this.wallClock?.pause();
      else this.wallClock?.resume();
    } else if (throttle.paused) {
      this.cancel('paused');
    }
  }

  /** The current run's figures (zeros when idle, or where the page cannot share memory with its workers). Cheap enough to poll. */
  progress(): RunProgress {
    return this.block?.progress() ?? { work: 0, busyMs: 0, napMs: 0, pausedMs: 0, steadyWork: 0, steadyBusyMs: 0, speedChecks: 0, speedCheckMs: 0 };
  }

  /** Work and computing time of this slot's ended runs; with the current run's, a total that never goes back. */
  private finished = { work: 0, busyMs: 0 };

  /**
   * Everything this slot has computed, ended runs included. Where the page cannot share memory with
   * its workers, the running task's share is missing until it finishes (it grows run by run).
   */
  computed(): { work: number; busyMs: number } {
    const current = this.progress();
    return { work: this.finished.work + current.work, busyMs: this.finished.busyMs + current.busyMs };
  }

  /** When the running task last stopped for a pause (epoch ms), or 0: for measuring pause latency. */
  pausedAt(): number {
    return this.block?.pausedAt() ?? 0;
  }

  /** Ends the current run, if any, by terminating the worker; a fresh worker takes its place. */
  cancel(reason: string): void {
    const cancel = this.cancelCurrent;
    this.cancelCurrent = null;
    if (cancel) {
      this.restart();
      cancel(new RunCancelled(reason));
    }
  }

  /** Terminates every worker of the slot (a run is in one of them); the preview1 worker comes back at once. */
  private restart(): void {
    for (const { worker } of this.workers.values()) worker.terminate();
    this.workers.clear();
    this.workers.set('wasi-preview1', spawn('wasi-preview1'));
  }

  dispose(): void {
    this.cancel('disposed');
    for (const { worker } of this.workers.values()) worker.terminate();
    this.workers.clear();
  }
}

/** A one-shot timer that can stand still: a task's wall-time limit does not run while it is paused. */
class PausableTimer {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private startedAt = 0;

  constructor(
    private remainingMs: number,
    private readonly onExpire: () => void,
  ) {
    this.resume();
  }

  pause(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.remainingMs -= performance.now() - this.startedAt;
  }

  resume(): void {
    if (this.timer || this.remainingMs === Infinity) return;
    this.startedAt = performance.now();
    this.timer = setTimeout(() => {
      this.remainingMs = Infinity;
      this.onExpire();
    }, Math.max(0, this.remainingMs));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.remainingMs = Infinity;
  }
}
