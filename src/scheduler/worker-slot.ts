/**
 * The workers of one slot (one per engine, see spawn) and the run it is doing. Cancelling (stop,
 * timeout) terminates them and starts a fresh one: a running Wasm instance cannot be interrupted
 * any other way.
 */
import * as Comlink from 'comlink';
import { failedOutcome, type WorkerApi, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';
import type { Engine } from '../protocol/schema.ts';

export class RunCancelled extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RunCancelled';
  }
}

/** A worker for one engine and its RPC handle. */
interface EngineWorker {
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
}

/** Each engine's worker script; Vite bundles each as its own worker entry. */
function spawn(engine: Engine): EngineWorker {
  const worker =
    engine === 'wasix'
      ? new Worker(new URL('../../worker/wasix/runtime.ts', import.meta.url), { type: 'module', name: 'dewgrid-wasix-task' })
      : new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module', name: 'dewgrid-task' });
  return { worker, api: Comlink.wrap<WorkerApi>(worker) };
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

  /**
   * Runs a job; a run still going after `wallTimeMs` ends with a 'timeout' outcome and a new worker.
   * @throws RunCancelled when cancel() is called during the run.
   */
  run(job: WorkerJob, wallTimeMs: number, onCheckpoint?: (file: { path: string; data: Uint8Array }) => void): Promise<WorkerOutcome> {
    const started = performance.now();
    let channel: MessageChannel | null = null;
    if (onCheckpoint) {
      channel = new MessageChannel();
      channel.port1.onmessage = (event: MessageEvent<{ path: string; data: Uint8Array }>) => onCheckpoint(event.data);
      job = { ...job, checkpoints: channel.port2 };
    }
    const run = new Promise<WorkerOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.cancelCurrent = null;
        this.restart();
        resolve(failedOutcome('timeout', `the run took longer than its wall-time limit of ${wallTimeMs} ms`, performance.now() - started));
      }, wallTimeMs);
      this.cancelCurrent = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      this.workerFor(job.engine).api.run(channel ? Comlink.transfer(job, [channel.port2]) : job).then(
        (outcome) => {
          clearTimeout(timer);
          this.cancelCurrent = null;
          resolve(outcome);
        },
        (error: unknown) => {
          clearTimeout(timer);
          this.cancelCurrent = null;
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
    // Checkpoints posted just before the run ended arrive before the port is closed: same task queue order.
    return run.finally(() => setTimeout(() => channel?.port1.close(), 0));
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
