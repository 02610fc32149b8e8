/**
 * One Web Worker and the run it is doing. Cancelling (stop, timeout) terminates the worker and
 * starts a fresh one: a running Wasm instance cannot be interrupted any other way.
 */
import * as Comlink from 'comlink';
import { failedOutcome, type WorkerApi, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';

export class RunCancelled extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RunCancelled';
  }
}

export class WorkerSlot {
  private worker!: Worker;
  private api!: Comlink.Remote<WorkerApi>;
  private cancelCurrent: ((error: Error) => void) | null = null;

  constructor() {
    this.spawn();
  }

  private spawn(): void {
    this.worker = new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module', name: 'dewgrid-task' });
    this.api = Comlink.wrap<WorkerApi>(this.worker);
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
      this.api.run(channel ? Comlink.transfer(job, [channel.port2]) : job).then(
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

  private restart(): void {
    this.worker.terminate();
    this.spawn();
  }

  dispose(): void {
    this.cancel('disposed');
    this.worker.terminate();
  }
}
