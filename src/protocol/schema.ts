/**
 * The wire format: every message that crosses a boundary (page <-> server, page <-> worker,
 * CLI <-> server) as a valibot schema plus the TypeScript type inferred from it. docs/protocol.md
 * says the same in prose; keep the two in step.
 */
import * as v from 'valibot';

export const PROTOCOL_VERSION = 1;

/**
 * Engines a task can ask for. Clients advertise the ones they can run; the server leases only those.
 * `wasi-preview1`: our own shim (worker/wasi), everywhere. `wasix`: WASIX or threaded programs under
 * @wasmer/sdk, only on cross-origin isolated pages (docs/protocol.md, "Engines").
 */
export const ENGINES = ['wasi-preview1', 'wasix'] as const;
export type Engine = (typeof ENGINES)[number];

const Sha256Hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be a lowercase SHA-256 hex digest'));
const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ -'));
const KeyId = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits'));
const Base64 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'));
const Millis = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));
/** An absolute guest path inside the task's file system: no `.`/`..` segments, no empty segments. */
const GuestPath = v.pipe(
  v.string(),
  v.maxLength(1024),
  v.check((p) => p === '/' || /^(\/(?!\.\.?(\/|$))[^/\0]+)+$/.test(p), 'must be an absolute path without . or .. segments'),
);

export const BlobRef = v.strictObject({ sha256: Sha256Hex, size: Count(2 ** 31) });
export type BlobRef = v.InferOutput<typeof BlobRef>;

/** The most a task may write to each of stdout, stderr and its output files together. */
export const MAX_OUTPUT_BYTES = 16 * 2 ** 20;
/** A result body at those caps: three outputs in base64 (4/3), plus room for the JSON around them. */
export const MAX_RESULT_BODY_BYTES = Math.ceil((3 * MAX_OUTPUT_BYTES * 4) / 3) + 2 ** 20;

export const TaskLimits = v.strictObject({
  /** Cap on the module's linear memory, bytes. */
  memoryBytes: Count(4 * 2 ** 30),
  /** Wall-clock time for one run, ms; the worker is terminated past it. */
  wallTimeMs: v.pipe(Millis, v.minValue(1), v.maxValue(24 * 3600 * 1000)),
  /** Cap on each of stdout, stderr, and the output files together, bytes. */
  outputBytes: Count(MAX_OUTPUT_BYTES),
});
export type TaskLimits = v.InferOutput<typeof TaskLimits>;

/** What a project signs: everything a run depends on. */
export const TaskManifest = v.strictObject({
  v: v.literal(PROTOCOL_VERSION),
  /** Which signing key signed this manifest (see keyIdOf). */
  keyId: KeyId,
  taskId: Id,
  batchId: Id,
  name: v.pipe(v.string(), v.maxLength(200)),
  issuedAt: Millis,
  expiresAt: Millis,
  engine: v.picklist(ENGINES),
  module: BlobRef,
  /** argv, argv[0] included. */
  args: v.pipe(v.array(v.pipe(v.string(), v.maxLength(4096))), v.maxLength(1024)),
  env: v.pipe(v.array(v.tuple([v.pipe(v.string(), v.regex(/^[^=\0]+$/, 'env names may not hold = or NUL')), v.string()])), v.maxLength(1024)),
  stdin: v.nullable(BlobRef),
  /** Input files placed at these guest paths before the run. */
  files: v.pipe(v.array(v.strictObject({ path: GuestPath, blob: BlobRef })), v.maxLength(10000)),
  /** Guest directories given to the program as preopened fds 3, 4, ... in this order. */
  preopens: v.pipe(v.array(GuestPath), v.maxLength(64)),
  limits: TaskLimits,
  /** How many distinct devices must return a result. */
  redundancy: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(16)),
  /**
   * Run with virtual clocks and seeded randomness so every device produces the same bytes.
   * Absent: on when redundancy > 1 (see isDeterministic).
   */
  deterministic: v.optional(v.boolean()),
});
export type TaskManifest = v.InferOutput<typeof TaskManifest>;

/** Whether a task runs deterministically: as its manifest says, else whenever results are compared (redundancy > 1). */
export function isDeterministic(manifest: TaskManifest): boolean {
  return manifest.deterministic ?? manifest.redundancy > 1;
}

/** A manifest with its ed25519 signature (base64) over signingBytes(manifest). */
export const SignedTask = v.strictObject({ manifest: TaskManifest, signature: Base64 });
export type SignedTask = v.InferOutput<typeof SignedTask>;

// ---- Client <-> server --------------------------------------------------------------------

export const WorkRequest = v.strictObject({
  deviceId: Id,
  engines: v.pipe(v.array(v.picklist(ENGINES)), v.minLength(1)),
  /** How many leases the client wants now. */
  max: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(64)),
});
export type WorkRequest = v.InferOutput<typeof WorkRequest>;

export const Lease = v.strictObject({ leaseId: Id, expiresAt: Millis, task: SignedTask });
export type Lease = v.InferOutput<typeof Lease>;

export const WorkResponse = v.strictObject({ leases: v.array(Lease) });
export type WorkResponse = v.InferOutput<typeof WorkResponse>;

/**
 * Why a run produced no program result. `exit` codes are program results, not errors:
 * a program that exits 3 has a result with exitCode 3 and error null.
 */
export const RUN_ERRORS = ['trap', 'timeout', 'memory-limit', 'link', 'invalid-module', 'internal'] as const;
export type RunErrorCode = (typeof RUN_ERRORS)[number];

/** Why a client refused a task before compiling it. */
export const REFUSALS = [
  'bad-signature',
  'unknown-key',
  'expired-task',
  'module-hash-mismatch',
  'module-size-mismatch',
  'input-hash-mismatch',
  'bad-manifest',
  'module-too-large',
  'unsupported-engine',
] as const;
export type RefusalReason = (typeof REFUSALS)[number];

export const OutputFile = v.strictObject({ path: GuestPath, data: Base64 });

export const ResultSubmission = v.strictObject({
  leaseId: Id,
  taskId: Id,
  deviceId: Id,
  /** null when `error` is set. */
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
  stdout: Base64,
  stderr: Base64,
  files: v.pipe(v.array(OutputFile), v.maxLength(10000)),
  truncated: v.strictObject({ stdout: v.boolean(), stderr: v.boolean(), files: v.boolean() }),
  error: v.nullable(v.strictObject({ code: v.picklist(RUN_ERRORS), message: v.pipe(v.string(), v.maxLength(4000)) })),
  timings: v.strictObject({ fetchMs: v.number(), compileMs: v.number(), runMs: v.number() }),
});
export type ResultSubmission = v.InferOutput<typeof ResultSubmission>;

/** Asks for more time on a lease whose task is still running. */
export const LeaseRenewal = v.strictObject({ leaseId: Id, taskId: Id, deviceId: Id });
export type LeaseRenewal = v.InferOutput<typeof LeaseRenewal>;

export const RefusalReport = v.strictObject({
  leaseId: Id,
  taskId: Id,
  deviceId: Id,
  reason: v.picklist(REFUSALS),
  detail: v.pipe(v.string(), v.maxLength(2000)),
});
export type RefusalReport = v.InferOutput<typeof RefusalReport>;

// ---- CLI <-> server --------------------------------------------------------------------------

/** Publishing: signed tasks, plus the bytes of every blob they name that the server lacks. */
export const PublishRequest = v.strictObject({
  batch: v.strictObject({ batchId: Id, name: v.pipe(v.string(), v.maxLength(200)) }),
  tasks: v.pipe(v.array(SignedTask), v.minLength(1), v.maxLength(100000)),
  blobs: v.record(Sha256Hex, Base64),
});
export type PublishRequest = v.InferOutput<typeof PublishRequest>;

export const MissingBlobsRequest = v.strictObject({ hashes: v.pipe(v.array(Sha256Hex), v.maxLength(100000)) });

export const TASK_STATES = ['queued', 'running', 'done', 'failed', 'refused', 'expired'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** Bytes as JSON: UTF-8 text where the bytes are valid UTF-8, else `{ base64 }`. */
export type JsonBytes = string | { base64: string };

export interface TaskResultView {
  taskId: string;
  name: string;
  state: TaskState;
  args: string[];
  exitCode: number | null;
  stdout: JsonBytes | null;
  stderr: JsonBytes | null;
  files: { path: string; data: JsonBytes }[];
  truncated: { stdout: boolean; stderr: boolean; files: boolean } | null;
  error: { code: string; message: string } | null;
  refusals: { reason: RefusalReason; detail: string; deviceId: string; at: number }[];
  results: number;
  redundancy: number;
}

export interface BatchResults {
  batchId: string;
  name: string;
  tasks: TaskResultView[];
}

export interface BatchStatus {
  batchId: string;
  name: string;
  createdAt: number;
  counts: Record<TaskState, number>;
  refusals: { taskId: string; reason: RefusalReason; detail: string; deviceId: string; at: number }[];
}

/** Every error the server returns has this body. */
export interface ApiError {
  error: string;
  message: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validates `input` against `schema`; the message names the path of the first problem. */
export function parse<S extends v.GenericSchema>(schema: S, input: unknown): Parsed<v.InferOutput<S>> {
  const result = v.safeParse(schema, input);
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  return { ok: false, message: path ? `${path}: ${issue.message}` : issue.message };
}
