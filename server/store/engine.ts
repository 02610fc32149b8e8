/**
 * What a database engine gives the store: transactions, and in them the queries the workflows
 * (store.ts) are written in. Each query is one statement or a few, with the same meaning on every
 * engine; an engine adds only what its concurrency needs (row locks, SKIP LOCKED) where the query
 * says so. The rules deciding what to write are not here: they are pure functions (rules.ts).
 */
import type { FailureReport, LeasePhase, QuorumView, ReportCounts, TaskState, Validation } from '../../src/protocol/index.ts';
import type { CreditRow, LeaseFacts, PendingResult, Report, RunEffect } from './rules.ts';

export type EngineName = 'sqlite' | 'postgres';

export interface EngineInfo {
  engine: EngineName;
  /** Migrations applied: the length of the engine's ladder once it is up to date. */
  schemaVersion: number;
  /** Engine details worth seeing in tests and logs (SQLite's journal mode, PostgreSQL's version, the pool size). */
  details: Record<string, string | number>;
}

export interface Engine {
  readonly name: EngineName;
  /**
   * Runs `work` as one transaction that may write: committed when it resolves, rolled back when
   * it throws (and, on an engine where two transactions can collide, run again from the start:
   * `work` must do nothing but queries). `now` is the transaction's time, ms since epoch: the
   * store's clock, or the database's where servers must agree on it.
   */
  write<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T>;
  /** Runs `work` as one read-only transaction: all its queries see one state of the database. */
  read<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T>;
  readonly blobs: Blobs;
  info(): Promise<EngineInfo>;
  close(): Promise<void>;
}

/** Content-addressed bytes: written once under their SHA-256 (hex), never changed. */
export interface Blobs {
  /** The bytes as stored; the server does not vouch for them, clients verify. */
  read(sha256: string): Promise<Buffer | null>;
  /** Of these hashes, the ones not stored. */
  missing(hashes: readonly string[]): Promise<string[]>;
  /** Stores bytes the caller has checked against their hash; a hash already stored is left as it is. */
  write(blobs: ReadonlyMap<string, Uint8Array>): Promise<void>;
}

export interface NewTask {
  taskId: string;
  seq: number;
  /** The signed envelope, as JSON. */
  envelope: string;
  engine: string;
  redundancy: number;
  expiresAt: number;
  wallTimeMs: number;
  keyId: string;
  /** The manifest's limits.outputBytes. */
  outputBytes: number;
  /** The module's, stdin's and input files' sizes together (rules.leaseTerms). */
  prepareBytes: number;
}

export interface NewBatch {
  batchId: string;
  name: string;
  digest: string;
  adaptive: boolean;
  createdAt: number;
}

/** A task row as the workflows need it. */
export interface TaskFacts {
  taskId: string;
  state: TaskState;
  results: number;
  errors: number;
  redundancy: number;
  needed: number;
  wallTimeMs: number;
  outputBytes: number;
  prepareBytes: number;
  /** Its reports from devices that have not earned trust reached its replica cap: leased to trusted devices only. */
  trustedOnly: boolean;
  canonicalLeaseId: string | null;
}

/** A task that may be leased to the asking device now. */
export interface LeaseCandidate {
  taskId: string;
  envelope: string;
  wallTimeMs: number;
  prepareBytes: number;
  results: number;
  adaptive: boolean;
  /** Live leases on it now. */
  live: number;
}

export interface NewResult {
  leaseId: string;
  taskId: string;
  deviceId: string;
  bodyHash: string;
  exitCode: number | null;
  stdout: Buffer;
  stderr: Buffer;
  /** JSON of the files, the truncation flags and the timings, as submitted. */
  files: string;
  truncated: string;
  timings: string;
  errorCode: string | null;
  errorMessage: string | null;
  receivedAt: number;
  work: number | null;
  outputDigest: string | null;
  signature: string;
  validation: Validation;
  credit: number;
  /** The device had earned trust when it answered. */
  trusted: boolean;
}

/** One device's dealings with the server in a recent window (Store.activeDevices). */
export interface DeviceActivity {
  deviceId: string;
  /** Its latest lease, result or refusal, ms since epoch. */
  lastSeen: number;
  /** In the window: leases handed to it, results without an error, results with one, refusals. */
  leases: number;
  results: number;
  errors: number;
  refusals: number;
  /** Leases it holds now, still live. */
  live: number;
}

export interface KeysetRefusalRow {
  deviceId: string;
  version: number;
  reason: string;
  detail: string;
  at: number;
  /** The device had earned trust when it reported. */
  trusted: boolean;
}

export interface BatchRow {
  batchId: string;
  name: string;
  createdAt: number;
  adaptive: boolean;
}

export interface RefusalRow {
  taskId: string;
  reason: string;
  detail: string;
  deviceId: string;
  at: number;
  trusted: boolean;
}

/** A task of a batch, for reading its results. */
export interface BatchTaskRow {
  taskId: string;
  envelope: string;
  state: TaskState;
  results: number;
  redundancy: number;
  expiresAt: number;
  /** Leases handed out for it, ever; live now; solo and live or answered (the task is judged by one device). */
  leases: number;
  live: number;
  solo: number;
  canonicalLeaseId: string | null;
}

/** A result of a batch's task, in the order results arrived (for quorum views and the last error). */
export type BatchResultRow = QuorumView['results'][number] & { taskId: string; errorCode: string | null; errorMessage: string | null };

/** A task event as stored: the task's stored state (`done` whatever the exit code), or `running` for a lease. */
export interface TaskEventRow {
  seq: number;
  taskId: string;
  state: TaskState;
}

export interface CanonicalRow {
  leaseId: string;
  taskId: string;
  deviceId: string;
  exitCode: number | null;
  stdout: Buffer;
  stderr: Buffer;
  files: string;
  truncated: string;
  timings: string;
}

export interface Queries {
  // Publishing and keysets
  batchDigest(batchId: string): Promise<string | null>;
  /** Of these task ids, those some batch already holds. */
  takenTaskIds(taskIds: readonly string[]): Promise<string[]>;
  insertBatch(batch: NewBatch, tasks: readonly NewTask[]): Promise<void>;
  /** The newest keyset stored, as its JSON. */
  keyset(): Promise<{ version: number; body: string } | null>;
  insertKeyset(version: number, body: string, now: number): Promise<void>;
  /** Queued tasks signed by these keys become `revoked`, their pending results void; returns how many. */
  revokeTasks(keyIds: readonly string[]): Promise<number>;
  /** Queued tasks whose manifest expired become `expired`, their pending results void; returns how many. */
  expireTasks(now: number): Promise<number>;
  /** The batch's queued tasks become `cancelled`, their pending results void; returns how many. */
  cancelTasks(batchId: string): Promise<number>;

  // Devices
  /** Records a new device, or a known one's last_seen when the key matches; returns the key on record. */
  upsertDevice(deviceId: string, publicKey: string, now: number): Promise<string>;
  devicePublicKey(deviceId: string): Promise<string | null>;
  /** The device's run of valid results, or null for an unknown device. */
  deviceRun(deviceId: string): Promise<number | null>;
  creditRows(deviceId: string): Promise<CreditRow[]>;
  touchDevice(deviceId: string, now: number): Promise<void>;
  /** Marks a result valid with its credit, or invalid, and applies `run` to the device's run of valid results. */
  judge(leaseId: string, deviceId: string, agrees: boolean, credit: number, run: RunEffect): Promise<void>;

  // Leases
  /**
   * What a work request needs besides the tasks: the device's run of valid results (0 if unknown),
   * the keyset's version (0 if none), the leases it holds live at `now`, and its valid results
   * received since `since` (its proven throughput).
   */
  leaseContext(deviceId: string, now: number, since: number): Promise<{ consecutiveValid: number; keysetVersion: number; live: number; validRecently: number }>;
  /**
   * Up to `max` tasks the device may be leased now, oldest batch first, tasks in order: queued,
   * unexpired, in one of its engines, wanting more results than they have and hold live leases,
   * with no live solo lease, never leased to this device before (a device is given a task once:
   * if its lease lapsed it may still be working on it), and, unless `trusted`, not held for
   * trusted devices (trustedOnly).
   * Must hold where servers lease at once: the tasks returned are not returned to another
   * transaction until this one ends (locked), and none is passed over for being locked by one.
   */
  leaseCandidates(deviceId: string, engines: readonly string[], max: number, now: number, trusted: boolean): Promise<LeaseCandidate[]>;
  insertLease(lease: { leaseId: string; taskId: string; deviceId: string; issuedAt: number; expiresAt: number; endsAt: number; solo: boolean }): Promise<void>;
  lease(leaseId: string): Promise<LeaseFacts | null>;
  setLeaseStatus(leaseId: string, status: 'answered' | 'refused'): Promise<void>;
  /** Records a renewal: the new expiry and the progress it showed. */
  renewLease(leaseId: string, expiresAt: number, phase: LeasePhase, progress: number): Promise<void>;

  // Tasks
  /**
   * The task, held until the transaction ends: every change to a task's results, leases' status
   * or state happens under this, so its reads see all of them. Null for no such task.
   */
  lockTask(taskId: string): Promise<TaskFacts | null>;
  /** One more successful result on the task. */
  countResult(taskId: string): Promise<void>;
  /** What every device reported on the task: its results (with or without an error) and refusals, oldest first. */
  taskReports(taskId: string): Promise<Report[]>;
  /** From now on the task is leased only to devices that have earned trust. */
  holdForTrusted(taskId: string): Promise<void>;
  finishTask(taskId: string, canonicalLeaseId: string): Promise<void>;
  /** Ends a queued task without a quorum (failed, inconclusive, refused): its pending results become void. */
  endTask(taskId: string, state: 'failed' | 'inconclusive' | 'refused'): Promise<void>;
  raiseNeeded(taskId: string, needed: number): Promise<void>;

  // Results
  resultBodyHash(leaseId: string): Promise<string | null>;
  insertResult(result: NewResult): Promise<void>;
  pendingResults(taskId: string): Promise<PendingResult[]>;
  /** The canonical result's output digest and credit. */
  resultVerdict(leaseId: string): Promise<{ digest: string; credit: number }>;
  voidResult(leaseId: string): Promise<void>;

  // Refusals
  /** The refusal reported on this lease, if any (a lease takes one). */
  leaseRefusal(leaseId: string): Promise<{ reason: string; detail: string } | null>;
  insertRefusal(refusal: { taskId: string; leaseId: string; deviceId: string; reason: string; detail: string; at: number; trusted: boolean }): Promise<void>;
  /**
   * Records a keyset refusal unless the device already reported one for that version; returns
   * the earlier report then (null when this one was recorded). Must hold when the same device
   * reports twice at once: one is recorded.
   */
  insertKeysetRefusal(refusal: KeysetRefusalRow): Promise<{ reason: string; detail: string } | null>;
  /** Keeps the newest `keep` keyset refusals, dropping the oldest from devices without trust first. */
  trimKeysetRefusals(keep: number): Promise<void>;

  // Reading
  keysetRefusals(): Promise<KeysetRefusalRow[]>;
  activeDevices(since: number, now: number, limit: number): Promise<DeviceActivity[]>;
  batches(): Promise<BatchRow[]>;
  batch(batchId: string): Promise<BatchRow | null>;
  /**
   * The batch's tasks counted by state, whether they expired by now, whether they hold a live
   * lease now, and whether their canonical result's exit code is not 0 (see rules.visibleState).
   */
  batchCounts(batchId: string, now: number): Promise<{ state: TaskState; expired: boolean; leased: boolean; nonzeroExit: boolean; n: number }[]>;
  /** The batch's refusals; with `taskIds`, only those tasks'. */
  batchRefusals(batchId: string, taskIds?: readonly string[]): Promise<RefusalRow[]>;
  /** Reports against the batch's tasks, counted (docs: ReportCounts). */
  batchReports(batchId: string): Promise<ReportCounts>;
  /** The batch's newest `limit` results with an error, oldest of them first. */
  batchFailures(batchId: string, limit: number): Promise<FailureReport[]>;
  /** Unfinished tasks with results awaiting agreement, and of those the disputed ones. */
  batchQuorum(batchId: string): Promise<{ awaiting: number; disputed: number }>;
  /** The batch's tasks in order; with `taskIds`, only those (the same for the three below). */
  batchTasks(batchId: string, now: number, taskIds?: readonly string[]): Promise<BatchTaskRow[]>;
  batchResults(batchId: string, taskIds?: readonly string[]): Promise<BatchResultRow[]>;
  canonicalResults(batchId: string, taskIds?: readonly string[]): Promise<CanonicalRow[]>;
  /**
   * The batch's task events after `afterSeq`, oldest first, at most `limit`: every change of a
   * task's stored state, and every lease handed out (`running`), recorded in the transaction that
   * made it (the engine's schema does it, whatever workflow wrote). Sequence numbers only grow.
   */
  taskEvents(batchId: string, afterSeq: number, limit: number): Promise<TaskEventRow[]>;
  /**
   * Numbers the events committed since it last ran, in the order it finds them. Must hold: a
   * reader that has seen sequence number n never later meets an event numbered below n. One
   * writer at a time (SQLite) numbers events as they are written, and has nothing to do here;
   * engines whose transactions commit side by side number them here, one sequencer at a time.
   */
  sequenceEvents(): Promise<void>;
}
