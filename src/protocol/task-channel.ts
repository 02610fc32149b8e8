/**
 * The page's one call to a task worker (worker/runtime.ts, worker/wasix/runtime.ts): the job in a
 * message, the outcome in the answer, matched by id. Plain postMessage rather than Comlink (which
 * the prepare worker, with its several calls and callbacks, keeps): for a small task Comlink's
 * proxy and wire format took 0.1 ms in Chromium and 0.2 ms in Firefox of a 1 ms run
 * (docs/benchmarks.md, "(l) peers"). Each side checks what it receives before using it.
 */
import * as v from 'valibot';
import { parse } from './schema.ts';
import { WorkerJobSchema, WorkerOutcomeSchema, type WorkerJob, type WorkerOutcome } from './worker-api.ts';

/**
 * A job, its module left out (null) when it is the one the worker was sent last and holds:
 * deserializing a compiled module took 0.02-0.05 ms of a small task's run in Chromium, and a
 * donor's tasks mostly share a few modules (the page keeps each compiled once a session).
 */
export const RunRequest = v.strictObject({
  id: v.pipe(v.number(), v.integer()),
  job: v.strictObject({ ...WorkerJobSchema.entries, module: v.nullable(v.instance(WebAssembly.Module)) }),
});
export type RunRequest = v.InferOutput<typeof RunRequest>;

/** The outcome, or why the worker could not run the job (a defect: runs report their own failures in the outcome). */
export const RunReply = v.variant('kind', [
  v.strictObject({ kind: v.literal('outcome'), id: v.number(), outcome: WorkerOutcomeSchema }),
  v.strictObject({ kind: v.literal('error'), id: v.number(), message: v.string() }),
]);
export type RunReply = v.InferOutput<typeof RunReply>;

/** The id of a message that has one, to match an answer (or answer a request) that fails its check. */
function idOf(data: unknown): number | undefined {
  const id = typeof data === 'object' && data !== null ? (data as { id?: unknown }).id : undefined;
  return typeof id === 'number' ? id : undefined;
}

/** What a task worker answers with: each buffer of the outcome's outputs once (a buffer named twice in a transfer list is a DataCloneError). */
export function outcomeBuffers(outcome: WorkerOutcome): ArrayBuffer[] {
  const buffers = new Set([outcome.stdout.buffer, outcome.stderr.buffer, ...outcome.files.map((f) => f.data.buffer)]);
  return [...buffers] as ArrayBuffer[];
}

/**
 * The buffers of a job's inputs (stdin and files), each once, for a caller that hands them to the
 * worker rather than copies them: the structured clone of yosys's 318 inputs (8.5 MB) took 15-16 ms
 * in Chromium and 8-9 ms in Firefox of a 125-150 ms task (docs/benchmarks.md, "(l) peers"). Not
 * moduleBytes, which the page keeps for the module's next tasks; not shared memory, which cannot
 * be transferred.
 */
export function inputBuffers(job: Pick<WorkerJob, 'stdin' | 'files'>): ArrayBuffer[] {
  const buffers = new Set([job.stdin.buffer, ...job.files.map((f) => f.data.buffer)]);
  return [...buffers].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}

/** The page's side: runs on `worker`; a call to a worker that is terminated never settles (the slot's own cancel settles it). */
export function taskWorkerClient(worker: Pick<Worker, 'addEventListener' | 'postMessage'>): TaskWorkerClient {
  const pending = new Map<number, { resolve(outcome: WorkerOutcome): void; reject(error: Error): void }>();
  let nextId = 1;
  /** The module the worker holds: the last one posted to it. */
  let held: WebAssembly.Module | null = null;
  worker.addEventListener('message', (event: MessageEvent<unknown>) => {
    const id = idOf(event.data);
    const call = id === undefined ? undefined : pending.get(id);
    if (!call) return; // not an answer to a call of ours
    pending.delete(id!);
    const reply = parse(RunReply, event.data);
    if (!reply.ok) call.reject(new Error(`the task's worker answered with something that is not an outcome (${reply.message})`));
    else if (reply.value.kind === 'outcome') call.resolve(reply.value.outcome);
    else call.reject(new Error(reply.value.message));
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
  /** @param transfer what the job hands over rather than copies (a checkpoint port, its inputs' buffers: inputBuffers). */
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
    const id = idOf(event.data);
    if (id === undefined) return; // not a request: nothing to answer it with
    const fail = (error: unknown) => scope.postMessage({ kind: 'error', id, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) } satisfies RunReply);
    const request = parse(RunRequest, event.data);
    if (!request.ok) return fail(`the job is not one a task worker runs (${request.message})`);
    const module = request.value.job.module ?? held;
    if (!module) return fail('the job carries no compiled module, and the worker holds none');
    held = module;
    const answer = (outcome: WorkerOutcome) => scope.postMessage({ kind: 'outcome', id, outcome } satisfies RunReply, outcomeBuffers(outcome));
    try {
      const outcome = api.run({ ...request.value.job, module });
      // An outcome ready at once is posted at once: no turn through the microtask queue.
      // A failure to post (a DataCloneError) is answered too: the page must not wait for ever.
      if (outcome instanceof Promise) outcome.then(answer).catch(fail);
      else answer(outcome);
    } catch (error) {
      fail(error);
    }
  });
}
