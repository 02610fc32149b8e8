/**
 * The wire format: every message that crosses a boundary (page <-> server, page <-> worker,
 * CLI <-> server) as a valibot schema plus the TypeScript type inferred from it. docs/protocol.md
 * says the same in prose; keep the two in step.
 */
import * as v from 'valibot';
import { isWellFormed } from './canonical-json.ts';

export const PROTOCOL_VERSION = 1;

/**
 * Engines a task can ask for. Clients advertise the ones they can run; the server leases only those.
 * `wasi-preview1`: our own shim (worker/wasi), everywhere. `wasix`: WASIX or threaded programs under
 * @wasmer/sdk, only on cross-origin isolated pages (docs/protocol.md, "Engines").
 */
export const ENGINES = ['wasi-preview1', 'wasix'] as const;
export type Engine = (typeof ENGINES)[number];

export const Sha256Hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be a lowercase SHA-256 hex digest'));
const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ -'));
const KeyId = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits'));
/** Standard base64 with its padding (RFC 4648, section 4): whole groups of four characters. */
const Base64 = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
  v.check((s) => s.length % 4 === 0, 'must be base64 in whole groups of 4 characters (padded with =)'),
);
const Millis = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));
/** Text a signature may cover: canonical JSON (RFC 8785) takes only well-formed Unicode. */
const Text = (maxLength: number) => v.pipe(v.string(), v.maxLength(maxLength), v.check(isWellFormed, 'must be well-formed Unicode (no lone surrogate)'));
/** A duration a device measured, ms: finite (JSON's 1e999 parses as Infinity). */
const Duration = v.pipe(v.number(), v.finite('must be a finite number'), v.minValue(0));
/** A count that only grows, as JSON numbers carry exactly. */
const SafeCount = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
/** An absolute guest path inside the task's file system: no `.`/`..` segments, no empty segments. */
const GuestPath = v.pipe(
  v.string(),
  v.maxLength(1024),
  v.check((p) => p === '/' || /^(\/(?!\.\.?(\/|$))[^/\0]+)+$/.test(p), 'must be an absolute path without . or .. segments'),
  v.check(isWellFormed, 'must be well-formed Unicode (no lone surrogate)'),
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
  name: Text(200),
  issuedAt: Millis,
  expiresAt: Millis,
  engine: v.picklist(ENGINES),
  module: BlobRef,
  /** argv, argv[0] included. */
  args: v.pipe(v.array(Text(4096)), v.maxLength(1024)),
  env: v.pipe(v.array(v.tuple([v.pipe(Text(Infinity), v.regex(/^[^=\0]+$/, 'env names may not hold = or NUL')), Text(Infinity)])), v.maxLength(1024)),
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

// ---- Keys: the project's root signs a keyset naming its task-signing keys -------------------

/** A task-signing key as the keyset names it. */
export const KeysetKey = v.strictObject({
  keyId: KeyId,
  /** base64 of the 32-byte ed25519 public key; its keyIdOf must be keyId. */
  publicKey: Base64,
  /** Tasks signed by this key verify from this time (ms)... */
  notBefore: Millis,
  /** ...until this one (exclusive); null: open-ended. Rotation closes the old key's window. */
  notAfter: v.nullable(Millis),
  /** When it was revoked; a revoked key verifies nothing, whatever its window. */
  revokedAt: v.nullable(Millis),
});
export type KeysetKey = v.InferOutput<typeof KeysetKey>;

/**
 * The task-signing keys a project stands behind, signed by one of its root keys. Versions only
 * go up: a client never lets an older keyset replace a newer one (rollback).
 */
export const Keyset = v.strictObject({
  v: v.literal(PROTOCOL_VERSION),
  version: v.pipe(v.number(), v.integer(), v.minValue(1)),
  issuedAt: Millis,
  keys: v.pipe(v.array(KeysetKey), v.minLength(1), v.maxLength(256)),
});
export type Keyset = v.InferOutput<typeof Keyset>;

/** A keyset with a root key's ed25519 signature over keysetSigningBytes(keyset). */
export const SignedKeyset = v.strictObject({ keyset: Keyset, rootKeyId: KeyId, signature: Base64 });
export type SignedKeyset = v.InferOutput<typeof SignedKeyset>;

/** Why a client refused a keyset it was served. */
export const KEYSET_REFUSALS = ['bad-keyset', 'keyset-unknown-root', 'keyset-bad-signature', 'keyset-rollback'] as const;
export type KeysetRefusalReason = (typeof KEYSET_REFUSALS)[number];

export const WorkRequest = v.strictObject({
  deviceId: Id,
  /** The device's ed25519 public key (base64); deviceId must be deviceIdOf(publicKey). Results are signed with it. */
  publicKey: Base64,
  engines: v.pipe(v.array(v.picklist(ENGINES)), v.minLength(1)),
  /** How many leases the client wants now. */
  max: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(64)),
});
export type WorkRequest = v.InferOutput<typeof WorkRequest>;

export const Lease = v.strictObject({ leaseId: Id, expiresAt: Millis, task: SignedTask });
export type Lease = v.InferOutput<typeof Lease>;

export const WorkResponse = v.strictObject({
  leases: v.array(Lease),
  /** The version of the keyset the server holds (0: none): a client holding an older one fetches it. */
  keysetVersion: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
export type WorkResponse = v.InferOutput<typeof WorkResponse>;

/**
 * Why a run produced no program result. `exit` codes are program results, not errors:
 * a program that exits 3 has a result with exitCode 3 and error null. `device`: this device could
 * not prepare or run the task at all (its worker would not start, its storage failed): a failure
 * of the device, which says nothing about the task.
 */
export const RUN_ERRORS = ['trap', 'timeout', 'memory-limit', 'link', 'invalid-module', 'internal', 'device'] as const;
export type RunErrorCode = (typeof RUN_ERRORS)[number];

/** Why a client refused a task before compiling it. */
export const REFUSALS = [
  'bad-signature',
  'unknown-key',
  'revoked-key',
  'expired-key',
  'expired-task',
  'replayed-task',
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
  error: v.nullable(v.strictObject({ code: v.picklist(RUN_ERRORS), message: Text(4000) })),
  timings: v.strictObject({ fetchMs: Duration, compileMs: Duration, runMs: Duration }),
  /**
   * Probes the instrumented module executed (docs/scheduling.md), the work measure credit is based
   * on; null when not counted. The server refuses more than the task's wall time allows (maxWork).
   */
  work: v.nullable(SafeCount),
  /** The device's ed25519 signature (base64) over resultSigningBytes(this submission without it). */
  signature: Base64,
});
export type ResultSubmission = v.InferOutput<typeof ResultSubmission>;

const Size = v.pipe(v.number(), v.integer(), v.minValue(0));
/**
 * The JSON head of a binary result body (docs/protocol.md, "POST /api/results"): the submission
 * with each output's size in place of its base64 bytes, which follow the head raw, in this order.
 */
export const ResultHead = v.strictObject({
  ...v.omit(ResultSubmission, ['stdout', 'stderr', 'files']).entries,
  stdout: v.strictObject({ size: Size }),
  stderr: v.strictObject({ size: Size }),
  files: v.pipe(v.array(v.strictObject({ path: GuestPath, size: Size })), v.maxLength(10000)),
});
export type ResultHead = v.InferOutput<typeof ResultHead>;

/**
 * What a device is doing with a lease: readying its task (fetching, hashing and rewriting the
 * module and inputs, compiling), then running it. A lease goes from one to the other once.
 */
export const LEASE_PHASES = ['preparing', 'running'] as const;
export type LeasePhase = (typeof LEASE_PHASES)[number];

/**
 * Asks for more time on a lease, showing progress (docs/protocol.md, POST /api/leases/renew): a
 * count that grew since the device's last renewal of it, signed by the device. While preparing:
 * bytes of the module and inputs fetched, hashed and rewritten so far (each byte counts once per
 * step: at most 3 times their sizes); while running: the work counter (probes, as `work`).
 */
export const LeaseRenewal = v.strictObject({
  leaseId: Id,
  taskId: Id,
  deviceId: Id,
  phase: v.picklist(LEASE_PHASES),
  progress: SafeCount,
  /** The device's ed25519 signature (base64) over renewalSigningBytes(this renewal without it). */
  signature: Base64,
});
export type LeaseRenewal = v.InferOutput<typeof LeaseRenewal>;

/**
 * What a client refused, reported to the server: a task it was leased (`kind: 'task'`; the task
 * id is the one the envelope it got named, which a tampered lease may have changed) or a keyset
 * it was served (`kind: 'keyset'`).
 */
export const RefusalReport = v.variant('kind', [
  v.strictObject({
    kind: v.literal('task'),
    leaseId: Id,
    taskId: Id,
    deviceId: Id,
    reason: v.picklist(REFUSALS),
    detail: Text(2000),
    /** The device's ed25519 signature (base64) over refusalSigningBytes(this report without it). */
    signature: Base64,
  }),
  v.strictObject({
    kind: v.literal('keyset'),
    deviceId: Id,
    /** The version the refused keyset claimed, 0 when it had none readable. */
    version: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER)),
    reason: v.picklist(KEYSET_REFUSALS),
    detail: Text(2000),
    /**
     * The device's public key (base64), as in a work request: a device refuses a keyset before it
     * ever asks for work, so the report may register its key. Without it, the key must be on record.
     */
    publicKey: v.optional(Base64),
    /** As for a task: a keyset refusal is taken only from a device whose key the server registers. */
    signature: Base64,
  }),
]);
export type RefusalReport = v.InferOutput<typeof RefusalReport>;
export type TaskRefusalReport = Extract<RefusalReport, { kind: 'task' }>;
export type KeysetRefusalReport = Extract<RefusalReport, { kind: 'keyset' }>;

// ---- CLI <-> server --------------------------------------------------------------------------

/** Publishing: signed tasks, plus the bytes of every blob they name that the server lacks. */
export const PublishRequest = v.strictObject({
  batch: v.strictObject({
    batchId: Id,
    name: Text(200),
    /**
     * Adaptive replication (server policy, not signed): a task may be done on the word of one
     * device that has earned trust, spot-checked at random (docs/protocol.md, "Validation").
     */
    adaptive: v.optional(v.boolean()),
  }),
  tasks: v.pipe(v.array(SignedTask), v.minLength(1), v.maxLength(100000)),
  blobs: v.record(Sha256Hex, Base64),
});
export type PublishRequest = v.InferOutput<typeof PublishRequest>;

export const MissingBlobsRequest = v.strictObject({ hashes: v.pipe(v.array(Sha256Hex), v.maxLength(100000)) });

/** Blobs asked for in one request (a task's inputs: one request each paid a round trip, six at a time, per blob). */
export const MAX_BLOB_BATCH = 1000;
/** The most bytes one batch may ask for; a client splits larger sets. */
export const MAX_BLOB_BATCH_BYTES = 16 * 2 ** 20;
export const BlobBatchRequest = v.strictObject({ hashes: v.pipe(v.array(Sha256Hex), v.minLength(1), v.maxLength(MAX_BLOB_BATCH)) });
export type BlobBatchRequest = v.InferOutput<typeof BlobBatchRequest>;

/**
 * `done`: a quorum of devices agreed (the canonical result is theirs) and the program exited 0;
 * `exit-nonzero`: a quorum agreed on a result whose exit code is not 0 (the program ran and
 * reported failure: its result is there, but it did not succeed); `failed`: runs kept erroring
 * (trap, timeout, ...); `inconclusive`: results kept disagreeing up to the replica limit;
 * `revoked`: its signing key was revoked before it was done; `cancelled`: its owner cancelled it.
 */
export const TASK_STATES = ['queued', 'running', 'done', 'exit-nonzero', 'failed', 'refused', 'expired', 'inconclusive', 'revoked', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** The states a task ends in: nothing changes it afterwards. */
export const FINAL_STATES: readonly TaskState[] = ['done', 'exit-nonzero', 'failed', 'refused', 'expired', 'inconclusive', 'revoked', 'cancelled'];

export function isFinal(state: TaskState): boolean {
  return FINAL_STATES.includes(state);
}

/** Whether the task succeeded: agreed on, and its program exited 0. Every other end is a task that did not. */
export function succeeded(state: TaskState): boolean {
  return state === 'done';
}

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
  /** Successful results received (from distinct devices or not). */
  results: number;
  redundancy: number;
  quorum: QuorumView;
}

/** Where a task stands in validation (docs/protocol.md, "Validation"). */
export interface QuorumView {
  /** Agreeing results from distinct devices it needs to be done: the redundancy, or 1 for a trusted device's solo run. */
  needed: number;
  /** Results it will take in all before it is inconclusive. */
  limit: number;
  /** The largest group of distinct devices agreeing on one output. */
  agreeing: number;
  /** Distinct outputs among its successful results. */
  outputs: number;
  /** One line per result: which device, its output digest (SHA-256, hex), and how it was judged. */
  results: { deviceId: string; digest: string | null; validation: Validation; credit: number; at: number }[];
}

/**
 * `pending`: awaiting a quorum; `valid`: agrees with the canonical result (credited); `invalid`:
 * disagrees (no credit, the device's run of valid results starts over); `error`: the run failed;
 * `void`: the task ended without a quorum (failed, inconclusive, expired or revoked): no credit,
 * no judgement on the device.
 */
export type Validation = 'pending' | 'valid' | 'invalid' | 'error' | 'void';

/** A device's standing, by its key: `GET /api/devices/<deviceId>`. */
export interface DeviceCredit {
  deviceId: string;
  /** Credit for results the quorum validated. */
  validated: number;
  /** Credit the device's results awaiting a quorum would earn if validated. */
  pending: number;
  results: { valid: number; invalid: number; pending: number; error: number };
  /** Valid results in a row: trusted (checked less) from TRUST_AFTER_VALID. */
  consecutiveValid: number;
  trusted: boolean;
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
  /** `newDevice`: the device had not earned trust when it refused (its refusal re-issues the task, never ends it). */
  refusals: { taskId: string; reason: RefusalReason; detail: string; deviceId: string; at: number; newDevice: boolean }[];
  /** The newest failed runs (error results, and `device` failures), newest last: at most MAX_FAILURES_LISTED. */
  failures: FailureReport[];
  /** What devices reported against the batch's tasks (docs/security.md, "Hostile donors"). */
  reports: ReportCounts;
  adaptive: boolean;
  /**
   * Validation in progress: unfinished tasks with results awaiting agreement, and of those the
   * disputed ones (results disagreed, so more replicas were drawn).
   */
  quorum: { awaiting: number; disputed: number };
}

/** A run that produced no result, as a device reported it. */
export interface FailureReport {
  taskId: string;
  deviceId: string;
  /** A RunErrorCode; `device`: this device could not prepare or run the task at all, which says nothing about the task. */
  code: string;
  message: string;
  at: number;
  /** The device had not earned trust when it reported. */
  newDevice: boolean;
}

/** How many failed runs a batch status lists; the counts count them all. */
export const MAX_FAILURES_LISTED = 100;

/**
 * Reports from devices against a batch's tasks. A report from a device that has not earned trust
 * (`fromNewDevices`) only re-issues its task, up to the task's replica cap; past the cap the task
 * goes only to devices that have earned trust (`awaitingTrust`).
 */
export interface ReportCounts {
  /** Error results: the program trapped, timed out, hit its memory limit, would not link... */
  errors: number;
  /** Tasks refused before they ran (a check failed on the device). */
  refusals: number;
  /** Tasks a device could not prepare or run (error code `device`): never counted against the task. */
  deviceFailures: number;
  /** Of all three, those from devices that had not earned trust when they reported. */
  fromNewDevices: number;
  /** Unfinished tasks whose reports from new devices reached the replica cap: now leased only to trusted devices. */
  awaitingTrust: number;
}

/** Every error the server returns has this body. */
export interface ApiError {
  error: string;
  message: string;
}
export const ApiErrorBody = v.object({ error: v.string(), message: v.string() });

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validates `input` against `schema`; the message names the path of the first problem. */
export function parse<S extends v.GenericSchema>(schema: S, input: unknown): Parsed<v.InferOutput<S>> {
  const result = v.safeParse(schema, input);
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  return { ok: false, message: path ? `${path}: ${issue.message}` : issue.message };
}
