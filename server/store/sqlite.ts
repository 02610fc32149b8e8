/**
 * The SQLite engine (better-sqlite3, WAL): the embedded default, one file in the data folder and
 * blobs beside it. One schema, one migration ladder keyed on PRAGMA user_version. One connection
 * in one process: transactions run one at a time, in the order they were asked for.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { FailureReport, LeasePhase, ReportCounts, TaskState, Validation } from '../../src/protocol/index.ts';
import type {
  BatchResultRow,
  BatchRow,
  BatchTaskRow,
  CanonicalRow,
  DeviceActivity,
  Engine,
  EngineInfo,
  KeysetRefusalRow,
  LeaseCandidate,
  Queries,
  RefusalRow,
  TaskEventRow,
  TaskFacts,
} from './engine.ts';
import { FileBlobs } from './files.ts';
import { BACKSTOP_PAGES, BackgroundCheckpoint, SQLITE_DEFAULT_PAGES } from './sqlite-checkpoint.ts';
import type { CreditRow, LeaseFacts, PendingResult, Report, ReportKind, RunEffect } from './rules.ts';

export const MIGRATIONS: readonly string[] = [
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
  // 4: the keyset in the database (was keyset.json in the data folder, taken in on start), every version kept.
  `CREATE TABLE keysets (
     version INTEGER PRIMARY KEY,
     body TEXT NOT NULL,
     stored_at INTEGER NOT NULL
   );`,
  // 5: task events for the owner's event stream (GET /api/batches/:id/events): every change of a
  // task's state and every lease, written by triggers in the transaction that made the change, so
  // no workflow can forget one. AUTOINCREMENT: a sequence number is never used twice, so a reader
  // resuming after one (Last-Event-ID) misses nothing. Tasks that ended before are recorded once.
  `CREATE TABLE task_events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     batch_id TEXT NOT NULL,
     task_id TEXT NOT NULL,
     state TEXT NOT NULL
   );
   CREATE INDEX task_events_by_batch ON task_events(batch_id, seq);
   CREATE TRIGGER task_state_event AFTER UPDATE OF state ON tasks WHEN NEW.state != OLD.state
   BEGIN
     INSERT INTO task_events (batch_id, task_id, state) VALUES (NEW.batch_id, NEW.task_id, NEW.state);
   END;
   CREATE TRIGGER task_lease_event AFTER INSERT ON leases
   BEGIN
     INSERT INTO task_events (batch_id, task_id, state) SELECT batch_id, task_id, 'running' FROM tasks WHERE task_id = NEW.task_id;
   END;
   INSERT INTO task_events (batch_id, task_id, state) SELECT batch_id, task_id, state FROM tasks WHERE state != 'queued' ORDER BY rowid;`,
  // 6: hostile donors (issue #13): what a result may claim (outputBytes), how long a lease may live
  // (the bytes to prepare, its end, the progress its renewals showed), whether each report came
  // from a device that had earned trust, tasks held for trusted devices, one keyset refusal per
  // device and version.
  `ALTER TABLE tasks ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
   UPDATE tasks SET output_bytes = json_extract(envelope, '$.manifest.limits.outputBytes');
   ALTER TABLE tasks ADD COLUMN prepare_bytes INTEGER NOT NULL DEFAULT 0;
   UPDATE tasks SET prepare_bytes = json_extract(envelope, '$.manifest.module.size')
     + coalesce(json_extract(envelope, '$.manifest.stdin.size'), 0)
     + (SELECT coalesce(sum(json_extract(f.value, '$.blob.size')), 0) FROM json_each(envelope, '$.manifest.files') f);
   ALTER TABLE tasks ADD COLUMN trusted_only INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE leases ADD COLUMN ends_at INTEGER NOT NULL DEFAULT 0;
   UPDATE leases SET ends_at = expires_at;
   ALTER TABLE leases ADD COLUMN phase TEXT;
   ALTER TABLE leases ADD COLUMN progress INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX leases_by_device ON leases(device_id, status, expires_at);
   CREATE INDEX refusals_by_lease ON refusals(lease_id);
   ALTER TABLE results ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX results_by_device_time ON results(device_id, validation, received_at);
   ALTER TABLE refusals ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE keyset_refusals ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
   DELETE FROM keyset_refusals WHERE id NOT IN (SELECT min(id) FROM keyset_refusals GROUP BY device_id, version);
   CREATE UNIQUE INDEX keyset_refusals_once ON keyset_refusals(device_id, version);`,
  // 7: results_by_device (device_id, validation) is the start of results_by_device_time, which
  // serves every query the shorter one did: one index less to write on every result and verdict.
  `DROP INDEX results_by_device;`,
  // 8: the event log clustered by batch. A rowid table, its (batch_id, seq) index and AUTOINCREMENT's
  // counter were three pages written per event, so six of a lease + result cycle's ~30; a table
  // kept in (batch_id, seq) order is one. An event's number is the batch's last plus one, taken
  // under the single writer's lock: it only grows within the batch, which is all a reader resuming
  // a batch's stream (Last-Event-ID) needs. Numbers already given are kept.
  `CREATE TABLE task_events_clustered (
     batch_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     task_id TEXT NOT NULL,
     state TEXT NOT NULL,
     PRIMARY KEY (batch_id, seq)
   ) WITHOUT ROWID;
   INSERT INTO task_events_clustered (batch_id, seq, task_id, state) SELECT batch_id, seq, task_id, state FROM task_events;
   DROP TRIGGER task_state_event;
   DROP TRIGGER task_lease_event;
   DROP TABLE task_events;
   DELETE FROM sqlite_sequence WHERE name = 'task_events';
   ALTER TABLE task_events_clustered RENAME TO task_events;
   CREATE TRIGGER task_state_event AFTER UPDATE OF state ON tasks WHEN NEW.state != OLD.state
   BEGIN
     INSERT INTO task_events (batch_id, seq, task_id, state)
     VALUES (NEW.batch_id, (SELECT coalesce(max(seq), 0) + 1 FROM task_events WHERE batch_id = NEW.batch_id), NEW.task_id, NEW.state);
   END;
   CREATE TRIGGER task_lease_event AFTER INSERT ON leases
   BEGIN
     INSERT INTO task_events (batch_id, seq, task_id, state)
     SELECT t.batch_id, (SELECT coalesce(max(e.seq), 0) + 1 FROM task_events e WHERE e.batch_id = t.batch_id), t.task_id, 'running'
     FROM tasks t WHERE t.task_id = NEW.task_id;
   END;`,
];

/** A filter on task ids for the batch readers: null reads every task. */
const ids = (taskIds: readonly string[] | undefined) => (taskIds ? JSON.stringify(taskIds) : null);
export interface SqliteOptions {
  /** Holds dewgrid.sqlite and blobs/. */
  dataDir: string;
  /** The clock, ms since epoch (tests move it); default Date.now. */
  now?: () => number;
}

export class SqliteEngine implements Engine {
  readonly name = 'sqlite';
  readonly blobs: FileBlobs;
  private readonly db: Database.Database;
  private readonly queries: SqliteQueries;
  private readonly clock: () => number;
  /** The transaction running or last queued: the next one starts when it ends. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Checkpoints the write-ahead log off the request thread (sqlite-checkpoint.ts). */
  readonly checkpoint: BackgroundCheckpoint;

  constructor(options: SqliteOptions) {
    this.db = new Database(join(options.dataDir, 'dewgrid.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // 64 MiB of pages kept in the process (SQLite's default is 2 MiB): a lease walks queued tasks and
    // their leases, and reading those pages again from the OS cost about 5% of a cycle's CPU in the store.
    this.db.pragma('cache_size = -65536');
    this.migrate();
    this.checkpoint = BackgroundCheckpoint.start(this.db.name, {
      // Queued like a transaction: it runs between two, never inside one.
      restart: () => this.serially(async () => void this.db.pragma('wal_checkpoint(RESTART)')),
      lost: (error) => {
        console.error(`dewgrid: the SQLite checkpoint worker stopped (${error.message}); commits checkpoint the log themselves again`);
        this.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_PAGES}`);
      },
    });
    this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    this.queries = new SqliteQueries(this.db);
    this.blobs = new FileBlobs(join(options.dataDir, 'blobs'));
    this.clock = options.now ?? Date.now;
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

  /** Runs `work` when every transaction asked for before it has ended. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }

  write<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T> {
    return this.serially(async () => {
      // IMMEDIATE: the write lock from the start, so a transaction never fails half-way for want of it.
      this.queries.sql('BEGIN IMMEDIATE').run();
      try {
        const result = await work(this.queries, this.clock());
        this.queries.sql('COMMIT').run();
        return result;
      } catch (error) {
        if (this.db.inTransaction) this.queries.sql('ROLLBACK').run();
        throw error;
      }
    });
  }

  read<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T> {
    // No BEGIN needed: transactions run one at a time on this one connection, so nothing writes between a read's queries.
    return this.serially(() => work(this.queries, this.clock()));
  }

  async info(): Promise<EngineInfo> {
    return {
      engine: 'sqlite',
      schemaVersion: this.db.pragma('user_version', { simple: true }) as number,
      details: { journalMode: this.db.pragma('journal_mode', { simple: true }) as string, file: this.db.name },
    };
  }

  async close(): Promise<void> {
    await this.tail;
    await this.checkpoint.stop();
    this.db.close();
  }
}

interface LeaseRow {
  lease_id: string;
  task_id: string;
  device_id: string;
  expires_at: number;
  ends_at: number;
  status: LeaseFacts['status'];
  solo: number;
  phase: LeasePhase | null;
  progress: number;
}

const bool = (n: number | bigint) => Number(n) !== 0;

class SqliteQueries implements Queries {
  /** Statements are prepared once, on first use: preparing costs more than running most of them. */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  // ---- Publishing and keysets

  async batchDigest(batchId: string): Promise<string | null> {
    return (this.sql('SELECT digest FROM batches WHERE batch_id = ?').get(batchId) as { digest: string } | undefined)?.digest ?? null;
  }

  async takenTaskIds(taskIds: readonly string[]): Promise<string[]> {
    const stmt = this.sql('SELECT 1 FROM tasks WHERE task_id = ?');
    return taskIds.filter((id) => stmt.get(id) !== undefined);
  }

  async insertBatch(batch: Parameters<Queries['insertBatch']>[0], tasks: Parameters<Queries['insertBatch']>[1]): Promise<void> {
    this.sql('INSERT INTO batches (batch_id, name, created_at, digest, adaptive) VALUES (?, ?, ?, ?, ?)').run(batch.batchId, batch.name, batch.createdAt, batch.digest, batch.adaptive ? 1 : 0);
    const insert = this.sql(
      `INSERT INTO tasks (task_id, batch_id, seq, envelope, engine, redundancy, needed, expires_at, wall_time_ms, key_id, output_bytes, prepare_bytes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const t of tasks) {
      insert.run(t.taskId, batch.batchId, t.seq, t.envelope, t.engine, t.redundancy, t.redundancy, t.expiresAt, t.wallTimeMs, t.keyId, t.outputBytes, t.prepareBytes);
    }
  }

  async keyset(): Promise<{ version: number; body: string } | null> {
    return (this.sql('SELECT version, body FROM keysets ORDER BY version DESC LIMIT 1').get() as { version: number; body: string } | undefined) ?? null;
  }

  async insertKeyset(version: number, body: string, now: number): Promise<void> {
    this.sql('INSERT INTO keysets (version, body, stored_at) VALUES (?, ?, ?)').run(version, body, now);
  }

  async revokeTasks(keyIds: readonly string[]): Promise<number> {
    const ids = JSON.stringify(keyIds);
    this.sql(
      `UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM tasks WHERE state = 'queued' AND key_id IN (SELECT value FROM json_each(?)))`,
    ).run(ids);
    return this.sql(`UPDATE tasks SET state = 'revoked' WHERE state = 'queued' AND key_id IN (SELECT value FROM json_each(?))`).run(ids).changes;
  }

  async expireTasks(now: number): Promise<number> {
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM tasks WHERE state = 'queued' AND expires_at <= ?)`).run(now);
    return this.sql(`UPDATE tasks SET state = 'expired' WHERE state = 'queued' AND expires_at <= ?`).run(now).changes;
  }

  async cancelTasks(batchId: string): Promise<number> {
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM tasks WHERE batch_id = ? AND state = 'queued')`).run(batchId);
    return this.sql(`UPDATE tasks SET state = 'cancelled' WHERE batch_id = ? AND state = 'queued'`).run(batchId).changes;
  }

  // ---- Devices

  async upsertDevice(deviceId: string, publicKey: string, now: number): Promise<string> {
    const updated = this.sql(
      `INSERT INTO devices (device_id, public_key, first_seen, last_seen) VALUES (?, ?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen WHERE devices.public_key = excluded.public_key
       RETURNING public_key`,
    ).get(deviceId, publicKey, now, now) as { public_key: string } | undefined;
    return updated?.public_key ?? (await this.devicePublicKey(deviceId))!;
  }

  async devicePublicKey(deviceId: string): Promise<string | null> {
    return (this.sql('SELECT public_key FROM devices WHERE device_id = ?').get(deviceId) as { public_key: string } | undefined)?.public_key ?? null;
  }

  async deviceRun(deviceId: string): Promise<number | null> {
    return (this.sql('SELECT consecutive_valid FROM devices WHERE device_id = ?').get(deviceId) as { consecutive_valid: number } | undefined)?.consecutive_valid ?? null;
  }

  async creditRows(deviceId: string): Promise<CreditRow[]> {
    // One pass over the device's results by results_by_device_time (device_id, validation, ...):
    // `credit` holds the credit granted to a valid result and the credit claimed by a pending one.
    return this.sql('SELECT validation, count(*) AS n, total(credit) AS credit FROM results WHERE device_id = ? GROUP BY validation').all(deviceId) as CreditRow[];
  }

  async touchDevice(deviceId: string, now: number): Promise<void> {
    this.sql('UPDATE devices SET last_seen = ? WHERE device_id = ?').run(now, deviceId);
  }

  async judge(leaseId: string, deviceId: string, agrees: boolean, credit: number, run: RunEffect): Promise<void> {
    this.sql('UPDATE results SET validation = ?, credit = ? WHERE lease_id = ?').run(agrees ? 'valid' : 'invalid', credit, leaseId);
    if (run === 'keep') return;
    this.sql('UPDATE devices SET consecutive_valid = CASE WHEN ? THEN consecutive_valid + 1 ELSE 0 END WHERE device_id = ?').run(run === 'extend' ? 1 : 0, deviceId);
  }

  // ---- Leases

  async leaseContext(deviceId: string, now: number, since: number): Promise<{ consecutiveValid: number; keysetVersion: number; live: number; validRecently: number }> {
    const row = this.sql(
      `SELECT (SELECT consecutive_valid FROM devices WHERE device_id = @device) AS run, (SELECT max(version) FROM keysets) AS version,
              (SELECT count(*) FROM leases WHERE device_id = @device AND status = 'live' AND expires_at > @now) AS live,
              (SELECT count(*) FROM results WHERE device_id = @device AND validation = 'valid' AND received_at >= @since) AS valid`,
    ).get({ device: deviceId, now, since }) as { run: number | null; version: number | null; live: number; valid: number };
    return { consecutiveValid: row.run ?? 0, keysetVersion: row.version ?? 0, live: row.live, validRecently: row.valid };
  }

  async leaseCandidates(deviceId: string, engines: readonly string[], max: number, now: number, trusted: boolean): Promise<LeaseCandidate[]> {
    // Tasks are inserted batch by batch, in order, so rowid order is "oldest batch first, then
    // task order": the query walks the state index and stops after a few rows. One writer at a
    // time: nothing can lease a task between this read and the insert.
    // The walk passes every queued task whose leases are all handed out (as many as devices hold
    // leases), so each of those must cost one lookup of its own leases: INDEXED BY, because
    // without statistics SQLite would rather scan every live lease (leases_live) or every lease
    // the device ever held (leases_by_device) for each task it passes.
    const rows = this.sql(
      `SELECT t.task_id, t.envelope, t.wall_time_ms, t.prepare_bytes, t.results, b.adaptive,
              (SELECT count(*) FROM leases l INDEXED BY leases_by_task WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS live
       FROM tasks t INDEXED BY tasks_by_state JOIN batches b ON b.batch_id = t.batch_id
       WHERE t.state = 'queued' AND t.expires_at > @now
         AND t.engine IN (SELECT value FROM json_each(@engines))
         AND (@trusted OR t.trusted_only = 0)
         AND t.results + (SELECT count(*) FROM leases l INDEXED BY leases_by_task WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) < t.needed
         AND NOT EXISTS (SELECT 1 FROM leases l INDEXED BY leases_by_task WHERE l.task_id = t.task_id AND l.solo = 1 AND l.status = 'live' AND l.expires_at > @now)
         AND NOT EXISTS (SELECT 1 FROM leases l INDEXED BY leases_by_task WHERE l.task_id = t.task_id AND l.device_id = @device)
       ORDER BY t.rowid
       LIMIT @max`,
    ).all({ now, engines: JSON.stringify(engines), device: deviceId, max, trusted: trusted ? 1 : 0 }) as {
      task_id: string;
      envelope: string;
      wall_time_ms: number;
      prepare_bytes: number;
      results: number;
      adaptive: number;
      live: number;
    }[];
    return rows.map((r) => ({
      taskId: r.task_id, envelope: r.envelope, wallTimeMs: r.wall_time_ms, prepareBytes: r.prepare_bytes, results: r.results, adaptive: bool(r.adaptive), live: r.live,
    }));
  }

  async insertLease(lease: Parameters<Queries['insertLease']>[0]): Promise<void> {
    this.sql('INSERT INTO leases (lease_id, task_id, device_id, issued_at, expires_at, ends_at, status, solo) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(lease.leaseId, lease.taskId, lease.deviceId, lease.issuedAt, lease.expiresAt, lease.endsAt, 'live', lease.solo ? 1 : 0);
  }

  async lease(leaseId: string): Promise<LeaseFacts | null> {
    const row = this.sql('SELECT lease_id, task_id, device_id, expires_at, ends_at, status, solo, phase, progress FROM leases WHERE lease_id = ?').get(leaseId) as
      | LeaseRow
      | undefined;
    return row
      ? {
          leaseId: row.lease_id, taskId: row.task_id, deviceId: row.device_id, expiresAt: row.expires_at, endsAt: row.ends_at, status: row.status, solo: bool(row.solo),
          phase: row.phase, progress: row.progress,
        }
      : null;
  }

  async setLeaseStatus(leaseId: string, status: 'answered' | 'refused'): Promise<void> {
    this.sql('UPDATE leases SET status = ? WHERE lease_id = ?').run(status, leaseId);
  }

  async renewLease(leaseId: string, expiresAt: number, phase: LeasePhase, progress: number): Promise<void> {
    this.sql('UPDATE leases SET expires_at = ?, phase = ?, progress = ? WHERE lease_id = ?').run(expiresAt, phase, progress, leaseId);
  }

  // ---- Tasks

  async lockTask(taskId: string): Promise<TaskFacts | null> {
    // One writer at a time holds the whole database: the row needs no lock of its own.
    const row = this.sql(
      `SELECT task_id, state, results, errors, redundancy, needed, wall_time_ms, output_bytes, prepare_bytes, trusted_only, canonical_lease
       FROM tasks WHERE task_id = ?`,
    ).get(taskId) as
      | {
          task_id: string; state: TaskState; results: number; errors: number; redundancy: number; needed: number; wall_time_ms: number;
          output_bytes: number; prepare_bytes: number; trusted_only: number; canonical_lease: string | null;
        }
      | undefined;
    return row
      ? {
          taskId: row.task_id, state: row.state, results: row.results, errors: row.errors, redundancy: row.redundancy, needed: row.needed, wallTimeMs: row.wall_time_ms,
          outputBytes: row.output_bytes, prepareBytes: row.prepare_bytes, trustedOnly: bool(row.trusted_only), canonicalLeaseId: row.canonical_lease,
        }
      : null;
  }

  async countResult(taskId: string): Promise<void> {
    this.sql('UPDATE tasks SET results = results + 1 WHERE task_id = ?').run(taskId);
  }

  async taskReports(taskId: string): Promise<Report[]> {
    // Results and refusals by the results_by_task and refusals_by_task indexes, in the order they came.
    const rows = this.sql(
      `SELECT device_id, kind, trusted FROM (
         SELECT device_id, CASE WHEN error_code IS NULL THEN 'result' WHEN error_code = 'device' THEN 'device' ELSE 'error' END AS kind, trusted, received_at AS at, 0 AS src, rowid AS seq
         FROM results WHERE task_id = @task
         UNION ALL
         SELECT device_id, CASE WHEN reason IN ('replayed-task', 'unsupported-engine') THEN 'device' ELSE 'refusal' END, trusted, at, 1, id
         FROM refusals WHERE task_id = @task)
       ORDER BY at, src, seq`,
    ).all({ task: taskId }) as { device_id: string; kind: ReportKind; trusted: number }[];
    return rows.map((r) => ({ deviceId: r.device_id, kind: r.kind, trusted: bool(r.trusted) }));
  }

  async holdForTrusted(taskId: string): Promise<void> {
    this.sql('UPDATE tasks SET trusted_only = 1 WHERE task_id = ?').run(taskId);
  }

  async finishTask(taskId: string, canonicalLeaseId: string): Promise<void> {
    this.sql(`UPDATE tasks SET state = 'done', canonical_lease = ? WHERE task_id = ?`).run(canonicalLeaseId, taskId);
  }

  async endTask(taskId: string, state: 'failed' | 'inconclusive' | 'refused'): Promise<void> {
    if (this.sql(`UPDATE tasks SET state = ? WHERE task_id = ? AND state = 'queued'`).run(state, taskId).changes === 0) return;
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE task_id = ? AND validation = 'pending'`).run(taskId);
  }

  async raiseNeeded(taskId: string, needed: number): Promise<void> {
    this.sql('UPDATE tasks SET needed = max(needed, ?) WHERE task_id = ?').run(needed, taskId);
  }

  // ---- Results

  async resultBodyHash(leaseId: string): Promise<string | null> {
    return (this.sql('SELECT body_hash FROM results WHERE lease_id = ?').get(leaseId) as { body_hash: string } | undefined)?.body_hash ?? null;
  }

  async insertResult(r: Parameters<Queries['insertResult']>[0]): Promise<void> {
    this.sql(
      `INSERT INTO results (lease_id, task_id, device_id, body_hash, exit_code, stdout, stderr, files, truncated, error_code, error_message, timings, received_at,
                            work, output_digest, signature, validation, credit, trusted)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.leaseId, r.taskId, r.deviceId, r.bodyHash, r.exitCode, r.stdout, r.stderr, r.files, r.truncated, r.errorCode, r.errorMessage, r.timings, r.receivedAt,
      r.work, r.outputDigest, r.signature, r.validation, r.credit, r.trusted ? 1 : 0,
    );
  }

  async pendingResults(taskId: string): Promise<PendingResult[]> {
    const rows = this.sql(`SELECT lease_id, device_id, output_digest, work, received_at, rowid AS seq FROM results WHERE task_id = ? AND validation = 'pending'`).all(taskId) as {
      lease_id: string;
      device_id: string;
      output_digest: string;
      work: number | null;
      received_at: number;
      seq: number;
    }[];
    return rows.map((r) => ({ leaseId: r.lease_id, deviceId: r.device_id, digest: r.output_digest, work: r.work, receivedAt: r.received_at, seq: r.seq }));
  }

  async resultVerdict(leaseId: string): Promise<{ digest: string; credit: number }> {
    return this.sql('SELECT output_digest AS digest, credit FROM results WHERE lease_id = ?').get(leaseId) as { digest: string; credit: number };
  }

  async voidResult(leaseId: string): Promise<void> {
    this.sql(`UPDATE results SET validation = 'void', credit = 0 WHERE lease_id = ?`).run(leaseId);
  }

  // ---- Refusals

  async leaseRefusal(leaseId: string): Promise<{ reason: string; detail: string } | null> {
    return (this.sql('SELECT reason, detail FROM refusals WHERE lease_id = ? ORDER BY id LIMIT 1').get(leaseId) as { reason: string; detail: string } | undefined) ?? null;
  }

  async insertRefusal(r: Parameters<Queries['insertRefusal']>[0]): Promise<void> {
    this.sql('INSERT INTO refusals (task_id, lease_id, device_id, reason, detail, at, trusted) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(r.taskId, r.leaseId, r.deviceId, r.reason, r.detail, r.at, r.trusted ? 1 : 0);
  }

  async insertKeysetRefusal(r: KeysetRefusalRow): Promise<{ reason: string; detail: string } | null> {
    const inserted = this.sql(
      `INSERT INTO keyset_refusals (device_id, version, reason, detail, at, trusted) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (device_id, version) DO NOTHING`,
    ).run(r.deviceId, r.version, r.reason, r.detail, r.at, r.trusted ? 1 : 0);
    if (inserted.changes === 1) return null;
    return this.sql('SELECT reason, detail FROM keyset_refusals WHERE device_id = ? AND version = ?').get(r.deviceId, r.version) as { reason: string; detail: string };
  }

  async trimKeysetRefusals(keep: number): Promise<void> {
    this.sql(
      `DELETE FROM keyset_refusals WHERE id IN (
         SELECT id FROM keyset_refusals ORDER BY trusted, id LIMIT max(0, (SELECT count(*) FROM keyset_refusals) - ?))`,
    ).run(keep);
  }

  // ---- Reading

  async keysetRefusals(): Promise<KeysetRefusalRow[]> {
    const rows = this.sql('SELECT device_id AS deviceId, version, reason, detail, at, trusted FROM keyset_refusals ORDER BY id').all() as (Omit<KeysetRefusalRow, 'trusted'> & { trusted: number })[];
    return rows.map((r) => ({ ...r, trusted: bool(r.trusted) }));
  }

  async activeDevices(since: number, now: number, limit: number): Promise<DeviceActivity[]> {
    return this.sql(
      `SELECT device_id AS deviceId, max(at) AS lastSeen,
              sum(kind = 'lease') AS leases, sum(kind = 'result') AS results, sum(kind = 'error') AS errors,
              sum(kind = 'refusal') AS refusals, sum(kind = 'live') AS live
       FROM (SELECT device_id, issued_at AS at, 'lease' AS kind FROM leases WHERE issued_at >= @since
             UNION ALL SELECT device_id, issued_at, 'live' FROM leases WHERE status = 'live' AND expires_at > @now
             UNION ALL SELECT device_id, received_at, CASE WHEN error_code IS NULL THEN 'result' ELSE 'error' END FROM results WHERE received_at >= @since
             UNION ALL SELECT device_id, at, 'refusal' FROM refusals WHERE at >= @since)
       GROUP BY device_id ORDER BY lastSeen DESC, device_id LIMIT @limit`,
    ).all({ since, now, limit }) as DeviceActivity[];
  }

  async batches(): Promise<BatchRow[]> {
    const rows = this.sql('SELECT batch_id, name, created_at, adaptive FROM batches ORDER BY created_at, rowid').all() as { batch_id: string; name: string; created_at: number; adaptive: number }[];
    return rows.map((r) => ({ batchId: r.batch_id, name: r.name, createdAt: r.created_at, adaptive: bool(r.adaptive) }));
  }

  async batch(batchId: string): Promise<BatchRow | null> {
    const r = this.sql('SELECT batch_id, name, created_at, adaptive FROM batches WHERE batch_id = ?').get(batchId) as
      | { batch_id: string; name: string; created_at: number; adaptive: number }
      | undefined;
    return r ? { batchId: r.batch_id, name: r.name, createdAt: r.created_at, adaptive: bool(r.adaptive) } : null;
  }

  async batchCounts(batchId: string, now: number): Promise<{ state: TaskState; expired: boolean; leased: boolean; nonzeroExit: boolean; n: number }[]> {
    const rows = this.sql(
      `SELECT t.state, t.expires_at <= @now AS expired,
              t.state = 'queued' AND EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS leased,
              t.state = 'done' AND EXISTS (SELECT 1 FROM results r WHERE r.lease_id = t.canonical_lease AND r.exit_code != 0) AS nonzero,
              count(*) AS n
       FROM tasks t WHERE t.batch_id = @batch GROUP BY 1, 2, 3, 4`,
    ).all({ now, batch: batchId }) as { state: TaskState; expired: number; leased: number; nonzero: number; n: number }[];
    return rows.map((r) => ({ state: r.state, expired: bool(r.expired), leased: bool(r.leased), nonzeroExit: bool(r.nonzero), n: r.n }));
  }

  async batchRefusals(batchId: string, taskIds?: readonly string[]): Promise<RefusalRow[]> {
    const rows = this.sql(
      `SELECT r.task_id AS taskId, r.reason, r.detail, r.device_id AS deviceId, r.at, r.trusted FROM refusals r JOIN tasks t ON t.task_id = r.task_id
       WHERE t.batch_id = @batch AND (@ids IS NULL OR r.task_id IN (SELECT value FROM json_each(@ids))) ORDER BY r.id`,
    ).all({ batch: batchId, ids: ids(taskIds) }) as (Omit<RefusalRow, 'trusted'> & { trusted: number })[];
    return rows.map((r) => ({ ...r, trusted: bool(r.trusted) }));
  }

  async batchReports(batchId: string): Promise<ReportCounts> {
    return this.sql(
      `SELECT
         (SELECT count(*) FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch AND r.error_code IS NOT NULL AND r.error_code != 'device') AS errors,
         (SELECT count(*) FROM refusals r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch) AS refusals,
         (SELECT count(*) FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch AND r.error_code = 'device') AS deviceFailures,
         (SELECT count(*) FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch AND r.error_code IS NOT NULL AND r.trusted = 0)
           + (SELECT count(*) FROM refusals r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch AND r.trusted = 0) AS fromNewDevices,
         (SELECT count(*) FROM tasks WHERE batch_id = @batch AND state = 'queued' AND trusted_only = 1) AS awaitingTrust`,
    ).get({ batch: batchId }) as ReportCounts;
  }

  async batchFailures(batchId: string, limit: number): Promise<FailureReport[]> {
    const rows = this.sql(
      `SELECT * FROM (
         SELECT r.task_id AS taskId, r.device_id AS deviceId, r.error_code AS code, r.error_message AS message, r.received_at AS at, r.trusted, r.rowid AS seq
         FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = @batch AND r.error_code IS NOT NULL
         ORDER BY r.received_at DESC, r.rowid DESC LIMIT @limit)
       ORDER BY at, seq`,
    ).all({ batch: batchId, limit }) as { taskId: string; deviceId: string; code: string; message: string; at: number; trusted: number }[];
    return rows.map(({ taskId, deviceId, code, message, at, trusted }) => ({ taskId, deviceId, code, message, at, newDevice: !bool(trusted) }));
  }

  async batchQuorum(batchId: string): Promise<{ awaiting: number; disputed: number }> {
    return this.sql(
      `SELECT count(*) AS awaiting, coalesce(sum(needed > redundancy), 0) AS disputed FROM tasks
       WHERE batch_id = ? AND state = 'queued' AND results > 0`,
    ).get(batchId) as { awaiting: number; disputed: number };
  }

  async batchTasks(batchId: string, now: number, taskIds?: readonly string[]): Promise<BatchTaskRow[]> {
    const rows = this.sql(
      `SELECT t.task_id, t.envelope, t.state, t.results, t.redundancy, t.expires_at, t.canonical_lease,
              (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id) AS leases,
              (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > @now) AS live,
              (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.solo = 1 AND (l.status = 'answered' OR (l.status = 'live' AND l.expires_at > @now))) AS solo
       FROM tasks t WHERE t.batch_id = @batch AND (@ids IS NULL OR t.task_id IN (SELECT value FROM json_each(@ids))) ORDER BY t.seq`,
    ).all({ now, batch: batchId, ids: ids(taskIds) }) as {
      task_id: string;
      envelope: string;
      state: TaskState;
      results: number;
      redundancy: number;
      expires_at: number;
      canonical_lease: string | null;
      leases: number;
      live: number;
      solo: number;
    }[];
    return rows.map((r) => ({
      taskId: r.task_id, envelope: r.envelope, state: r.state, results: r.results, redundancy: r.redundancy, expiresAt: r.expires_at,
      leases: r.leases, live: r.live, solo: r.solo, canonicalLeaseId: r.canonical_lease,
    }));
  }

  async batchResults(batchId: string, taskIds?: readonly string[]): Promise<BatchResultRow[]> {
    return this.sql(
      `SELECT r.task_id AS taskId, r.device_id AS deviceId, r.output_digest AS digest, r.validation, r.credit, r.received_at AS at,
              r.error_code AS errorCode, r.error_message AS errorMessage
       FROM results r JOIN tasks t ON t.task_id = r.task_id
       WHERE t.batch_id = @batch AND (@ids IS NULL OR r.task_id IN (SELECT value FROM json_each(@ids))) ORDER BY r.received_at, r.rowid`,
    ).all({ batch: batchId, ids: ids(taskIds) }) as (BatchResultRow & { validation: Validation })[];
  }

  async sequenceEvents(): Promise<void> {
    // One writer at a time: each event is numbered (its batch's last plus one) as it is written, in commit order.
  }

  async taskEvents(batchId: string, afterSeq: number, limit: number): Promise<TaskEventRow[]> {
    return this.sql('SELECT seq, task_id AS taskId, state FROM task_events WHERE batch_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(batchId, afterSeq, limit) as TaskEventRow[];
  }

  async canonicalResults(batchId: string, taskIds?: readonly string[]): Promise<CanonicalRow[]> {
    const rows = this.sql(
      `SELECT r.lease_id, r.task_id, r.device_id, r.exit_code, r.stdout, r.stderr, r.files, r.truncated, r.timings
       FROM tasks t JOIN results r ON r.lease_id = t.canonical_lease
       WHERE t.batch_id = @batch AND (@ids IS NULL OR t.task_id IN (SELECT value FROM json_each(@ids)))`,
    ).all({ batch: batchId, ids: ids(taskIds) }) as { lease_id: string; task_id: string; device_id: string; exit_code: number | null; stdout: Buffer; stderr: Buffer; files: string; truncated: string; timings: string }[];
    return rows.map((r) => ({
      leaseId: r.lease_id, taskId: r.task_id, deviceId: r.device_id, exitCode: r.exit_code, stdout: r.stdout, stderr: r.stderr, files: r.files, truncated: r.truncated, timings: r.timings,
    }));
  }
}
