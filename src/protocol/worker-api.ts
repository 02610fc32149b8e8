/**
 * The page <-> task worker call (src/protocol/task-channel.ts). The worker implements WorkerApi; the page calls it.
 * Both sides import this file, and only this file, from each other's world.
 */
import * as v from 'valibot';
import { ENGINES, RUN_ERRORS, Sha256Hex, type Engine, type RunErrorCode } from './schema.ts';
import { EMPTY_SHA256, type OutputDigests } from './results.ts';
import type { RunProgress } from './throttle.ts';

/** One run of a verified task. Everything in it has already been checked against the signed manifest. */
export interface WorkerJob {
  taskId: string;
  /** Which runtime runs it: each engine has its own worker (worker/runtime.ts, worker/wasix/runtime.ts). */
  engine: Engine;
  /** Compiled once on the page and shared: a WebAssembly.Module is cloneable to workers. */
  module: WebAssembly.Module;
  /** For `wasix` only: the module's (memory-capped) bytes, which @wasmer/sdk takes instead of a compiled module. */
  moduleBytes?: Uint8Array;
  args: string[];
  env: [string, string][];
  stdin: Uint8Array;
  files: { path: string; data: Uint8Array }[];
  preopens: string[];
  limits: { memoryBytes: number; outputBytes: number };
  /** Share of a core the run may use, 0.1 to 1, when there is no `control` block. */
  cpu: number;
  /**
   * The page's throttle control block (src/protocol/throttle.ts), on cross-origin isolated pages:
   * the share and pause state the run follows from yield to yield, and where it reports progress.
   */
  control?: SharedArrayBuffer;
  /** Virtual clocks and randomness seeded by the task id (docs/protocol.md, "Deterministic runs"). */
  deterministic: boolean;
  /** Where the worker sends each checkpoint file the program settles ({ path, data }), if the page keeps them. */
  checkpoints?: MessagePort;
}

/** What a run produced: a program result (error null), or the reason there is none. */
export interface WorkerOutcome {
  exitCode: number | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  files: { path: string; data: Uint8Array }[];
  truncated: { stdout: boolean; stderr: boolean; files: boolean };
  error: { code: RunErrorCode; message: string } | null;
  runMs: number;
  /** Probes the instrumented module executed: a measure of work that is the same on every device; null when not counted. */
  work: number | null;
  /**
   * The worker's own accounting of a run that finished (computing, napping and paused time): what
   * the control block shows live, for pages that cannot share memory with the worker and so read
   * it only here. Absent where the job had a control block (the same figures are there, as the
   * worker last reported them), and where nothing kept it (WASIX runs, runs that could not start).
   */
  progress?: RunProgress;
  /**
   * The large outputs' bytes in Blobs, made by the worker: a Blob crosses to the page, into
   * IndexedDB and into the binary request body (RESULT_BODY_TYPE) by reference, so the page's main
   * thread neither copies nor encodes megabytes of output. null for an output under
   * OUTPUT_BLOB_MIN_BYTES: the page keeps its bytes (`stdout`, `stderr`, `files`) as they are,
   * since making a Blob costs more than a small output's copy (about 0.7 ms each in a Chromium
   * worker, most of a small task's run; docs/benchmarks.md (l)).
   */
  blobs: { stdout: Blob | null; stderr: Blob | null; files: (Blob | null)[] };
  /**
   * SHA-256 of each output, for the signed result: hashed in the worker, off the page's main
   * thread. null where the run was synchronous and nothing hashed them yet (runJob in Node).
   */
  digests: OutputDigests | null;
}

/** Outputs of this many bytes or more also go to the page in a Blob (WorkerOutcome.blobs). */
export const OUTPUT_BLOB_MIN_BYTES = 64 * 1024;

/** An output's Blob for WorkerOutcome.blobs: made for a large output only. */
export function outputBlob(bytes: Uint8Array): Blob | null {
  return bytes.length >= OUTPUT_BLOB_MIN_BYTES ? new Blob([bytes as Uint8Array<ArrayBuffer>]) : null;
}

/** Bytes in whatever buffer they came in (the interfaces' Uint8Array is Uint8Array<ArrayBufferLike>). */
const Bytes = v.custom<Uint8Array>((x) => x instanceof Uint8Array, 'must be a Uint8Array');
const Files = v.array(v.strictObject({ path: v.string(), data: Bytes }));
const Amount = v.pipe(v.number(), v.finite(), v.minValue(0));
const Blob_ = v.nullable(v.instance(Blob));
/** Named by instanceof only where the global exists: pages that are not cross-origin isolated have no SharedArrayBuffer. */
const SharedBuffer = v.custom<SharedArrayBuffer>((x) => typeof SharedArrayBuffer === 'function' && x instanceof SharedArrayBuffer, 'must be a SharedArrayBuffer');

/** WorkerJob as the task worker checks it (src/protocol/task-channel.ts). */
export const WorkerJobSchema = v.strictObject({
  taskId: v.string(),
  engine: v.picklist(ENGINES),
  module: v.instance(WebAssembly.Module),
  moduleBytes: v.optional(Bytes),
  args: v.array(v.string()),
  env: v.array(v.tuple([v.string(), v.string()])),
  stdin: Bytes,
  files: Files,
  preopens: v.array(v.string()),
  limits: v.strictObject({ memoryBytes: Amount, outputBytes: Amount }),
  cpu: v.pipe(v.number(), v.minValue(0.1), v.maxValue(1)),
  control: v.optional(SharedBuffer),
  deterministic: v.boolean(),
  checkpoints: v.optional(v.instance(MessagePort)),
});

const RunProgressSchema = v.strictObject({
  work: Amount,
  busyMs: Amount,
  napMs: Amount,
  pausedMs: Amount,
  steadyWork: Amount,
  steadyBusyMs: Amount,
  speedChecks: Amount,
  speedCheckMs: Amount,
});

/** WorkerOutcome as the page checks it (src/protocol/task-channel.ts). */
export const WorkerOutcomeSchema = v.strictObject({
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
  stdout: Bytes,
  stderr: Bytes,
  files: Files,
  truncated: v.strictObject({ stdout: v.boolean(), stderr: v.boolean(), files: v.boolean() }),
  error: v.nullable(v.strictObject({ code: v.picklist(RUN_ERRORS), message: v.string() })),
  runMs: Amount,
  work: v.nullable(Amount),
  progress: v.optional(RunProgressSchema),
  blobs: v.strictObject({ stdout: Blob_, stderr: Blob_, files: v.array(Blob_) }),
  digests: v.nullable(v.strictObject({ stdout: Sha256Hex, stderr: Sha256Hex, files: v.array(v.strictObject({ path: v.string(), sha256: Sha256Hex })) })),
});

// The interfaces above carry the documentation; these fail to compile when a schema and its interface part.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const jobSchemaMatches: Same<v.InferOutput<typeof WorkerJobSchema>, WorkerJob> = true;
const outcomeSchemaMatches: Same<v.InferOutput<typeof WorkerOutcomeSchema>, WorkerOutcome> = true;
void jobSchemaMatches, outcomeSchemaMatches;

export interface WorkerApi {
  run(job: WorkerJob): Promise<WorkerOutcome>;
}

/** An outcome with no program result: the run ended for `code`. */
export function failedOutcome(code: RunErrorCode, message: string, runMs: number): WorkerOutcome {
  const empty = new Uint8Array(0);
  return {
    exitCode: null,
    stdout: empty,
    stderr: empty,
    files: [],
    truncated: { stdout: false, stderr: false, files: false },
    error: { code, message },
    runMs,
    work: null,
    blobs: { stdout: null, stderr: null, files: [] },
    digests: { stdout: EMPTY_SHA256, stderr: EMPTY_SHA256, files: [] },
  };
}
