/**
 * The task server's state in SQLite (WAL). One schema, one migration ladder keyed on
 * PRAGMA user_version. Every method that changes state runs in one transaction: a request that
 * is rejected half-way changes nothing.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type {
  BatchStatus,
  DeviceCredit,
  KeysetRefusalReport,
  QuorumView,
  RefusalReason,
  ResultSubmission,
  SignedTask,
  TaskRefusalReport,
  TaskState,
  Validation,
} from '../src/protocol/index.ts';
import { creditFor, TASK_STATES } from '../src/protocol/index.ts';
import { HttpError } from './errors.ts';

const MIGRATIONS: string[] = [
  // 1: batches, tasks, leases, results, refusals
  `CREATE TABLE batches (
     batch_id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     digest TEXT NOT NULL
   );
   CREATE TABLE tasks (
     task_id TEXT PRIMARY KEY,
     batch_id TEXT NOT NULL REFERENCES batches(batch_id),
     seq INTEGER NOT NULL,
     envelope TEXT NOT NULL,
     engine TEXT NOT NULL,
     redundancy INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     wall_time_ms INTEGER NOT NULL,
     state TEXT NOT NULL DEFAULT 'queued',
     results INTEGER NOT NULL DEFAULT 0,
     errors INTEGER NOT NULL DEFAULT 0,
     refusals INTEGER NOT NULL DEFAULT 0,
     canonical_lease TEXT
   );
   -- Tasks are inserted batch by batch, in order, so rowid order is "oldest batch first, then
   -- task order": the lease query walks this index and stops after a few rows.
   CREATE INDEX tasks_by_state ON tasks(state);
   CREATE INDEX tasks_by_expiry ON tasks(state, expires_at);
   CREATE INDEX tasks_by_batch ON tasks(batch_id, seq);
   CREATE TABLE leases (
     lease_id TEXT PRIMARY KEY,
     task_id TEXT NOT NULL REFERENCES tasks(task_id),
     device_id TEXT NOT NULL,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     status TEXT NOT NULL -- live | answered | refused
   );
   CREATE INDEX leases_by_task ON leases(task_id, status);
   CREATE TABLE results (
     lease_id TEXT PRIMARY KEY REFERENCES leases(lease_id),
     task_id TEXT NOT NULL REFERENCES tasks(task_id),
     device_id TEXT NOT NULL,
     body_hash TEXT NOT NULL,
     exit_code INTEGER,
     stdout BLOB NOT NULL,
     stderr BLOB NOT NULL,
     files TEXT NOT NULL,
     truncated TEXT NOT NULL,
     error_code TEXT,
     error_message TEXT,
     timings TEXT NOT NULL,
     received_at INTEGER NOT NULL
   );
   CREATE INDEX results_by_task ON results(task_id);
   CREATE TABLE refusals (
     id INTEGER PRIMARY KEY,
     task_id TEXT NOT NULL REFERENCES tasks(task_id),
     lease_id TEXT NOT NULL,
     device_id TEXT NOT NULL,
     reason TEXT NOT NULL,
     detail TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE INDEX refusals_by_task ON refusals(task_id);`,
  // 2: trust in both directions: devices and their keys, signed results judged by quorum, credit,
  // adaptive replication, tasks by signing key (revocation), refused keysets.
  `ALTER TABLE batches ADD COLUMN adaptive INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE tasks ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
   UPDATE tasks SET key_id = json_extract(envelope, '$.manifest.keyId');
   -- Successful results the task wants in all: the redundancy, raised when results disagree.
   ALTER TABLE tasks ADD COLUMN needed INTEGER NOT NULL DEFAULT 1;
   UPDATE tasks SET needed = redundancy;
   CREATE INDEX tasks_by_key ON tasks(key_id, state);
   -- A lease to a trusted device that may finish the task on its own (adaptive replication).
   ALTER TABLE leases ADD COLUMN solo INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE results ADD COLUMN work INTEGER;
   ALTER TABLE results ADD COLUMN output_digest TEXT;
   ALTER TABLE results ADD COLUMN signature TEXT;
   ALTER TABLE results ADD COLUMN validation TEXT NOT NULL DEFAULT 'pending';
   -- The credit granted to a valid result, or claimed by a pending one; 0 otherwise.
   ALTER TABLE results ADD COLUMN credit REAL NOT NULL DEFAULT 0;
   UPDATE results SET validation = CASE WHEN error_code IS NOT NULL THEN 'error'
     WHEN lease_id IN (SELECT canonical_lease FROM tasks WHERE canonical_lease IS NOT NULL) THEN 'valid' ELSE 'void' END;
   CREATE INDEX results_by_device ON results(device_id, validation);
   CREATE TABLE devices (
     device_id TEXT PRIMARY KEY,
     public_key TEXT NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     consecutive_valid INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE keyset_refusals (
     id INTEGER PRIMARY KEY,
     device_id TEXT NOT NULL,
     version INTEGER NOT NULL,
     reason TEXT NOT NULL,
     detail TEXT NOT NULL,
     at INTEGER NOT NULL
   );`,
  // 3: the status page's "active devices" reads leases, results and refusals by time.
  `CREATE INDEX leases_by_issue ON leases(issued_at);
   CREATE INDEX leases_live ON leases(status, expires_at);
   CREATE INDEX results_by_time ON results(received_at);
   CREATE INDEX refusals_by_time ON refusals(at);`,
];

/** A task erroring this many times is `failed`; refused this many times, `refused`. */
export const MAX_ERRORS = 3;
export const MAX_REFUSALS = 3;
/** Valid results in a row that make a device trusted: checked less under adaptive replication (BOINC's habit). */
export const TRUST_AFTER_VALID = 10;
/** How often a trusted device's task is replicated anyway, at random, under adaptive replication. */
export const SPOT_CHECK_RATE = 0.1;

/** Results a task with redundancy R takes before it is inconclusive: enough for R to agree despite R liars. */
export function resultLimit(redundancy: number): number {
  return Math.min(16, 2 * redundancy + 1);
}
/** A lease lasts the task's wall time plus this margin for fetching and posting. */
export const LEASE_MARGIN_MS = 60_000;

/** A request the store refuses; the status says why (see docs/protocol.md, POST /api/results). */
export class StoreError extends HttpError {}

export interface StoredResult {
  leaseId: string;
  deviceId: string;
  exitCode: number | null;
  stdout: Buffer;
  stderr: Buffer;
  files: { path: string; data: string }[];
  truncated: { stdout: boolean; stderr: boolean; files: boolean };
  error: { code: string; message: string } | null;
}

export interface TaskRow {
  taskId: string;
  envelope: SignedTask;
  state: TaskState;
  results: number;
  redundancy: number;
  live: number;
  canonical: StoredResult | null;
  refusals: { reason: RefusalReason; detail: string; deviceId: string; at: number }[];
  lastError: { code: string; message: string } | null;
  quorum: QuorumView;
}

/** What the route has checked before the store takes a result: the device's signature, the output digest. */
export interface CheckedResult {
  submission: ResultSubmission;
  /** SHA-256 of the canonical JSON of the whole body: the same retry hashes the same. */
  bodyHash: string;
  /** outputDigest of the result, null when it has an error (errors are not compared). */
  outputDigest: string | null;
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

interface LeaseRow {
  lease_id: string;
  task_id: string;
  device_id: string;
  expires_at: number;
  status: string;
  solo: number;
}

export class Store {
  readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  close(): void {
    this.db.close();
  }

  /** Statements are prepared once, on first use: preparing costs more than running most of them. */
  private readonly statements = new Map<string, Database.Statement>();
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  batchDigest(batchId: string): string | null {
    const row = this.sql('SELECT digest FROM batches WHERE batch_id = ?').get(batchId) as { digest: string } | undefined;
    return row?.digest ?? null;
  }

  existingTaskIds(taskIds: string[]): string[] {
    const found: string[] = [];
    const stmt = this.sql('SELECT 1 FROM tasks WHERE task_id = ?');
    for (const id of taskIds) if (stmt.get(id)) found.push(id);
    return found;
  }

  /** Inserts a batch and its tasks in one transaction. */
  addBatch(batchId: string, name: string, digest: string, tasks: SignedTask[], now: number, adaptive = false): void {
    const insertBatch = this.sql('INSERT INTO batches (batch_id, name, created_at, digest, adaptive) VALUES (?, ?, ?, ?, ?)');
    const insertTask = this.sql(
      'INSERT INTO tasks (task_id, batch_id, seq, envelope, engine, redundancy, needed, expires_at, wall_time_ms, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      insertBatch.run(batchId, name, now, digest, adaptive ? 1 : 0);
      tasks.forEach((task, seq) => {
        const m = task.manifest;
        insertTask.run(m.taskId, batchId, seq, JSON.stringify(task), m.engine, m.redundancy, m.redundancy, m.expiresAt, m.limits.wallTimeMs, m.keyId);
      });
    })();
  }

  /** Marks tasks whose manifest expired before they finished. */
  private expireTasks(now: number): void {
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM tasks WHERE state = 'queued' AND expires_at <= ?)`)
      .run(now);
    this.sql(`UPDATE tasks SET state = 'expired' WHERE state = 'queued' AND expires_at <= ?`).run(now);
  }

  /** Tasks signed by keys the keyset now revokes are never leased again; returns how many were unfinished. */
  revokeTasksSignedBy(keyIds: string[]): number {
    if (keyIds.length === 0) return 0;
    const ids = JSON.stringify(keyIds);
    return this.db.transaction(() => {
      this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM tasks WHERE state = 'queued' AND key_id IN (SELECT value FROM json_each(?)))`)
        .run(ids);
      return this.sql(`UPDATE tasks SET state = 'revoked' WHERE state = 'queued' AND key_id IN (SELECT value FROM json_each(?))`).run(ids).changes;
    })();
  }

  // ---- Devices --------------------------------------------------------------------------------

  /**
   * Records a device's public key, or checks it is the one recorded. The route has checked that
   * the id is derived from the key, so an id names one key forever.
   * @throws StoreError 403 if the id is known with another key.
   */
  registerDevice(deviceId: string, publicKey: string, now: number): void {
    const known = this.sql('SELECT public_key FROM devices WHERE device_id = ?').get(deviceId) as { public_key: string } | undefined;
    if (!known) {
      this.sql('INSERT INTO devices (device_id, public_key, first_seen, last_seen) VALUES (?, ?, ?, ?)').run(deviceId, publicKey, now, now);
    } else if (known.public_key !== publicKey) {
      throw new StoreError(403, `device ${deviceId} is registered with another public key`);
    } else {
      this.sql('UPDATE devices SET last_seen = ? WHERE device_id = ?').run(now, deviceId);
    }
  }

  /** The device's public key (base64), or null for a device that never asked for work. */
  devicePublicKey(deviceId: string): string | null {
    return (this.sql('SELECT public_key FROM devices WHERE device_id = ?').get(deviceId) as { public_key: string } | undefined)?.public_key ?? null;
  }

  /** A device's credit and standing, or null for an unknown device. */
  deviceCredit(deviceId: string): DeviceCredit | null {
    const device = this.sql('SELECT consecutive_valid FROM devices WHERE device_id = ?').get(deviceId) as { consecutive_valid: number } | undefined;
    if (!device) return null;
    // One pass over the device's results by the (device_id, validation) index: `credit` holds the
    // credit granted to a valid result and the credit claimed by a pending one (see submitResult).
    const rows = this.sql('SELECT validation, count(*) AS n, total(credit) AS credit FROM results WHERE device_id = ? GROUP BY validation').all(deviceId) as {
      validation: Validation;
      n: number;
      credit: number;
    }[];
    const of = (validation: Validation) => rows.find((r) => r.validation === validation) ?? { n: 0, credit: 0 };
    const results = { valid: of('valid').n, invalid: of('invalid').n, pending: of('pending').n, error: of('error').n };
    const validated = of('valid').credit;
    const pending = of('pending').credit;
    const round = (n: number) => Math.round(n * 1000) / 1000;
    return {
      deviceId,
      validated: round(validated),
      pending: round(pending),
      results,
      consecutiveValid: device.consecutive_valid,
      trusted: device.consecutive_valid >= TRUST_AFTER_VALID,
    };
  }

  // ---- Leases ---------------------------------------------------------------------------------

  /**
   * Hands out up to `max` leases (see docs/protocol.md, POST /api/work). Under adaptive
   * replication a trusted device may get a task no one else holds as a solo lease: its result
   * alone decides, unless a spot check (at `random() < SPOT_CHECK_RATE`) replicates it as usual.
   */
  lease(deviceId: string, engines: string[], max: number, now: number, random: () => number = Math.random): { leaseId: string; expiresAt: number; envelope: string }[] {
    const enginesJson = JSON.stringify(engines);
    const candidates = this.sql(
      `SELECT t.task_id, t.envelope, t.wall_time_ms, t.results, b.adaptive,
              (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS live
       FROM tasks t INDEXED BY tasks_by_state JOIN batches b ON b.batch_id = t.batch_id
       WHERE t.state = 'queued' AND t.expires_at > @now
         AND t.engine IN (SELECT value FROM json_each(@engines))
         AND t.results + (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) < t.needed
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.solo = 1 AND l.status = 'live' AND l.expires_at > @now)
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.device_id = @device
                         AND (l.status != 'live' OR l.expires_at > @now))
       ORDER BY t.rowid
       LIMIT @max`,
    );
    const insert = this.sql('INSERT INTO leases (lease_id, task_id, device_id, issued_at, expires_at, status, solo) VALUES (?, ?, ?, ?, ?, ?, ?)');
    return this.db.transaction(() => {
      this.expireTasks(now);
      const trusted = (this.sql('SELECT consecutive_valid FROM devices WHERE device_id = ?').get(deviceId) as { consecutive_valid: number } | undefined)?.consecutive_valid ?? 0;
      const rows = candidates.all({ now, engines: enginesJson, device: deviceId, max }) as { task_id: string; envelope: string; wall_time_ms: number; results: number; adaptive: number; live: number }[];
      return rows.map((row) => {
        const leaseId = randomBytes(12).toString('base64url');
        const expiresAt = now + row.wall_time_ms + LEASE_MARGIN_MS;
        const solo = row.adaptive === 1 && trusted >= TRUST_AFTER_VALID && row.results === 0 && row.live === 0 && random() >= SPOT_CHECK_RATE;
        insert.run(leaseId, row.task_id, deviceId, now, expiresAt, 'live', solo ? 1 : 0);
        return { leaseId, expiresAt, envelope: row.envelope };
      });
    })();
  }

  /** The lease a device may answer, or a StoreError with the status that says why not. */
  private answerableLease(leaseId: string, taskId: string, deviceId: string): LeaseRow {
    const lease = this.leaseOf(leaseId, deviceId);
    if (lease.task_id !== taskId) throw new StoreError(403, `lease ${leaseId} is for another task, not ${taskId}`);
    return lease;
  }

  private leaseOf(leaseId: string, deviceId: string): LeaseRow {
    const lease = this.sql('SELECT * FROM leases WHERE lease_id = ?').get(leaseId) as LeaseRow | undefined;
    if (!lease) throw new StoreError(404, `no lease ${leaseId}`);
    if (lease.device_id !== deviceId) throw new StoreError(403, `lease ${leaseId} belongs to another device`);
    return lease;
  }

  // ---- Results and validation -----------------------------------------------------------------

  /**
   * Stores a result once and judges it (docs/protocol.md, "Validation"); the identical body again
   * is a no-op ('duplicate'). The route has verified the device's signature over it.
   *
   * Must hold: a task is done only when `quorum` results from distinct devices share one output
   * digest (the redundancy R, or 1 for a trusted device's solo lease); credit goes only to results
   * that agree with the canonical one; every change here happens in one transaction.
   */
  submitResult(checked: CheckedResult, now: number): 'accepted' | 'duplicate' {
    const { submission: result, bodyHash, outputDigest } = checked;
    return this.db.transaction(() => {
      const lease = this.answerableLease(result.leaseId, result.taskId, result.deviceId);
      const existing = this.sql('SELECT body_hash FROM results WHERE lease_id = ?').get(result.leaseId) as { body_hash: string } | undefined;
      if (existing) {
        if (existing.body_hash === bodyHash) return 'duplicate';
        throw new StoreError(409, `lease ${result.leaseId} already has a different result`);
      }
      if (lease.status === 'refused') throw new StoreError(409, `lease ${result.leaseId} was refused by this device`);
      const task = this.sql('SELECT state, results, errors, redundancy, needed, canonical_lease FROM tasks WHERE task_id = ?').get(result.taskId) as
        | { state: string; results: number; errors: number; redundancy: number; needed: number; canonical_lease: string | null }
        | undefined;
      if (!task) throw new StoreError(404, `no task ${result.taskId}`);
      // A late result is still welcome while the task needs results: the device paid for it.
      if (lease.expires_at <= now && task.state !== 'queued') {
        throw new StoreError(410, `lease ${result.leaseId} expired at ${new Date(lease.expires_at).toISOString()} and task ${result.taskId} is ${task.state}`);
      }
      const failed = result.error !== null;
      this.sql(
          `INSERT INTO results (lease_id, task_id, device_id, body_hash, exit_code, stdout, stderr, files, truncated, error_code, error_message, timings, received_at,
                                work, output_digest, signature, validation, credit)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          result.leaseId,
          result.taskId,
          result.deviceId,
          bodyHash,
          result.exitCode,
          Buffer.from(result.stdout, 'base64'),
          Buffer.from(result.stderr, 'base64'),
          JSON.stringify(result.files),
          JSON.stringify(result.truncated),
          result.error?.code ?? null,
          result.error?.message ?? null,
          JSON.stringify(result.timings),
          now,
          result.work,
          failed ? null : outputDigest,
          result.signature,
          failed ? 'error' : 'pending',
          // While pending, the credit the result claims; judge() sets what it is granted (0 if invalid).
          failed ? 0 : creditFor(result.work),
        );
      this.sql(`UPDATE leases SET status = 'answered' WHERE lease_id = ?`).run(result.leaseId);
      this.sql('UPDATE devices SET last_seen = ? WHERE device_id = ?').run(now, result.deviceId);
      if (failed) {
        if (task.state === 'queued') {
          const errors = task.errors + 1;
          this.sql('UPDATE tasks SET errors = ? WHERE task_id = ?').run(errors, result.taskId);
          if (errors >= MAX_ERRORS) this.endWithoutQuorum(result.taskId, 'failed');
        }
        return 'accepted';
      }
      if (task.state === 'done') {
        // A late answer to a finished task: judged against the canonical result, credited if it agrees.
        const canonical = this.sql('SELECT output_digest, credit FROM results WHERE lease_id = ?').get(task.canonical_lease) as { output_digest: string; credit: number };
        this.judge(result.leaseId, result.deviceId, outputDigest === canonical.output_digest, canonical.credit);
        return 'accepted';
      }
      if (task.state !== 'queued') {
        this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE lease_id = ?`).run(result.leaseId);
        return 'accepted';
      }
      this.sql('UPDATE tasks SET results = results + 1 WHERE task_id = ?').run(result.taskId);
      this.seekQuorum(result.taskId, task.redundancy, lease.solo === 1 ? outputDigest : null);
      return 'accepted';
    })();
  }

  /**
   * Looks for a quorum among a task's pending results; finds it, or asks for more replicas, or
   * gives up at the limit.
   * @param soloDigest the digest of a trusted device's solo result, which is a quorum of one
   */
  private seekQuorum(taskId: string, redundancy: number, soloDigest: string | null): void {
    const groups = this.sql(
        `SELECT output_digest AS digest, count(DISTINCT device_id) AS devices, min(received_at) AS first, min(work) AS work, count(work) AS counted
         FROM results WHERE task_id = ? AND validation = 'pending' AND output_digest IS NOT NULL
         GROUP BY output_digest ORDER BY devices DESC, first`,
      )
      .all(taskId) as { digest: string; devices: number; first: number; work: number | null; counted: number }[];
    const winner = soloDigest ? groups.find((g) => g.digest === soloDigest) : groups.find((g) => g.devices >= redundancy);
    if (winner) {
      // Credit is the least work any agreeing device claimed: claiming more earns nothing.
      const credit = creditFor(winner.counted > 0 ? winner.work : null);
      const canonical = this.sql(`SELECT lease_id FROM results WHERE task_id = ? AND validation = 'pending' AND output_digest = ? ORDER BY received_at, rowid LIMIT 1`)
        .get(taskId, winner.digest) as { lease_id: string };
      const pending = this.sql(`SELECT lease_id, device_id, output_digest FROM results WHERE task_id = ? AND validation = 'pending'`).all(taskId) as {
        lease_id: string;
        device_id: string;
        output_digest: string;
      }[];
      for (const r of pending) this.judge(r.lease_id, r.device_id, r.output_digest === winner.digest, credit);
      this.sql(`UPDATE tasks SET state = 'done', canonical_lease = ? WHERE task_id = ?`).run(canonical.lease_id, taskId);
      return;
    }
    const devices = (this.sql(`SELECT count(DISTINCT device_id) AS n FROM results WHERE task_id = ? AND validation = 'pending'`).get(taskId) as { n: number }).n;
    const limit = resultLimit(redundancy);
    if (devices >= limit) {
      this.endWithoutQuorum(taskId, 'inconclusive');
      return;
    }
    // Enough further results for the largest group to reach the quorum, if they agree with it.
    const largest = groups[0]?.devices ?? 0;
    const needed = Math.min(limit, Math.max(redundancy, devices + (redundancy - largest)));
    this.sql('UPDATE tasks SET needed = max(needed, ?) WHERE task_id = ?').run(needed, taskId);
  }

  /** Marks one result valid (with its credit) or invalid, and the device's run of valid results. */
  private judge(leaseId: string, deviceId: string, agrees: boolean, credit: number): void {
    this.sql(`UPDATE results SET validation = ?, credit = ? WHERE lease_id = ?`).run(agrees ? 'valid' : 'invalid', agrees ? credit : 0, leaseId);
    this.sql('UPDATE devices SET consecutive_valid = CASE WHEN ? THEN consecutive_valid + 1 ELSE 0 END WHERE device_id = ?').run(agrees ? 1 : 0, deviceId);
  }

  /** A task that ends with no quorum: its pending results are void (no credit, no judgement on the devices). */
  private endWithoutQuorum(taskId: string, state: 'failed' | 'inconclusive'): void {
    this.sql('UPDATE tasks SET state = ? WHERE task_id = ?').run(state, taskId);
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE task_id = ? AND validation = 'pending'`).run(taskId);
  }

  /** More time for a live lease whose task still needs it; returns the new expiry. */
  renewLease(renewal: { leaseId: string; taskId: string; deviceId: string }, now: number): number {
    return this.db.transaction(() => {
      const lease = this.answerableLease(renewal.leaseId, renewal.taskId, renewal.deviceId);
      if (lease.status !== 'live') throw new StoreError(409, `lease ${renewal.leaseId} is ${lease.status}`);
      const task = this.sql('SELECT state, wall_time_ms FROM tasks WHERE task_id = ?').get(renewal.taskId) as { state: string; wall_time_ms: number };
      if (task.state !== 'queued') throw new StoreError(410, `task ${renewal.taskId} is ${task.state}`);
      const expiresAt = now + task.wall_time_ms + LEASE_MARGIN_MS;
      this.sql('UPDATE leases SET expires_at = ? WHERE lease_id = ?').run(expiresAt, renewal.leaseId);
      return expiresAt;
    })();
  }

  // ---- Refusals -------------------------------------------------------------------------------

  /**
   * Records a device's refusal of a task it was leased. Every report from the lease's device is
   * kept, under the task the lease is for (a tampered lease may have named another: the detail
   * says so), also for a lease it answered already (a replayed lease shows up so); a live lease is
   * also released, the device is never offered the task again, and a task refused by
   * MAX_REFUSALS devices is `refused` (a replay says nothing against the task and is not counted).
   * The identical report again is a no-op ('duplicate'), so clients may retry.
   */
  recordRefusal(report: TaskRefusalReport, now: number): 'recorded' | 'duplicate' {
    return this.db.transaction(() => {
      const lease = this.leaseOf(report.leaseId, report.deviceId);
      const detail = report.taskId === lease.task_id ? report.detail : `the lease's envelope named task ${report.taskId}: ${report.detail}`;
      const earlier = this.sql('SELECT 1 FROM refusals WHERE lease_id = ? AND reason = ? AND detail = ?').get(report.leaseId, report.reason, detail);
      if (earlier) return 'duplicate';
      // A device refuses a lease once; a second, different word on it is a conflict.
      if (lease.status === 'refused') throw new StoreError(409, `lease ${report.leaseId} was already refused for another reason`);
      this.sql('INSERT INTO refusals (task_id, lease_id, device_id, reason, detail, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(lease.task_id, report.leaseId, report.deviceId, report.reason, detail, now);
      if (lease.status !== 'live') return 'recorded';
      this.sql(`UPDATE leases SET status = 'refused' WHERE lease_id = ?`).run(report.leaseId);
      if (report.reason === 'replayed-task') return 'recorded';
      const { refusals } = this.sql('UPDATE tasks SET refusals = refusals + 1 WHERE task_id = ? RETURNING refusals').get(lease.task_id) as { refusals: number };
      if (refusals >= MAX_REFUSALS) this.sql(`UPDATE tasks SET state = 'refused' WHERE task_id = ? AND state = 'queued'`).run(lease.task_id);
      return 'recorded';
    })();
  }

  /** Records a device's refusal of a keyset it was served; the identical report again is a no-op. */
  recordKeysetRefusal(report: KeysetRefusalReport, now: number): 'recorded' | 'duplicate' {
    return this.db.transaction(() => {
      const earlier = this.sql('SELECT 1 FROM keyset_refusals WHERE device_id = ? AND version = ? AND reason = ? AND detail = ?')
        .get(report.deviceId, report.version, report.reason, report.detail);
      if (earlier) return 'duplicate';
      this.sql('INSERT INTO keyset_refusals (device_id, version, reason, detail, at) VALUES (?, ?, ?, ?, ?)')
        .run(report.deviceId, report.version, report.reason, report.detail, now);
      return 'recorded';
    })();
  }

  keysetRefusals(): { deviceId: string; version: number; reason: string; detail: string; at: number }[] {
    return this.sql('SELECT device_id AS deviceId, version, reason, detail, at FROM keyset_refusals ORDER BY id').all() as {
      deviceId: string;
      version: number;
      reason: string;
      detail: string;
      at: number;
    }[];
  }

  // ---- Reading ----------------------------------------------------------------------------------

  /**
   * Devices seen lately, for the status page (read-only): those that leased, answered or refused
   * a task since `since`, or hold a lease still live at `now` (a long task renews its lease, which
   * leaves no row of its own). Most recent first; at most `limit`.
   */
  activeDevices(since: number, now: number, limit: number): DeviceActivity[] {
    return this.sql(
        `SELECT device_id AS deviceId, max(at) AS lastSeen,
                sum(kind = 'lease') AS leases, sum(kind = 'result') AS results, sum(kind = 'error') AS errors,
                sum(kind = 'refusal') AS refusals, sum(kind = 'live') AS live
         FROM (SELECT device_id, issued_at AS at, 'lease' AS kind FROM leases WHERE issued_at >= @since
               UNION ALL SELECT device_id, issued_at, 'live' FROM leases WHERE status = 'live' AND expires_at > @now
               UNION ALL SELECT device_id, received_at, CASE WHEN error_code IS NULL THEN 'result' ELSE 'error' END FROM results WHERE received_at >= @since
               UNION ALL SELECT device_id, at, 'refusal' FROM refusals WHERE at >= @since)
         GROUP BY device_id ORDER BY lastSeen DESC, device_id LIMIT @limit`,
      )
      .all({ since, now, limit }) as DeviceActivity[];
  }

  batchIds(): string[] {
    return (this.sql('SELECT batch_id FROM batches ORDER BY created_at, rowid').all() as { batch_id: string }[]).map((r) => r.batch_id);
  }

  batchStatus(batchId: string, now: number): BatchStatus | null {
    const batch = this.sql('SELECT batch_id, name, created_at, adaptive FROM batches WHERE batch_id = ?').get(batchId) as
      | { batch_id: string; name: string; created_at: number; adaptive: number }
      | undefined;
    if (!batch) return null;
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    const rows = this.sql(
        `SELECT CASE WHEN t.state = 'queued' AND t.expires_at <= @now THEN 'expired'
                     WHEN t.state = 'queued' AND EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) THEN 'running'
                     ELSE t.state END AS state, count(*) AS n
         FROM tasks t WHERE t.batch_id = @batch GROUP BY 1`,
      )
      .all({ now, batch: batchId }) as { state: TaskState; n: number }[];
    for (const row of rows) counts[row.state] = row.n;
    const refusals = this.sql(
        `SELECT r.task_id AS taskId, r.reason, r.detail, r.device_id AS deviceId, r.at FROM refusals r JOIN tasks t ON t.task_id = r.task_id
         WHERE t.batch_id = ? ORDER BY r.id`,
      )
      .all(batchId) as BatchStatus['refusals'];
    const quorum = this.sql(
        `SELECT count(*) AS awaiting, coalesce(sum(needed > redundancy), 0) AS disputed FROM tasks
         WHERE batch_id = ? AND state = 'queued' AND results > 0`,
      )
      .get(batchId) as BatchStatus['quorum'];
    return { batchId: batch.batch_id, name: batch.name, createdAt: batch.created_at, counts, refusals, adaptive: batch.adaptive === 1, quorum };
  }

  tasks(batchId: string, now: number): TaskRow[] {
    const rows = this.sql(
        `SELECT t.*, (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS live,
                (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.solo = 1 AND (l.status = 'answered' OR (l.status = 'live' AND l.expires_at > @now))) AS solo
         FROM tasks t WHERE t.batch_id = @batch ORDER BY t.seq`,
      )
      .all({ now, batch: batchId }) as {
      task_id: string;
      envelope: string;
      state: TaskState;
      results: number;
      redundancy: number;
      needed: number;
      expires_at: number;
      live: number;
      solo: number;
      canonical_lease: string | null;
    }[];
    const resultStmt = this.sql('SELECT * FROM results WHERE lease_id = ?');
    const lastErrorStmt = this.sql('SELECT error_code, error_message FROM results WHERE task_id = ? AND error_code IS NOT NULL ORDER BY received_at DESC LIMIT 1');
    const refusalStmt = this.sql('SELECT reason, detail, device_id AS deviceId, at FROM refusals WHERE task_id = ? ORDER BY id');
    const judgedStmt = this.sql('SELECT device_id AS deviceId, output_digest AS digest, validation, credit, received_at AS at FROM results WHERE task_id = ? ORDER BY received_at, rowid');
    return rows.map((row) => {
      let state = row.state;
      if (state === 'queued' && row.expires_at <= now) state = 'expired';
      else if (state === 'queued' && row.live > 0) state = 'running';
      const canonical = row.canonical_lease ? (resultStmt.get(row.canonical_lease) as Record<string, unknown> | undefined) : undefined;
      const lastError = lastErrorStmt.get(row.task_id) as { error_code: string; error_message: string } | undefined;
      const judged = judgedStmt.all(row.task_id) as QuorumView['results'];
      const agreeing = new Map<string, Set<string>>();
      for (const r of judged) if (r.digest && r.validation !== 'invalid') agreeing.set(r.digest, (agreeing.get(r.digest) ?? new Set()).add(r.deviceId));
      return {
        taskId: row.task_id,
        envelope: JSON.parse(row.envelope) as SignedTask,
        state,
        results: row.results,
        redundancy: row.redundancy,
        live: row.live,
        canonical: canonical
          ? {
              leaseId: canonical.lease_id as string,
              deviceId: canonical.device_id as string,
              exitCode: canonical.exit_code as number | null,
              stdout: canonical.stdout as Buffer,
              stderr: canonical.stderr as Buffer,
              files: JSON.parse(canonical.files as string),
              truncated: JSON.parse(canonical.truncated as string),
              error: null,
            }
          : null,
        refusals: refusalStmt.all(row.task_id) as TaskRow['refusals'],
        lastError: lastError ? { code: lastError.error_code, message: lastError.error_message } : null,
        quorum: {
          needed: row.solo > 0 ? 1 : row.redundancy,
          limit: resultLimit(row.redundancy),
          agreeing: Math.max(0, ...[...agreeing.values()].map((d) => d.size)),
          outputs: new Set(judged.filter((r) => r.digest).map((r) => r.digest)).size,
          results: judged,
        },
      };
    });
  }
}
