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
  run(job: WorkerJob, wallTimeMs: number): Promise<WorkerOutcome> {
    const started = performance.now();
    return new Promise<WorkerOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.cancelCurrent = null;
        this.restart();
        resolve(failedOutcome('timeout', `the run took longer than its wall-time limit of ${wallTimeMs} ms`, performance.now() - started));
      }, wallTimeMs);
      this.cancelCurrent = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      this.api.run(job).then(
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
