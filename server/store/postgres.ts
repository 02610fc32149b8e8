/**
 * The PostgreSQL engine: for several task servers sharing one database (docs/deploy.md). The
 * servers keep no state of their own: tasks, leases, results, the keyset and the blobs (bytea,
 * by SHA-256) are all here.
 *
 * What must hold, and how:
 * - Many servers lease at once without handing one task out twice and without waiting on each
 *   other: candidates are locked `FOR UPDATE SKIP LOCKED` (a task another server is leasing is
 *   passed over, not waited for), then checked again under the lock (leaseCandidates).
 * - Everything that changes a task's results, leases' status or state holds the task's row lock
 *   (lockTask), so a quorum is judged on every result, once. Devices' rows are written in one
 *   order by every writer (rules.inWriteOrder), so two quorums cannot deadlock on them.
 * - Transactions that collide anyway (a deadlock, a unique key raced) run again from the start.
 * - No write waits long on another transaction's lock (lock_timeout, LOCK_WAIT_MS): a server frozen
 *   mid-transaction (a long GC pause, SIGSTOP, a descheduled VM) holds its locks until it wakes, and
 *   every request that waited on them would hold one of its server's few connections meanwhile,
 *   retried by its client on the next server, and the next, until the pools are all waiting. The
 *   request that waited too long is answered 503 (try again), its connection freed.
 * - One migration ladder, recorded in `dewgrid_migrations` and run under an advisory lock, so
 *   servers starting together migrate once.
 * - Time comes from the database where servers must agree on it (lease expiry, arrival order).
 * - A bounded pool (node-postgres): at most `poolSize` connections per server.
 */
import pg from 'pg';
import type { TaskState } from '../../src/protocol/index.ts';
import type {
  BatchResultRow,
  BatchRow,
  BatchTaskRow,
  Blobs,
  CanonicalRow,
  DeviceActivity,
  Engine,
  EngineInfo,
  KeysetRefusalRow,
  LeaseCandidate,
  NewBatch,
  NewResult,
  NewTask,
  Queries,
  RefusalRow,
  TaskEventRow,
  TaskFacts,
} from './engine.ts';
import { DatabaseUnavailableError, LockWaitError } from './errors.ts';
import type { FailureReport, LeasePhase, ReportCounts } from '../../src/protocol/index.ts';
import type { CreditRow, LeaseFacts, PendingResult, Report, RunEffect } from './rules.ts';
import { render, sql, type Sql } from './sql.ts';

type Row = Record<string, any>;

const MIGRATIONS: string[] = [
  // 1: the schema of SQLite's ladder 1-4, plus the blobs.
  `CREATE TABLE batches (
     batch_id text PRIMARY KEY,
     id bigint GENERATED ALWAYS AS IDENTITY,
     name text NOT NULL,
     created_at bigint NOT NULL,
     digest text NOT NULL,
     adaptive boolean NOT NULL DEFAULT false
   );
   CREATE TABLE tasks (
     task_id text PRIMARY KEY,
     -- Insertion order: tasks are inserted batch by batch, in order, so this is "oldest batch
     -- first, then task order", the order leases go out in.
     id bigint GENERATED ALWAYS AS IDENTITY,
     batch_id text NOT NULL REFERENCES batches(batch_id),
     seq integer NOT NULL,
     envelope text NOT NULL,
     engine text NOT NULL,
     key_id text NOT NULL,
     redundancy integer NOT NULL,
     -- Successful results the task wants in all: the redundancy, raised when results disagree.
     needed integer NOT NULL,
     expires_at bigint NOT NULL,
     wall_time_ms bigint NOT NULL,
     state text NOT NULL DEFAULT 'queued',
     results integer NOT NULL DEFAULT 0,
     errors integer NOT NULL DEFAULT 0,
     refusals integer NOT NULL DEFAULT 0,
     canonical_lease text
   );
   -- The lease query walks queued tasks in order and stops after a few.
   CREATE INDEX tasks_queued ON tasks(id) WHERE state = 'queued';
   CREATE INDEX tasks_queued_by_expiry ON tasks(expires_at) WHERE state = 'queued';
   CREATE INDEX tasks_queued_by_key ON tasks(key_id) WHERE state = 'queued';
   CREATE INDEX tasks_by_batch ON tasks(batch_id, seq);
   CREATE TABLE leases (
     lease_id text PRIMARY KEY,
     task_id text NOT NULL REFERENCES tasks(task_id),
     device_id text NOT NULL,
     issued_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     status text NOT NULL, -- live | answered | refused
     -- A lease to a trusted device that may finish the task on its own (adaptive replication).
     solo boolean NOT NULL DEFAULT false
   );
   CREATE INDEX leases_by_task ON leases(task_id, status);
   CREATE INDEX leases_by_issue ON leases(issued_at);
   CREATE INDEX leases_live ON leases(expires_at) WHERE status = 'live';
   CREATE TABLE results (
     lease_id text PRIMARY KEY REFERENCES leases(lease_id),
     id bigint GENERATED ALWAYS AS IDENTITY,
     task_id text NOT NULL REFERENCES tasks(task_id),
     device_id text NOT NULL,
     body_hash text NOT NULL,
     exit_code integer,
     stdout bytea NOT NULL,
     stderr bytea NOT NULL,
     files text NOT NULL,
     truncated text NOT NULL,
     error_code text,
     error_message text,
     timings text NOT NULL,
     received_at bigint NOT NULL,
     work bigint,
     output_digest text,
     signature text NOT NULL,
     validation text NOT NULL DEFAULT 'pending',
     -- The credit granted to a valid result, or claimed by a pending one; 0 otherwise.
     credit double precision NOT NULL DEFAULT 0
   );
   CREATE INDEX results_by_task ON results(task_id);
   CREATE INDEX results_by_device ON results(device_id, validation);
   CREATE INDEX results_by_time ON results(received_at);
   CREATE TABLE refusals (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     task_id text NOT NULL REFERENCES tasks(task_id),
     lease_id text NOT NULL,
     device_id text NOT NULL,
     reason text NOT NULL,
     detail text NOT NULL,
     at bigint NOT NULL
   );
   CREATE INDEX refusals_by_task ON refusals(task_id);
   CREATE INDEX refusals_by_lease ON refusals(lease_id);
   CREATE INDEX refusals_by_time ON refusals(at);
   CREATE TABLE devices (
     device_id text PRIMARY KEY,
     public_key text NOT NULL,
     first_seen bigint NOT NULL,
     last_seen bigint NOT NULL,
     consecutive_valid integer NOT NULL DEFAULT 0
   );
   CREATE TABLE keyset_refusals (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     device_id text NOT NULL,
     version integer NOT NULL,
     reason text NOT NULL,
     detail text NOT NULL,
     at bigint NOT NULL
   );
   CREATE INDEX keyset_refusals_by_device ON keyset_refusals(device_id, version);
   CREATE TABLE keysets (
     version integer PRIMARY KEY,
     body text NOT NULL,
     stored_at bigint NOT NULL
   );
   -- Content-addressed: a row is written once under the SHA-256 of its bytes, never changed.
   CREATE TABLE blobs (
     sha256 text PRIMARY KEY,
     bytes bytea NOT NULL
   );`,
  // 2: task events for the owner's event stream (SQLite's ladder 5): every change of a task's state
  // and every lease, written by triggers in the transaction that made the change. Servers commit
  // side by side, so an event is numbered (seq) only once committed, by one sequencer at a time
  // (sequenceEvents): a reader that has seen seq n never later meets a smaller one.
  `CREATE SEQUENCE task_event_seq;
   CREATE TABLE task_events (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     seq bigint UNIQUE,
     batch_id text NOT NULL,
     task_id text NOT NULL,
     state text NOT NULL
   );
   CREATE INDEX task_events_unnumbered ON task_events(id) WHERE seq IS NULL;
   CREATE INDEX task_events_by_batch ON task_events(batch_id, seq);
   CREATE FUNCTION task_state_event() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     INSERT INTO task_events (batch_id, task_id, state) VALUES (NEW.batch_id, NEW.task_id, NEW.state);
     RETURN NULL;
   END $$;
   CREATE TRIGGER task_state_event AFTER UPDATE OF state ON tasks FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state) EXECUTE FUNCTION task_state_event();
   CREATE FUNCTION task_lease_event() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     INSERT INTO task_events (batch_id, task_id, state) SELECT batch_id, task_id, 'running' FROM tasks WHERE task_id = NEW.task_id;
     RETURN NULL;
   END $$;
   CREATE TRIGGER task_lease_event AFTER INSERT ON leases FOR EACH ROW EXECUTE FUNCTION task_lease_event();
   INSERT INTO task_events (seq, batch_id, task_id, state) SELECT nextval('task_event_seq'), batch_id, task_id, state FROM tasks WHERE state <> 'queued' ORDER BY id;`,
  // 3: hostile donors (issue #13), as SQLite's 6: what a result may claim (outputBytes), how long a
  // lease may live (the bytes to prepare, its end, the progress its renewals showed), whether each
  // report came from a device that had earned trust, tasks held for trusted devices, one keyset
  // refusal per device and version.
  `ALTER TABLE tasks ADD COLUMN output_bytes bigint NOT NULL DEFAULT 0;
   UPDATE tasks SET output_bytes = (envelope::jsonb #>> '{manifest,limits,outputBytes}')::bigint;
   ALTER TABLE tasks ADD COLUMN prepare_bytes bigint NOT NULL DEFAULT 0;
   UPDATE tasks SET prepare_bytes = (envelope::jsonb #>> '{manifest,module,size}')::bigint
     + coalesce((envelope::jsonb #>> '{manifest,stdin,size}')::bigint, 0)
     + coalesce((SELECT sum((f #>> '{blob,size}')::bigint) FROM jsonb_array_elements(envelope::jsonb #> '{manifest,files}') f), 0);
   ALTER TABLE tasks ADD COLUMN trusted_only boolean NOT NULL DEFAULT false;
   ALTER TABLE leases ADD COLUMN ends_at bigint;
   UPDATE leases SET ends_at = expires_at;
   ALTER TABLE leases ALTER COLUMN ends_at SET NOT NULL;
   ALTER TABLE leases ADD COLUMN phase text;
   ALTER TABLE leases ADD COLUMN progress bigint NOT NULL DEFAULT 0;
   CREATE INDEX leases_by_device ON leases(device_id, expires_at) WHERE status = 'live';
   CREATE INDEX leases_by_task_device ON leases(task_id, device_id);
   ALTER TABLE results ADD COLUMN trusted boolean NOT NULL DEFAULT false;
   CREATE INDEX results_valid_by_device ON results(device_id, received_at) WHERE validation = 'valid';
   ALTER TABLE refusals ADD COLUMN trusted boolean NOT NULL DEFAULT false;
   ALTER TABLE keyset_refusals ADD COLUMN trusted boolean NOT NULL DEFAULT false;
   DELETE FROM keyset_refusals k WHERE EXISTS (SELECT 1 FROM keyset_refusals e WHERE e.device_id = k.device_id AND e.version = k.version AND e.id < k.id);
   DROP INDEX keyset_refusals_by_device;
   CREATE UNIQUE INDEX keyset_refusals_once ON keyset_refusals(device_id, version);`,
];

/** The advisory lock the migration ladder runs under: 'dewg', 1. */
const MIGRATION_LOCK = [0x64657767, 1] as const;

/** The advisory lock the event sequencer runs under: 'dewg', 3. */
const EVENT_SEQUENCER_LOCK = [0x64657767, 3] as const;

/**
 * The longest a write waits for a lock another transaction holds (PostgreSQL's lock_timeout, for
 * row, advisory and every other lock). A healthy transaction holds its locks for milliseconds, a
 * slow one on a loaded machine for some hundreds; one held longer is a transaction stalled (its
 * server frozen), which the request must not wait out. Below a client's request timeout (4 s in
 * the tests, test/server/cluster.test.ts), so the client hears a 503 rather than giving up on the
 * server while its transaction goes on waiting.
 */
export const LOCK_WAIT_MS = 2000;

/** lock_not_available: a lock wait ran past lock_timeout. */
const LOCK_TIMEOUT = '55P03';

/** SQLSTATEs of transactions that collided with another and may simply run again. */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
const ATTEMPTS = 6;
/**
 * SQLSTATEs and socket errors that mean the database cannot be reached or is restarting: the
 * request gets a 503 and the client tries again (the pool connects afresh on the next request).
 */
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export interface PostgresOptions {
  url: string;
  /** Connections this server may hold at most. Default 10. */
  poolSize?: number;
  /** The clock, ms since epoch (tests move it); default the database's clock. */
  now?: () => number;
  /** How long opening waits for a database that cannot be reached yet; default 30 s. */
  startPatienceMs?: number;
}

export class PostgresEngine implements Engine {
  readonly name = 'postgres';
  readonly blobs: Blobs;
  private constructor(
    private readonly pool: pg.Pool,
    private readonly clock: (() => number) | null,
    private readonly poolSize: number,
  ) {
    this.blobs = new PostgresBlobs(pool);
  }

  /** Connects, and brings the schema up to date (once, whichever server gets there first). */
  static async open(options: PostgresOptions): Promise<PostgresEngine> {
    const poolSize = options.poolSize ?? 10;
    const pool = new pg.Pool({
      connectionString: options.url,
      max: poolSize,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 60_000,
      // Which server a connection is, in pg_stat_activity.
      application_name: `dewgrid ${process.pid}`,
      types: TYPES,
    });
    // An idle connection the database drops (a restart) is an error event on the pool: the pool
    // discards that connection and opens another when needed; nothing else is to be done.
    pool.on('error', () => undefined);
    // A server started while its database is (re)starting waits for it a while, as services
    // started together do, rather than exit.
    const deadline = Date.now() + (options.startPatienceMs ?? 30_000);
    for (;;) {
      try {
        await migrate(pool);
        break;
      } catch (error) {
        if (isUnavailable(error) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          continue;
        }
        await pool.end();
        throw error;
      }
    }
    return new PostgresEngine(pool, options.now ?? null, poolSize);
  }

  private async transaction<T>(begin: string, work: (q: Queries, now: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withClient(this.pool, async (client) => {
          await client.query(begin);
          try {
            const now = this.clock ? this.clock() : ((await run(client, NOW)).rows[0]!.now as number);
            const result = await work(new PostgresQueries(client), now);
            await client.query('COMMIT');
            return result;
          } catch (error) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw error;
          }
        });
      } catch (error) {
        const code = (error as { code?: string }).code;
        // Not run again here: the lock is held by a transaction that stalled, and running again
        // would wait again, on this request's connection. The client tries again in a moment.
        if (code === LOCK_TIMEOUT) throw new LockWaitError(LOCK_WAIT_MS);
        if (!(code && RETRYABLE.has(code)) || attempt === ATTEMPTS) throw isUnavailable(error) ? new DatabaseUnavailableError(error as Error) : error;
        // Collided with another server's transaction: wait a moment (longer each time, jittered) and run it again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * 2 ** attempt));
      }
    }
  }

  write<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T> {
    // One round trip: the statements of a simple query run in order. SET LOCAL ends with the transaction.
    return this.transaction(`BEGIN; SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`, work);
  }

  read<T>(work: (q: Queries, now: number) => Promise<T>): Promise<T> {
    // REPEATABLE READ: every query of a read sees the same snapshot.
    return this.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', work);
  }

  async info(): Promise<EngineInfo> {
    const [row] = (await reaching(() => this.pool.query(`SELECT (SELECT coalesce(max(version), 0) FROM dewgrid_migrations) AS version, current_setting('server_version') AS server`))).rows;
    return { engine: 'postgres', schemaVersion: row!.version as number, details: { serverVersion: row!.server as string, poolSize: this.poolSize } };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** int8 (counts, ms timestamps) as a JS number: they fit well within 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

const NOW = sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now`;

/** Statement names by text: each is prepared once per connection, then only bound and run. */
const names = new Map<string, string>();

function run(client: pg.PoolClient | pg.Pool, query: Sql): Promise<pg.QueryResult<Row>> {
  const { text, values } = render(query);
  let name = names.get(text);
  if (!name) names.set(text, (name = `dewgrid_${names.size}`));
  return client.query({ name, text, values });
}

/**
 * Runs `use` with a connection of its own. A connection that breaks while held (the database
 * restarting between two queries) is an error event on it: heard here, so it cannot crash the
 * process, and the connection is destroyed rather than put back.
 */
async function withClient<T>(pool: pg.Pool, use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => void (broken = error);
  client.on('error', onError);
  try {
    return await use(client);
  } catch (error) {
    broken ??= isUnavailable(error) ? (error as Error) : undefined;
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** Whether the error says the database cannot be reached now (restarting, down, out of connections). */
function isUnavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  if (code && UNAVAILABLE_CODES.has(code)) return true;
  // node-postgres's own words for a connection lost or never made, which carry no code.
  return code === undefined && /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection ended/i.test(message ?? '');
}

/** Runs `query`, as a 503 when the database cannot be reached now. */
async function reaching<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    throw isUnavailable(error) ? new DatabaseUnavailableError(error as Error) : error;
  }
}

/** Runs the ladder's missing steps in one transaction, under an advisory lock that every starting server takes first. */
async function migrate(pool: pg.Pool): Promise<void> {
  await withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS dewgrid_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const version = (await client.query('SELECT coalesce(max(version), 0)::int AS version FROM dewgrid_migrations')).rows[0]!.version as number;
      // A newer ladder than this server knows: a newer server migrated during a rolling upgrade.
      // Steps only add, so this one runs on as it is.
      for (let v = version; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v]!);
        await client.query('INSERT INTO dewgrid_migrations (version) VALUES ($1)', [v + 1]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  });
}

class PostgresBlobs implements Blobs {
  constructor(private readonly pool: pg.Pool) {}

  async read(sha256: string): Promise<Buffer | null> {
    const { rows } = await reaching(() => run(this.pool, sql`SELECT bytes FROM blobs WHERE sha256 = ${sha256}`));
    return (rows[0]?.bytes as Buffer | undefined) ?? null;
  }

  async missing(hashes: readonly string[]): Promise<string[]> {
    if (hashes.length === 0) return [];
    const unique = [...new Set(hashes)];
    const { rows } = await reaching(() => run(this.pool, sql`SELECT sha256 FROM blobs WHERE sha256 = ANY(${unique}::text[])`));
    const stored = new Set(rows.map((r) => r.sha256 as string));
    return unique.filter((h) => !stored.has(h));
  }

  async write(blobs: ReadonlyMap<string, Uint8Array>): Promise<void> {
    // One statement per blob: a module may be many megabytes, so no statement carries them all.
    for (const [sha256, bytes] of blobs) {
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      await reaching(() => run(this.pool, sql`INSERT INTO blobs (sha256, bytes) VALUES (${sha256}, ${buffer}) ON CONFLICT (sha256) DO NOTHING`));
    }
  }
}

class PostgresQueries implements Queries {
  constructor(private readonly client: pg.PoolClient) {}

  private async q(query: Sql): Promise<Row[]> {
    return (await run(this.client, query)).rows;
  }

  private texts(values: readonly string[]): string[] {
    return [...values];
  }

  // ---- Publishing and keysets

  async batchDigest(batchId: string): Promise<string | null> {
    const [row] = await this.q(sql`SELECT digest FROM batches WHERE batch_id = ${batchId}`);
    return (row?.digest as string | undefined) ?? null;
  }

  async takenTaskIds(taskIds: readonly string[]): Promise<string[]> {
    if (taskIds.length === 0) return [];
    const rows = await this.q(sql`SELECT task_id FROM tasks WHERE task_id = ANY(${this.texts(taskIds)}::text[])`);
    const taken = new Set(rows.map((r) => r.task_id as string));
    return taskIds.filter((id) => taken.has(id));
  }

  async insertBatch(batch: NewBatch, tasks: readonly NewTask[]): Promise<void> {
    await this.q(sql`INSERT INTO batches (batch_id, name, created_at, digest, adaptive) VALUES (${batch.batchId}, ${batch.name}, ${batch.createdAt}, ${batch.digest}, ${batch.adaptive})`);
    const column = <K extends keyof NewTask>(key: K) => tasks.map((t) => t[key]);
    // One statement, one array per column, whatever the batch's size; in the tasks' order (their ids follow it).
    await this.q(sql`
      INSERT INTO tasks (task_id, batch_id, seq, envelope, engine, key_id, redundancy, needed, expires_at, wall_time_ms, output_bytes, prepare_bytes)
      SELECT task_id, ${batch.batchId}, seq, envelope, engine, key_id, redundancy, redundancy, expires_at, wall_time_ms, output_bytes, prepare_bytes
      FROM unnest(${column('taskId')}::text[], ${column('seq')}::int[], ${column('envelope')}::text[], ${column('engine')}::text[], ${column('keyId')}::text[],
                  ${column('redundancy')}::int[], ${column('expiresAt')}::int8[], ${column('wallTimeMs')}::int8[], ${column('outputBytes')}::int8[],
                  ${column('prepareBytes')}::int8[])
           WITH ORDINALITY AS t(task_id, seq, envelope, engine, key_id, redundancy, expires_at, wall_time_ms, output_bytes, prepare_bytes, n)
      ORDER BY n`);
    // The planner's statistics, now: the lease query walks queued tasks in order and stops at the
    // first few only if the planner knows the table is large. Left to autovacuum, a fresh batch is
    // leased for up to a minute by a plan that sorts every queued task (measured: 70-110 ms a
    // lease on 2 000 tasks, against 0.1-0.3 ms).
    await this.q(sql`ANALYZE tasks, leases`);
  }

  async keyset(): Promise<{ version: number; body: string } | null> {
    const [row] = await this.q(sql`SELECT version, body FROM keysets ORDER BY version DESC LIMIT 1`);
    return row ? { version: row.version as number, body: row.body as string } : null;
  }

  async insertKeyset(version: number, body: string, now: number): Promise<void> {
    await this.q(sql`INSERT INTO keysets (version, body, stored_at) VALUES (${version}, ${body}, ${now})`);
  }

  async revokeTasks(keyIds: readonly string[]): Promise<number> {
    const [row] = await this.q(sql`
      WITH revoked AS (
        UPDATE tasks SET state = 'revoked' WHERE state = 'queued' AND key_id = ANY(${this.texts(keyIds)}::text[]) RETURNING task_id
      ), voided AS (
        UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM revoked)
      )
      SELECT count(*) AS n FROM revoked`);
    return row!.n as number;
  }

  async expireTasks(now: number): Promise<number> {
    // SKIP LOCKED: a task another transaction holds is expired by a later lease, not waited for.
    const [row] = await this.q(sql`
      WITH expired AS (
        UPDATE tasks SET state = 'expired'
        WHERE task_id IN (SELECT task_id FROM tasks WHERE state = 'queued' AND expires_at <= ${now} FOR UPDATE SKIP LOCKED)
        RETURNING task_id
      ), voided AS (
        UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM expired)
      )
      SELECT count(*) AS n FROM expired`);
    return row!.n as number;
  }

  async cancelTasks(batchId: string): Promise<number> {
    // Every queued task of the batch, waiting for a transaction that holds one (a result being judged) rather than passing it over.
    const [row] = await this.q(sql`
      WITH cancelled AS (
        UPDATE tasks SET state = 'cancelled'
        WHERE task_id IN (SELECT task_id FROM tasks WHERE batch_id = ${batchId} AND state = 'queued' ORDER BY task_id FOR UPDATE)
          AND state = 'queued'
        RETURNING task_id
      ), voided AS (
        UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM cancelled)
      )
      SELECT count(*) AS n FROM cancelled`);
    return row!.n as number;
  }

  // ---- Devices

  async upsertDevice(deviceId: string, publicKey: string, now: number): Promise<string> {
    const [row] = await this.q(sql`
      INSERT INTO devices (device_id, public_key, first_seen, last_seen) VALUES (${deviceId}, ${publicKey}, ${now}, ${now})
      ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen WHERE devices.public_key = excluded.public_key
      RETURNING public_key`);
    return (row?.public_key as string | undefined) ?? (await this.devicePublicKey(deviceId))!;
  }

  async devicePublicKey(deviceId: string): Promise<string | null> {
    const [row] = await this.q(sql`SELECT public_key FROM devices WHERE device_id = ${deviceId}`);
    return (row?.public_key as string | undefined) ?? null;
  }

  async deviceRun(deviceId: string): Promise<number | null> {
    const [row] = await this.q(sql`SELECT consecutive_valid FROM devices WHERE device_id = ${deviceId}`);
    return (row?.consecutive_valid as number | undefined) ?? null;
  }

  async creditRows(deviceId: string): Promise<CreditRow[]> {
    return (await this.q(sql`SELECT validation, count(*) AS n, coalesce(sum(credit), 0) AS credit FROM results WHERE device_id = ${deviceId} GROUP BY validation`)) as unknown as CreditRow[];
  }

  async touchDevice(deviceId: string, now: number): Promise<void> {
    await this.q(sql`UPDATE devices SET last_seen = ${now} WHERE device_id = ${deviceId}`);
  }

  async judge(leaseId: string, deviceId: string, agrees: boolean, credit: number, run: RunEffect): Promise<void> {
    await this.q(sql`UPDATE results SET validation = ${agrees ? 'valid' : 'invalid'}, credit = ${credit} WHERE lease_id = ${leaseId}`);
    if (run === 'keep') return;
    await this.q(sql`UPDATE devices SET consecutive_valid = CASE WHEN ${run === 'extend'}::boolean THEN consecutive_valid + 1 ELSE 0 END WHERE device_id = ${deviceId}`);
  }

  // ---- Leases

  async leaseContext(deviceId: string, now: number, since: number): Promise<{ consecutiveValid: number; keysetVersion: number; live: number; validRecently: number }> {
    // Two servers leasing for one device at once count its live leases one after the other: under
    // a lock of the device's own (an advisory lock, in the one-key space, apart from the two-key
    // locks above), not its row's. A row lock would be waited for by every result judged against
    // the device's (judge() updates its row), and with a server frozen mid-lease those waits, each
    // holding a task's lock and other devices' rows, would stall the fleet. This lock is waited for
    // only by the same device's next lease, and no longer than LOCK_WAIT_MS (a server frozen while
    // leasing for the device: it hears 503 until the server wakes).
    await this.q(sql`SELECT pg_advisory_xact_lock(hashtextextended(${'dewgrid-device-leases:' + deviceId}, 0))`);
    const [device] = await this.q(sql`SELECT consecutive_valid FROM devices WHERE device_id = ${deviceId}`);
    const [row] = await this.q(sql`
      SELECT (SELECT max(version) FROM keysets) AS version,
             (SELECT count(*) FROM leases WHERE device_id = ${deviceId} AND status = 'live' AND expires_at > ${now}) AS live,
             (SELECT count(*) FROM results WHERE device_id = ${deviceId} AND validation = 'valid' AND received_at >= ${since}) AS valid`);
    return {
      consecutiveValid: (device?.consecutive_valid as number | undefined) ?? 0,
      keysetVersion: (row!.version as number | null) ?? 0,
      live: row!.live as number,
      validRecently: row!.valid as number,
    };
  }

  async leaseCandidates(deviceId: string, engines: readonly string[], max: number, now: number, trusted: boolean): Promise<LeaseCandidate[]> {
    const taken: LeaseCandidate[] = [];
    const seen: string[] = [];
    // Rounds, each with a fresh view of the database, until `max` are taken or none is left. A
    // round comes up short only when other servers leased what it saw meanwhile, so rounds end.
    for (let round = 0; round < 64 && taken.length < max; round++) {
      // 1. Lock eligible tasks, passing over those another server is leasing or answering right
      //    now (SKIP LOCKED): many servers lease at once without waiting for each other.
      const locked = await this.q(sql`
        SELECT t.task_id FROM tasks t
        WHERE t.state = 'queued' AND t.expires_at > ${now} AND t.engine = ANY(${[...engines]}::text[])
          AND (${trusted}::boolean OR NOT t.trusted_only)
          AND NOT (t.task_id = ANY(${seen}::text[])) AND ${eligible(deviceId, now)}
        ORDER BY t.id
        LIMIT ${max - taken.length}
        FOR UPDATE OF t SKIP LOCKED`);
      if (locked.length === 0) break;
      const ids = locked.map((r) => r.task_id as string);
      seen.push(...ids);
      // 2. Check them again under the lock: the first query saw the database as it was when it
      //    began, and another server may have leased one of them and let go of it since (then
      //    the next round looks further).
      const rows = await this.q(sql`
        SELECT t.task_id, t.envelope, t.wall_time_ms, t.prepare_bytes, t.results, b.adaptive,
               (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > ${now}) AS live
        FROM tasks t JOIN batches b ON b.batch_id = t.batch_id
        WHERE t.task_id = ANY(${ids}::text[]) AND t.state = 'queued' AND (${trusted}::boolean OR NOT t.trusted_only) AND ${eligible(deviceId, now)}
        ORDER BY t.id`);
      for (const r of rows) {
        taken.push({ taskId: r.task_id, envelope: r.envelope, wallTimeMs: r.wall_time_ms, prepareBytes: r.prepare_bytes, results: r.results, adaptive: r.adaptive, live: r.live });
      }
    }
    return taken;
  }

  async insertLease(lease: Parameters<Queries['insertLease']>[0]): Promise<void> {
    await this.q(sql`INSERT INTO leases (lease_id, task_id, device_id, issued_at, expires_at, ends_at, status, solo)
                   VALUES (${lease.leaseId}, ${lease.taskId}, ${lease.deviceId}, ${lease.issuedAt}, ${lease.expiresAt}, ${lease.endsAt}, 'live', ${lease.solo})`);
  }

  async lease(leaseId: string): Promise<LeaseFacts | null> {
    const [r] = await this.q(sql`SELECT lease_id, task_id, device_id, expires_at, ends_at, status, solo, phase, progress FROM leases WHERE lease_id = ${leaseId}`);
    return r
      ? {
          leaseId: r.lease_id, taskId: r.task_id, deviceId: r.device_id, expiresAt: r.expires_at, endsAt: r.ends_at, status: r.status, solo: r.solo,
          phase: r.phase as LeasePhase | null, progress: r.progress,
        }
      : null;
  }

  async setLeaseStatus(leaseId: string, status: 'answered' | 'refused'): Promise<void> {
    await this.q(sql`UPDATE leases SET status = ${status} WHERE lease_id = ${leaseId}`);
  }

  async renewLease(leaseId: string, expiresAt: number, phase: LeasePhase, progress: number): Promise<void> {
    await this.q(sql`UPDATE leases SET expires_at = ${expiresAt}, phase = ${phase}, progress = ${progress} WHERE lease_id = ${leaseId}`);
  }

  // ---- Tasks

  async lockTask(taskId: string): Promise<TaskFacts | null> {
    const [r] = await this.q(sql`
      SELECT task_id, state, results, errors, redundancy, needed, wall_time_ms, output_bytes, prepare_bytes, trusted_only, canonical_lease
      FROM tasks WHERE task_id = ${taskId} FOR UPDATE`);
    return r
      ? {
          taskId: r.task_id, state: r.state, results: r.results, errors: r.errors, redundancy: r.redundancy, needed: r.needed, wallTimeMs: r.wall_time_ms,
          outputBytes: r.output_bytes, prepareBytes: r.prepare_bytes, trustedOnly: r.trusted_only, canonicalLeaseId: r.canonical_lease,
        }
      : null;
  }

  async countResult(taskId: string): Promise<void> {
    await this.q(sql`UPDATE tasks SET results = results + 1 WHERE task_id = ${taskId}`);
  }

  async taskReports(taskId: string): Promise<Report[]> {
    const rows = await this.q(sql`
      SELECT device_id, kind, trusted FROM (
        SELECT device_id, CASE WHEN error_code IS NULL THEN 'result' WHEN error_code = 'device' THEN 'device' ELSE 'error' END AS kind, trusted,
               received_at AS at, 0 AS src, id AS seq
        FROM results WHERE task_id = ${taskId}
        UNION ALL
        SELECT device_id, CASE WHEN reason IN ('replayed-task', 'unsupported-engine') THEN 'device' ELSE 'refusal' END, trusted, at, 1, id
        FROM refusals WHERE task_id = ${taskId}) AS reports
      ORDER BY at, src, seq`);
    return rows.map((r) => ({ deviceId: r.device_id, kind: r.kind, trusted: r.trusted }) as Report);
  }

  async holdForTrusted(taskId: string): Promise<void> {
    await this.q(sql`UPDATE tasks SET trusted_only = true WHERE task_id = ${taskId}`);
  }

  async finishTask(taskId: string, canonicalLeaseId: string): Promise<void> {
    await this.q(sql`UPDATE tasks SET state = 'done', canonical_lease = ${canonicalLeaseId} WHERE task_id = ${taskId}`);
  }

  async endTask(taskId: string, state: 'failed' | 'inconclusive' | 'refused'): Promise<void> {
    await this.q(sql`
      WITH ended AS (UPDATE tasks SET state = ${state} WHERE task_id = ${taskId} AND state = 'queued' RETURNING task_id)
      UPDATE results SET validation = 'void', credit = 0 WHERE validation = 'pending' AND task_id IN (SELECT task_id FROM ended)`);
  }

  async raiseNeeded(taskId: string, needed: number): Promise<void> {
    await this.q(sql`UPDATE tasks SET needed = greatest(needed, ${needed}) WHERE task_id = ${taskId}`);
  }

  // ---- Results

  async resultBodyHash(leaseId: string): Promise<string | null> {
    const [row] = await this.q(sql`SELECT body_hash FROM results WHERE lease_id = ${leaseId}`);
    return (row?.body_hash as string | undefined) ?? null;
  }

  async insertResult(r: NewResult): Promise<void> {
    await this.q(sql`
      INSERT INTO results (lease_id, task_id, device_id, body_hash, exit_code, stdout, stderr, files, truncated, error_code, error_message, timings, received_at,
                           work, output_digest, signature, validation, credit, trusted)
      VALUES (${r.leaseId}, ${r.taskId}, ${r.deviceId}, ${r.bodyHash}, ${r.exitCode}, ${r.stdout}, ${r.stderr}, ${r.files}, ${r.truncated}, ${r.errorCode},
              ${r.errorMessage}, ${r.timings}, ${r.receivedAt}, ${r.work}, ${r.outputDigest}, ${r.signature}, ${r.validation}, ${r.credit}, ${r.trusted})`);
  }

  async pendingResults(taskId: string): Promise<PendingResult[]> {
    const rows = await this.q(sql`SELECT lease_id, device_id, output_digest, work, received_at, id FROM results WHERE task_id = ${taskId} AND validation = 'pending'`);
    return rows.map((r) => ({ leaseId: r.lease_id, deviceId: r.device_id, digest: r.output_digest, work: r.work, receivedAt: r.received_at, seq: r.id }) as PendingResult);
  }

  async resultVerdict(leaseId: string): Promise<{ digest: string; credit: number }> {
    const [row] = await this.q(sql`SELECT output_digest, credit FROM results WHERE lease_id = ${leaseId}`);
    return { digest: row!.output_digest as string, credit: row!.credit as number };
  }

  async voidResult(leaseId: string): Promise<void> {
    await this.q(sql`UPDATE results SET validation = 'void', credit = 0 WHERE lease_id = ${leaseId}`);
  }

  // ---- Refusals

  async leaseRefusal(leaseId: string): Promise<{ reason: string; detail: string } | null> {
    const [row] = await this.q(sql`SELECT reason, detail FROM refusals WHERE lease_id = ${leaseId} ORDER BY id LIMIT 1`);
    return row ? { reason: row.reason as string, detail: row.detail as string } : null;
  }

  async insertRefusal(r: Parameters<Queries['insertRefusal']>[0]): Promise<void> {
    await this.q(sql`
      INSERT INTO refusals (task_id, lease_id, device_id, reason, detail, at, trusted)
      VALUES (${r.taskId}, ${r.leaseId}, ${r.deviceId}, ${r.reason}, ${r.detail}, ${r.at}, ${r.trusted})`);
  }

  async insertKeysetRefusal(r: KeysetRefusalRow): Promise<{ reason: string; detail: string } | null> {
    // Two servers taking reports on one version at once: the unique index makes the second wait for
    // the first's commit, then do nothing, and read the first's row.
    const [row] = await this.q(sql`
      INSERT INTO keyset_refusals (device_id, version, reason, detail, at, trusted)
      VALUES (${r.deviceId}, ${r.version}, ${r.reason}, ${r.detail}, ${r.at}, ${r.trusted})
      ON CONFLICT (device_id, version) DO NOTHING
      RETURNING id`);
    if (row) return null;
    const [earlier] = await this.q(sql`SELECT reason, detail FROM keyset_refusals WHERE device_id = ${r.deviceId} AND version = ${r.version}`);
    return { reason: earlier!.reason as string, detail: earlier!.detail as string };
  }

  async trimKeysetRefusals(keep: number): Promise<void> {
    await this.q(sql`
      DELETE FROM keyset_refusals WHERE id IN (
        SELECT id FROM keyset_refusals ORDER BY trusted, id
        LIMIT greatest(0, (SELECT count(*) FROM keyset_refusals) - ${keep}))`);
  }

  // ---- Reading

  async keysetRefusals(): Promise<KeysetRefusalRow[]> {
    return (await this.q(sql`SELECT device_id AS "deviceId", version, reason, detail, at, trusted FROM keyset_refusals ORDER BY id`)) as unknown as KeysetRefusalRow[];
  }

  async activeDevices(since: number, now: number, limit: number): Promise<DeviceActivity[]> {
    const rows = await this.q(sql`
      SELECT device_id AS "deviceId", max(at) AS "lastSeen",
             count(*) FILTER (WHERE kind = 'lease') AS leases, count(*) FILTER (WHERE kind = 'result') AS results,
             count(*) FILTER (WHERE kind = 'error') AS errors, count(*) FILTER (WHERE kind = 'refusal') AS refusals,
             count(*) FILTER (WHERE kind = 'live') AS live
      FROM (SELECT device_id, issued_at AS at, 'lease' AS kind FROM leases WHERE issued_at >= ${since}
            UNION ALL SELECT device_id, issued_at, 'live' FROM leases WHERE status = 'live' AND expires_at > ${now}
            UNION ALL SELECT device_id, received_at, CASE WHEN error_code IS NULL THEN 'result' ELSE 'error' END FROM results WHERE received_at >= ${since}
            UNION ALL SELECT device_id, at, 'refusal' FROM refusals WHERE at >= ${since}) AS seen
      GROUP BY device_id ORDER BY "lastSeen" DESC, device_id LIMIT ${limit}`);
    return rows as unknown as DeviceActivity[];
  }

  async batches(): Promise<BatchRow[]> {
    const rows = await this.q(sql`SELECT batch_id, name, created_at, adaptive FROM batches ORDER BY created_at, id`);
    return rows.map((r) => ({ batchId: r.batch_id, name: r.name, createdAt: r.created_at, adaptive: r.adaptive }) as BatchRow);
  }

  async batch(batchId: string): Promise<BatchRow | null> {
    const [r] = await this.q(sql`SELECT batch_id, name, created_at, adaptive FROM batches WHERE batch_id = ${batchId}`);
    return r ? { batchId: r.batch_id, name: r.name, createdAt: r.created_at, adaptive: r.adaptive } : null;
  }

  async batchCounts(batchId: string, now: number): Promise<{ state: TaskState; expired: boolean; leased: boolean; nonzeroExit: boolean; n: number }[]> {
    const rows = await this.q(sql`
      SELECT t.state, t.expires_at <= ${now} AS expired,
             t.state = 'queued' AND EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > ${now}) AS leased,
             t.state = 'done' AND EXISTS (SELECT 1 FROM results r WHERE r.lease_id = t.canonical_lease AND r.exit_code <> 0) AS "nonzeroExit",
             count(*) AS n
      FROM tasks t WHERE t.batch_id = ${batchId} GROUP BY 1, 2, 3, 4`);
    return rows as unknown as { state: TaskState; expired: boolean; leased: boolean; nonzeroExit: boolean; n: number }[];
  }

  async batchRefusals(batchId: string, taskIds?: readonly string[]): Promise<RefusalRow[]> {
    return (await this.q(sql`
      SELECT r.task_id AS "taskId", r.reason, r.detail, r.device_id AS "deviceId", r.at, r.trusted FROM refusals r JOIN tasks t ON t.task_id = r.task_id
      WHERE t.batch_id = ${batchId} AND ${this.someTasks('r.task_id', taskIds)} ORDER BY r.id`)) as unknown as RefusalRow[];
  }

  /** A condition on a task id column: any task, or one of `taskIds`. */
  private someTasks(column: 'r.task_id' | 't.task_id', taskIds: readonly string[] | undefined): Sql {
    if (!taskIds) return sql`true`;
    return column === 'r.task_id' ? sql`r.task_id = ANY(${this.texts(taskIds)}::text[])` : sql`t.task_id = ANY(${this.texts(taskIds)}::text[])`;
  }

  async sequenceEvents(): Promise<void> {
    // One sequencer at a time, across servers: events are numbered in the order they are found committed.
    await this.q(sql`SELECT pg_advisory_xact_lock(${EVENT_SEQUENCER_LOCK[0]}, ${EVENT_SEQUENCER_LOCK[1]})`);
    await this.q(sql`UPDATE task_events SET seq = nextval('task_event_seq') WHERE id IN (SELECT id FROM task_events WHERE seq IS NULL ORDER BY id)`);
  }

  async taskEvents(batchId: string, afterSeq: number, limit: number): Promise<TaskEventRow[]> {
    return (await this.q(sql`
      SELECT seq, task_id AS "taskId", state FROM task_events
      WHERE batch_id = ${batchId} AND seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`)) as unknown as TaskEventRow[];
  }

  async batchReports(batchId: string): Promise<ReportCounts> {
    const [row] = await this.q(sql`
      SELECT
        (SELECT count(*) FILTER (WHERE r.error_code <> 'device') FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId} AND r.error_code IS NOT NULL) AS errors,
        (SELECT count(*) FROM refusals r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId}) AS refusals,
        (SELECT count(*) FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId} AND r.error_code = 'device') AS "deviceFailures",
        (SELECT count(*) FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId} AND r.error_code IS NOT NULL AND NOT r.trusted)
          + (SELECT count(*) FROM refusals r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId} AND NOT r.trusted) AS "fromNewDevices",
        (SELECT count(*) FROM tasks WHERE batch_id = ${batchId} AND state = 'queued' AND trusted_only) AS "awaitingTrust"`);
    return row as unknown as ReportCounts;
  }

  async batchFailures(batchId: string, limit: number): Promise<FailureReport[]> {
    const rows = await this.q(sql`
      SELECT * FROM (
        SELECT r.task_id, r.device_id, r.error_code, r.error_message, r.received_at, r.trusted, r.id
        FROM results r JOIN tasks t ON t.task_id = r.task_id WHERE t.batch_id = ${batchId} AND r.error_code IS NOT NULL
        ORDER BY r.received_at DESC, r.id DESC LIMIT ${limit}) AS newest
      ORDER BY received_at, id`);
    return rows.map((r) => ({ taskId: r.task_id, deviceId: r.device_id, code: r.error_code, message: r.error_message, at: r.received_at, newDevice: !r.trusted }) as FailureReport);
  }

  async batchQuorum(batchId: string): Promise<{ awaiting: number; disputed: number }> {
    const [row] = await this.q(sql`
      SELECT count(*) AS awaiting, count(*) FILTER (WHERE needed > redundancy) AS disputed FROM tasks
      WHERE batch_id = ${batchId} AND state = 'queued' AND results > 0`);
    return { awaiting: row!.awaiting as number, disputed: row!.disputed as number };
  }

  async batchTasks(batchId: string, now: number, taskIds?: readonly string[]): Promise<BatchTaskRow[]> {
    const rows = await this.q(sql`
      SELECT t.task_id, t.envelope, t.state, t.results, t.redundancy, t.expires_at, t.canonical_lease,
             (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id) AS leases,
             (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > ${now}) AS live,
             (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.solo AND (l.status = 'answered' OR (l.status = 'live' AND l.expires_at > ${now}))) AS solo
      FROM tasks t WHERE t.batch_id = ${batchId} AND ${this.someTasks('t.task_id', taskIds)} ORDER BY t.seq`);
    return rows.map((r) => ({
      taskId: r.task_id, envelope: r.envelope, state: r.state, results: r.results, redundancy: r.redundancy, expiresAt: r.expires_at,
      leases: r.leases, live: r.live, solo: r.solo, canonicalLeaseId: r.canonical_lease,
    }) as BatchTaskRow);
  }

  async batchResults(batchId: string, taskIds?: readonly string[]): Promise<BatchResultRow[]> {
    return (await this.q(sql`
      SELECT r.task_id AS "taskId", r.device_id AS "deviceId", r.output_digest AS digest, r.validation, r.credit, r.received_at AS at,
             r.error_code AS "errorCode", r.error_message AS "errorMessage"
      FROM results r JOIN tasks t ON t.task_id = r.task_id
      WHERE t.batch_id = ${batchId} AND ${this.someTasks('r.task_id', taskIds)} ORDER BY r.received_at, r.id`)) as unknown as BatchResultRow[];
  }

  async canonicalResults(batchId: string, taskIds?: readonly string[]): Promise<CanonicalRow[]> {
    const rows = await this.q(sql`
      SELECT r.lease_id, r.task_id, r.device_id, r.exit_code, r.stdout, r.stderr, r.files, r.truncated, r.timings
      FROM tasks t JOIN results r ON r.lease_id = t.canonical_lease WHERE t.batch_id = ${batchId} AND ${this.someTasks('t.task_id', taskIds)}`);
    return rows.map((r) => ({
      leaseId: r.lease_id, taskId: r.task_id, deviceId: r.device_id, exitCode: r.exit_code, stdout: r.stdout, stderr: r.stderr, files: r.files, truncated: r.truncated, timings: r.timings,
    }) as CanonicalRow);
  }
}

/**
 * A task `t` wants another lease, to this device, now: it has fewer results and live leases than
 * it needs, no live solo lease, and was never leased to this device (a lapsed lease's device may still be working on it).
 */
function eligible(deviceId: string, now: number): Sql {
  return sql`
    t.results + (SELECT count(*) FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live' AND l.expires_at > ${now}) < t.needed
    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.solo AND l.status = 'live' AND l.expires_at > ${now})
    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.device_id = ${deviceId})`;
}
