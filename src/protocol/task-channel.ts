/**
 * The page's one call to a task worker (worker/runtime.ts, worker/wasix/runtime.ts): the job in a
 * message, the outcome in the answer, matched by id. Plain postMessage rather than Comlink (which
 * the prepare worker, with its several calls and callbacks, keeps): for a small task Comlink's
 * proxy and wire format took 0.1 ms in Chromium and 0.2 ms in Firefox of a 1 ms run
 * (docs/benchmarks.md, "(l) peers"). Each side checks what it receives before using it.
 */
import type { WorkerJob, WorkerOutcome } from './worker-api.ts';

/**
 * A job, its module left out (null) when it is the one the worker was sent last and holds:
 * deserializing a compiled module took 0.02-0.05 ms of a small task's run in Chromium, and a
 * donor's tasks mostly share a few modules (the page keeps each compiled once a session).
 */
export interface RunRequest {
  id: number;
  job: Omit<WorkerJob, 'module'> & { module: WebAssembly.Module | null };
}

/** The outcome, or why the worker's run threw (a defect: runs report their own failures in the outcome). */
export type RunReply = { id: number; outcome: WorkerOutcome } | { id: number; error: string };

/** What a task worker answers with: each buffer of the outcome's outputs once (a buffer named twice in a transfer list is a DataCloneError). */
export function outcomeBuffers(outcome: WorkerOutcome): ArrayBuffer[] {
  const buffers = new Set([outcome.stdout.buffer, outcome.stderr.buffer, ...outcome.files.map((f) => f.data.buffer)]);
  return [...buffers] as ArrayBuffer[];
}

/** The page's side: runs on `worker`; a call to a worker that is terminated never settles (the slot's own cancel settles it). */
export function taskWorkerClient(worker: Pick<Worker, 'addEventListener' | 'postMessage'>): TaskWorkerClient {
  const pending = new Map<number, { resolve(outcome: WorkerOutcome): void; reject(error: Error): void }>();
  let nextId = 1;
  /** The module the worker holds: the last one posted to it. */
  let held: WebAssembly.Module | null = null;
  worker.addEventListener('message', (event: MessageEvent<unknown>) => {
    const reply = event.data as Partial<RunReply> | null;
    const call = typeof reply === 'object' && reply !== null && typeof reply.id === 'number' ? pending.get(reply.id) : undefined;
    if (!call) return; // not an answer to a call of ours
    pending.delete(reply!.id!);
    if ('outcome' in reply! && isOutcome(reply.outcome)) call.resolve(reply.outcome);
    else call.reject(new Error('error' in reply! && typeof reply.error === 'string' ? reply.error : "the task's worker answered with no outcome"));
  });
  // An answer that cannot be deserialized here arrives as this event, with no data to match: every call waiting fails.
  worker.addEventListener('messageerror', () => {
    for (const call of pending.values()) call.reject(new Error("the task's worker sent an answer that could not be read"));
    pending.clear();
  });
  return {
    run(job, transfer = []) {
      const id = nextId++;
      const request: RunRequest = job.module === held ? { id, job: { ...job, module: null } } : { id, job };
      return new Promise<WorkerOutcome>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        try {
          worker.postMessage(request, transfer);
        } catch (error) {
          pending.delete(id);
          throw error; // the promise rejects with it
        }
        held = job.module;
      });
    },
  };
}

export interface TaskWorkerClient {
  /** @param transfer what the job hands over rather than copies (a checkpoint port). */
  run(job: WorkerJob, transfer?: Transferable[]): Promise<WorkerOutcome>;
}

/**
 * The worker's side: answers each run request with `api`'s outcome, its output buffers transferred.
 * @param scope where requests come from and answers go: the worker's global scope.
 */
export function serveRuns(api: { run(job: WorkerJob): WorkerOutcome | Promise<WorkerOutcome> }, scope: Pick<Worker, 'addEventListener' | 'postMessage'> = self as unknown as Worker): void {
  /** The module of the last job: the next job without one runs it. */
  let held: WebAssembly.Module | null = null;
  scope.addEventListener('message', (event: MessageEvent<unknown>) => {
    const request = event.data as Partial<RunRequest> | null;
    if (typeof request !== 'object' || request === null || typeof request.id !== 'number') return;
    const { id, job } = request;
    const module = typeof job === 'object' && job !== null ? (job.module ?? held) : null;
    if (!(module instanceof WebAssembly.Module)) {
      scope.postMessage({ id, error: 'the job carries no compiled module, and the worker holds none' } satisfies RunReply);
      return;
    }
    held = module;
    const answer = (outcome: WorkerOutcome) => scope.postMessage({ id, outcome } satisfies RunReply, outcomeBuffers(outcome));
    const fail = (error: unknown) => scope.postMessage({ id, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) } satisfies RunReply);
    try {
      const full = job as WorkerJob;
      full.module = module;
      const outcome = api.run(full);
      // An outcome ready at once is posted at once: no turn through the microtask queue.
      // A failure to post (a DataCloneError) is answered too: the page must not wait for ever.
      if (outcome instanceof Promise) outcome.then(answer).catch(fail);
      else answer(outcome);
    } catch (error) {
      fail(error);
    }
  });
}

/** The fields the page reads of an outcome, of the types it reads them as. */
function isOutcome(value: unknown): value is WorkerOutcome {
  const o = value as Partial<WorkerOutcome> | null;
  return (
    typeof o === 'object' && o !== null &&
    o.stdout instanceof Uint8Array && o.stderr instanceof Uint8Array && Array.isArray(o.files) &&
    (o.error === null || (typeof o.error === 'object' && o.error !== undefined)) &&
    typeof o.truncated === 'object' && o.truncated !== null && typeof o.blobs === 'object' && o.blobs !== null
  );
}
