/**
 * The page <-> task worker call (WorkerApi.run) over plain messages: one request, one answer, the
 * outputs' buffers transferred. It was Comlink's proxy until a small task's round trip measured
 * 0.07 ms more through it in Chromium and 0.18 ms in Firefox (docs/benchmarks.md (l)), for one
 * method with one argument. Both sides import this file.
 */
import type { WorkerApi, WorkerJob, WorkerOutcome } from './worker-api.ts';

/** What can post and receive messages: a Worker on the page, the worker's global scope, or a MessagePort. */
export interface MessageEndpoint {
  postMessage(message: unknown, transfer: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

type Request = { id: number; job: WorkerJob };
type Answer = { id: number; outcome: WorkerOutcome } | { id: number; error: string };

/** The page's side: `run` posts the job (its checkpoint port transferred) and resolves with the worker's outcome. */
export function workerApiOn(worker: MessageEndpoint): WorkerApi {
  const pending = new Map<number, { resolve(outcome: WorkerOutcome): void; reject(error: Error): void }>();
  let nextId = 1;
  worker.addEventListener('message', (event) => {
    const answer = event.data as Answer;
    const call = pending.get(answer.id);
    if (!call) return;
    pending.delete(answer.id);
    if ('error' in answer) call.reject(new Error(answer.error));
    else call.resolve(answer.outcome);
  });
  return {
    run(job) {
      const id = nextId++;
      return new Promise<WorkerOutcome>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, job } satisfies Request, job.checkpoints ? [job.checkpoints] : []);
      });
    },
  };
}

/** The worker's side: answers each job with `api.run`'s outcome, its output buffers transferred (each once). */
export function serveWorkerApi(scope: MessageEndpoint, api: WorkerApi): void {
  scope.addEventListener('message', (event) => {
    const { id, job } = event.data as Request;
    api.run(job).then(
      (outcome) => {
        // Each buffer once: a transfer list naming a buffer twice is a DataCloneError (stdout and stderr share one when empty).
        const buffers = new Set([outcome.stdout.buffer, outcome.stderr.buffer, ...outcome.files.map((f) => f.data.buffer)]);
        scope.postMessage({ id, outcome } satisfies Answer, [...buffers].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && b.byteLength > 0));
      },
      (error: unknown) => scope.postMessage({ id, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) } satisfies Answer, []),
    );
  });
}
