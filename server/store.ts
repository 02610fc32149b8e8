/**
 * The task server's state in SQLite (WAL). One schema, one migration ladder keyed on
 * PRAGMA user_version. Every method that changes state runs in one transaction: a request that
 * is rejected half-way changes nothing.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type { BatchStatus, RefusalReason, RefusalReport, ResultSubmission, SignedTask, TaskState } from '../src/protocol/index.ts';
import { TASK_STATES } from '../src/protocol/index.ts';
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
];

/** A task erroring this many times is `failed`; refused this many times, `refused`. */
export const MAX_ERRORS = 3;
export const MAX_REFUSALS = 3;
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

  batchDigest(batchId: string): string | null {
    const row = this.db.prepare('SELECT digest FROM batches WHERE batch_id = ?').get(batchId) as { digest: string } | undefined;
    return row?.digest ?? null;
  }

  existingTaskIds(taskIds: string[]): string[] {
    const found: string[] = [];
    const stmt = this.db.prepare('SELECT 1 FROM tasks WHERE task_id = ?');
    for (const id of taskIds) if (stmt.get(id)) found.push(id);
    return found;
  }

  /** Inserts a batch and its tasks in one transaction. */
  addBatch(batchId: string, name: string, digest: string, tasks: SignedTask[], now: number): void {
    const insertBatch = this.db.prepare('INSERT INTO batches (batch_id, name, created_at, digest) VALUES (?, ?, ?, ?)');
    const insertTask = this.db.prepare(
      'INSERT INTO tasks (task_id, batch_id, seq, envelope, engine, redundancy, expires_at, wall_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      insertBatch.run(batchId, name, now, digest);
      tasks.forEach((task, seq) => {
        const m = task.manifest;
        insertTask.run(m.taskId, batchId, seq, JSON.stringify(task), m.engine, m.redundancy, m.expiresAt, m.limits.wallTimeMs);
      });
    })();
  }

  /** Marks tasks whose manifest expired before they finished. */
  private expireTasks(now: number): void {
    this.db.prepare(`UPDATE tasks SET state = 'expired' WHERE state = 'queued' AND expires_at <= ?`).run(now);
  }

  /** Hands out up to `max` leases (see docs/protocol.md, POST /api/work). */
  lease(deviceId: string, engines: string[], max: number, now: number): { leaseId: string; expiresAt: number; envelope: string }[] {
    const enginesJson = JSON.stringify(engines);
    const candidates = this.db.prepare(
      `SELECT t.task_id, t.envelope, t.wall_time_ms FROM tasks t INDEXED BY tasks_by_state
       WHERE t.state = 'queued' AND t.expires_at > @now
         AND t.engine IN (SELECT value FROM json_each(@engines))
         AND t.results + (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) < t.redundancy
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.device_id = @device
                         AND (l.status != 'live' OR l.expires_at > @now))
       ORDER BY t.rowid
       LIMIT @max`,
    );
    const insert = this.db.prepare('INSERT INTO leases (lease_id, task_id, device_id, issued_at, expires_at, status) VALUES (?, ?, ?, ?, ?, ?)');
    return this.db.transaction(() => {
      this.expireTasks(now);
      const rows = candidates.all({ now, engines: enginesJson, device: deviceId, max }) as { task_id: string; envelope: string; wall_time_ms: number }[];
      return rows.map((row) => {
        const leaseId = randomBytes(12).toString('base64url');
        const expiresAt = now + row.wall_time_ms + LEASE_MARGIN_MS;
        insert.run(leaseId, row.task_id, deviceId, now, expiresAt, 'live');
        return { leaseId, expiresAt, envelope: row.envelope };
      });
    })();
  }

  /** The lease a device may answer, or a StoreError with the status that says why not. */
  private answerableLease(leaseId: string, taskId: string, deviceId: string): LeaseRow {
    const lease = this.db.prepare('SELECT * FROM leases WHERE lease_id = ?').get(leaseId) as LeaseRow | undefined;
    if (!lease) throw new StoreError(404, `no lease ${leaseId}`);
    if (lease.device_id !== deviceId) throw new StoreError(403, `lease ${leaseId} belongs to another device`);
    if (lease.task_id !== taskId) throw new StoreError(403, `lease ${leaseId} is for another task, not ${taskId}`);
    return lease;
  }

  /** Stores a result once; the identical body again is a no-op ('duplicate'). */
  submitResult(result: ResultSubmission, bodyHash: string, now: number): 'accepted' | 'duplicate' {
    return this.db.transaction(() => {
      const lease = this.answerableLease(result.leaseId, result.taskId, result.deviceId);
      const existing = this.db.prepare('SELECT body_hash FROM results WHERE lease_id = ?').get(result.leaseId) as { body_hash: string } | undefined;
      if (existing) {
        if (existing.body_hash === bodyHash) return 'duplicate';
        throw new StoreError(409, `lease ${result.leaseId} already has a different result`);
      }
      if (lease.status === 'refused') throw new StoreError(409, `lease ${result.leaseId} was refused by this device`);
      const task = this.db.prepare('SELECT state, results, errors, redundancy FROM tasks WHERE task_id = ?').get(result.taskId) as
        | { state: string; results: number; errors: number; redundancy: number }
        | undefined;
      if (!task) throw new StoreError(404, `no task ${result.taskId}`);
      // A late result is still welcome while the task needs results: the device paid for it.
      if (lease.expires_at <= now && task.state !== 'queued') {
        throw new StoreError(410, `lease ${result.leaseId} expired at ${new Date(lease.expires_at).toISOString()} and task ${result.taskId} is ${task.state}`);
      }
      this.db
        .prepare(
          `INSERT INTO results (lease_id, task_id, device_id, body_hash, exit_code, stdout, stderr, files, truncated, error_code, error_message, timings, received_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
        );
      this.db.prepare(`UPDATE leases SET status = 'answered' WHERE lease_id = ?`).run(result.leaseId);
      if (task.state !== 'queued') return 'accepted'; // a late answer to a finished task is kept, changes nothing
      if (result.error) {
        const errors = task.errors + 1;
        this.db.prepare('UPDATE tasks SET errors = ?, state = ? WHERE task_id = ?').run(errors, errors >= MAX_ERRORS ? 'failed' : 'queued', result.taskId);
      } else {
        const results = task.results + 1;
        this.db
          .prepare('UPDATE tasks SET results = ?, state = ?, canonical_lease = COALESCE(canonical_lease, ?) WHERE task_id = ?')
          .run(results, results >= task.redundancy ? 'done' : 'queued', result.leaseId, result.taskId);
      }
      return 'accepted';
    })();
  }

  /**
   * Records a refusal and releases its lease; the device is never offered the task again.
   * The identical report again is a no-op ('duplicate'), so clients may retry.
   */
  /** More time for a live lease whose task still needs it; returns the new expiry. */
  renewLease(renewal: { leaseId: string; taskId: string; deviceId: string }, now: number): number {
    return this.db.transaction(() => {
      const lease = this.answerableLease(renewal.leaseId, renewal.taskId, renewal.deviceId);
      if (lease.status !== 'live') throw new StoreError(409, `lease ${renewal.leaseId} is ${lease.status}`);
      const task = this.db.prepare('SELECT state, wall_time_ms FROM tasks WHERE task_id = ?').get(renewal.taskId) as { state: string; wall_time_ms: number };
      if (task.state !== 'queued') throw new StoreError(410, `task ${renewal.taskId} is ${task.state}`);
      const expiresAt = now + task.wall_time_ms + LEASE_MARGIN_MS;
      this.db.prepare('UPDATE leases SET expires_at = ? WHERE lease_id = ?').run(expiresAt, renewal.leaseId);
      return expiresAt;
    })();
  }

  recordRefusal(report: RefusalReport, now: number): 'recorded' | 'duplicate' {
    return this.db.transaction(() => {
      const lease = this.answerableLease(report.leaseId, report.taskId, report.deviceId);
      if (lease.status === 'refused') {
        const earlier = this.db.prepare('SELECT reason, detail FROM refusals WHERE lease_id = ?').get(report.leaseId) as { reason: string; detail: string } | undefined;
        if (earlier?.reason === report.reason && earlier.detail === report.detail) return 'duplicate';
        throw new StoreError(409, `lease ${report.leaseId} was already refused for another reason`);
      }
      if (lease.status !== 'live') throw new StoreError(409, `lease ${report.leaseId} already has a result`);
      this.db.prepare(`UPDATE leases SET status = 'refused' WHERE lease_id = ?`).run(report.leaseId);
      this.db
        .prepare('INSERT INTO refusals (task_id, lease_id, device_id, reason, detail, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(report.taskId, report.leaseId, report.deviceId, report.reason, report.detail, now);
      const { refusals } = this.db.prepare('UPDATE tasks SET refusals = refusals + 1 WHERE task_id = ? RETURNING refusals').get(report.taskId) as { refusals: number };
      if (refusals >= MAX_REFUSALS) this.db.prepare(`UPDATE tasks SET state = 'refused' WHERE task_id = ? AND state = 'queued'`).run(report.taskId);
      return 'recorded';
    })();
  }

  /**
   * Devices seen lately, for the status page (read-only): those that leased, answered or refused
   * a task since `since`, or hold a lease still live at `now` (a long task renews its lease, which
   * leaves no row of its own). Most recent first; at most `limit`.
   */
  activeDevices(since: number, now: number, limit: number): DeviceActivity[] {
    return this.db
      .prepare(
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
    return (this.db.prepare('SELECT batch_id FROM batches ORDER BY created_at, rowid').all() as { batch_id: string }[]).map((r) => r.batch_id);
  }

  batchStatus(batchId: string, now: number): BatchStatus | null {
    const batch = this.db.prepare('SELECT batch_id, name, created_at FROM batches WHERE batch_id = ?').get(batchId) as
      | { batch_id: string; name: string; created_at: number }
      | undefined;
    if (!batch) return null;
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    const rows = this.db
      .prepare(
        `SELECT CASE WHEN t.state = 'queued' AND t.expires_at <= @now THEN 'expired'
                     WHEN t.state = 'queued' AND EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) THEN 'running'
                     ELSE t.state END AS state, count(*) AS n
         FROM tasks t WHERE t.batch_id = @batch GROUP BY 1`,
      )
      .all({ now, batch: batchId }) as { state: TaskState; n: number }[];
    for (const row of rows) counts[row.state] = row.n;
    const refusals = this.db
      .prepare(
        `SELECT r.task_id AS taskId, r.reason, r.detail, r.device_id AS deviceId, r.at FROM refusals r JOIN tasks t ON t.task_id = r.task_id
         WHERE t.batch_id = ? ORDER BY r.id`,
      )
      .all(batchId) as BatchStatus['refusals'];
    return { batchId: batch.batch_id, name: batch.name, createdAt: batch.created_at, counts, refusals };
  }

  tasks(batchId: string, now: number): TaskRow[] {
    const rows = this.db
      .prepare(
        `SELECT t.*, (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS live
         FROM tasks t WHERE t.batch_id = @batch ORDER BY t.seq`,
      )
      .all({ now, batch: batchId }) as {
      task_id: string;
      envelope: string;
      state: TaskState;
      results: number;
      redundancy: number;
      expires_at: number;
      live: number;
      canonical_lease: string | null;
    }[];
    const resultStmt = this.db.prepare('SELECT * FROM results WHERE lease_id = ?');
    const lastErrorStmt = this.db.prepare('SELECT error_code, error_message FROM results WHERE task_id = ? AND error_code IS NOT NULL ORDER BY received_at DESC LIMIT 1');
    const refusalStmt = this.db.prepare('SELECT reason, detail, device_id AS deviceId, at FROM refusals WHERE task_id = ? ORDER BY id');
    return rows.map((row) => {
      let state = row.state;
      if (state === 'queued' && row.expires_at <= now) state = 'expired';
      else if (state === 'queued' && row.live > 0) state = 'running';
      const canonical = row.canonical_lease ? (resultStmt.get(row.canonical_lease) as Record<string, unknown> | undefined) : undefined;
      const lastError = lastErrorStmt.get(row.task_id) as { error_code: string; error_message: string } | undefined;
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
      };
    });
  }
}
