// Several task servers on one PostgreSQL (issue #14): three server processes started together on
// an empty database, simulated devices asking a different server on every request; a quarter of
// the way through one server is killed outright (SIGKILL) and replaced; half way, another is
// frozen (SIGSTOP: a long pause, a descheduled VM) in the middle of handing out leases, holding its
// locks, for ten seconds; three quarters of the way (once the freeze is over), PostgreSQL itself
// crashes and restarts.
// Every task must end done with one canonical result and the results its redundancy asks for,
// every result must be credited once, no request may fail for good (a 5xx or a dropped connection
// is retried, on the next server, until it succeeds), and the others must go on leasing while one
// server sits frozen on its locks (SKIP LOCKED; and a result or lease that needs one of those
// locks is answered 503 after a bounded wait, not left waiting on its server's connection). Runs
// in the `postgres` project only, on a cluster of its own (it restarts it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API, creditFor, type BatchResults, type DeviceCredit } from '../../src/protocol/index.ts';
import { startPostgres, TEST_SETTINGS, type PostgresCluster } from '../helpers/postgres.ts';
import { ownerHeaders, writeKey } from '../helpers/server.ts';
import { honestOutput, publishTasks, runFleet, type FleetReport } from '../helpers/fleet.ts';
import { spawnServer, type ServerProcess } from '../helpers/server-process.ts';

// Work enough to be left through the failures, which begin at 1/8, 1/4 and 3/8 of it: catching a
// server mid-lease may take 6 s or more and its freeze lasts 10 s, and with 720 slots failing at
// 1/4, 1/2 and 3/4 a fast machine (36 to 100 cycles a second) had finished them all by the freeze's
// count ("0 cycles in its last 5000 ms": no work left, not waiting). Checked below.
const SOLO_TASKS = 720; // redundancy 1
const PAIR_TASKS = 360; // redundancy 2
const SLOTS = SOLO_TASKS + 2 * PAIR_TASKS;
const DEVICES = 12;
/** Short leases, so the few a crash leaves unanswered (handed out, the answer lost) come back soon; long enough that no answer is late. */
const LEASE_MARGIN_MS = 12_000;

let cluster: PostgresCluster;
let dataDir: string;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  cluster = await startPostgres(TEST_SETTINGS);
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-cluster-'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.kill('SIGKILL')));
  cluster?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const FREEZE_MS = 10_000;
/** Counted from this long into the freeze: by then every device has met the frozen server once and passes it over. */
const FREEZE_SETTLE_MS = 5000;

/**
 * Freezes the server (SIGSTOP) inside a lease transaction that has inserted its lease and holds
 * the lock of the task it is handing out, preferably one another device holds a lease on too;
 * resolves once it is frozen so (pg_stat_activity shows its connection idle in that transaction
 * after the insert), saying which.
 */
async function freezeMidLease(server: ServerProcess, databaseUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  const app = `dewgrid ${server.pid}`;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    // Caught with a gate rather than by polling for a moment a few microseconds long (which a
    // loaded machine made miss for 20 s): a lease's trigger writes a task event, so with
    // task_events locked against writes a lease transaction stops inside its INSERT INTO leases,
    // its task locked. The server is frozen while one of its own waits there; then the gate opens,
    // the insert completes, and the transaction, which the frozen server cannot commit, holds its
    // locks. (Not earlier in the transaction: a task locked and then found taken meanwhile is let
    // go of by the lease query, though its lock is held.) The worse case is sought first, for a
    // few seconds: another device holds a lease on that task too (the other replica of a
    // redundancy-2 task), so its result needs the frozen lock (a locked row's xmax is its
    // locker's xid).
    const waiting = (shared: boolean) =>
      `SELECT 1 FROM pg_stat_activity a WHERE a.application_name = $1 AND a.wait_event_type = 'Lock' AND a.query LIKE 'INSERT INTO leases%'` +
      (shared ? ` AND EXISTS (SELECT 1 FROM tasks t WHERE t.xmax = a.backend_xid AND EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.task_id AND l.status = 'live'))` : '');
    const holding = `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction' AND query LIKE 'INSERT INTO leases%'`;
    const started = Date.now();
    while (Date.now() < started + 20_000) {
      const shared = Date.now() < started + 6000;
      let caught = false;
      await admin.query('BEGIN');
      try {
        await admin.query('LOCK TABLE task_events IN SHARE MODE'); // the gate: every insert waits
        // Half a second at most: every server's leases and finished tasks wait meanwhile.
        for (const until = Date.now() + 500; !caught && Date.now() < until; ) caught = (await admin.query(waiting(shared), [app])).rowCount! > 0;
        if (caught) process.kill(server.pid, 'SIGSTOP');
      } finally {
        await admin.query('COMMIT'); // the gate opens
      }
      if (caught) {
        for (const until = Date.now() + 5000; Date.now() < until; await sleep(20)) {
          if ((await admin.query(holding, [app])).rowCount! > 0) return shared ? 'on a task another device holds a lease on' : 'on a task no one else holds';
        }
        process.kill(server.pid, 'SIGCONT'); // not seen holding after all: try again
      }
      await sleep(100); // the others go on between tries
    }
    throw new Error(`server ${server.pid} was never seen inside a lease transaction`);
  } finally {
    await admin.end();
  }
}

const answered = (report: FleetReport) => [...report.answered.values()].reduce((n, leases) => n + leases.size, 0);

describe('three task servers on one PostgreSQL', () => {
  it('finish every task exactly once through a server killed and the database restarted mid-batch', async () => {
    const key = await writeKey(dataDir); // trust.json and the keyset: all a server keeps on disk
    const databaseUrl = await cluster.createDatabase('cluster');
    const env = { DEWGRID_DATA: dataDir, DEWGRID_DATABASE_URL: databaseUrl, DEWGRID_DATABASE_POOL: '4', DEWGRID_LEASE_MARGIN_MS: String(LEASE_MARGIN_MS) };
    // Started together on the empty database: they race to migrate it, and the ladder's lock lets one do it.
    const started = await Promise.allSettled([spawnServer(env), spawnServer(env), spawnServer(env)]);
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    let live = servers.map((s) => s.url);

    const batches = [
      // The pairs first: leased first, so the freeze finds tasks another device holds a lease on too.
      ...(await publishTasks(live[1]!, key, { prefix: 'pair', count: PAIR_TASKS, redundancy: 2, wallTimeMs: 1000 })),
      ...(await publishTasks(live[0]!, key, { prefix: 'solo', count: SOLO_TASKS, redundancy: 1, wallTimeMs: 1000 })),
    ];

    const events: string[] = [];
    let killedAt = -1;
    let frozenAt = -1;
    let restartedAt = -1;
    let cycleCount = 0;
    let whileFrozen = -1;
    let leftAtCount = -1;
    const chaos: Promise<void>[] = [];
    const chaosFailed: unknown[] = [];
    /** Starts a failure now (its own failure kept, to be reported); returns when it is over. */
    const start = (failure: () => Promise<void>) => {
      const done = failure().catch((error: unknown) => void chaosFailed.push(error));
      chaos.push(done);
      return done;
    };
    let frozenOver: Promise<void> = Promise.resolve();
    const report = await runFleet({
      servers: () => live,
      devices: DEVICES,
      retry: true,
      patienceMs: 30_000,
      requestTimeoutMs: 4000,
      done: (r) => answered(r) >= SLOTS,
      onCycle(cycles) {
        cycleCount = cycles;
        if (killedAt < 0 && cycles >= SLOTS / 8) {
          killedAt = cycles;
          // The load balancer still sends to it for a moment; then a new server takes its place.
          const victim = servers[1]!;
          start(async () => {
            await victim.kill('SIGKILL');
            events.push(`server ${victim.pid} killed at cycle ${cycles}`);
            await new Promise((resolve) => setTimeout(resolve, 500));
            const replacement = await spawnServer(env);
            servers.push(replacement);
            live = live.map((url) => (url === victim.url ? replacement.url : url));
            events.push(`server ${replacement.pid} took its place`);
          });
        }
        if (frozenAt < 0 && killedAt > 0 && cycles >= SLOTS / 4) {
          frozenAt = cycles;
          const frozen = servers[0]!;
          frozenOver = start(async () => {
            const how = await freezeMidLease(frozen, databaseUrl);
            await new Promise((resolve) => setTimeout(resolve, FREEZE_SETTLE_MS));
            const before = cycleCount;
            leftAtCount = SLOTS - before;
            await new Promise((resolve) => setTimeout(resolve, FREEZE_MS - FREEZE_SETTLE_MS));
            whileFrozen = cycleCount - before;
            process.kill(frozen.pid, 'SIGCONT');
            events.push(`server ${frozen.pid} frozen mid-lease (${how}) for ${FREEZE_MS} ms: ${whileFrozen} cycles in its last ${FREEZE_MS - FREEZE_SETTLE_MS} ms`);
          });
        }
        if (restartedAt < 0 && frozenAt > 0 && cycles >= (3 * SLOTS) / 8) {
          restartedAt = cycles;
          start(async () => {
            await frozenOver; // one failure of the database's at a time with the frozen server's
            await cluster.restart('immediate');
            events.push(`PostgreSQL restarted after cycle ${cycles}`);
          });
        }
      },
    });
    await Promise.all(chaos);
    expect(chaosFailed).toEqual([]);
    const retriedBy = new Map<string, number>();
    for (const r of report.retried) retriedBy.set(`${r.path} ${r.status}`, (retriedBy.get(`${r.path} ${r.status}`) ?? 0) + 1);
    console.log(`cluster: ${report.cycles} cycles in ${report.seconds.toFixed(1)} s; ${events.join('; ')}; retried: ${[...retriedBy].map(([what, n]) => `${what} x${n}`).join(', ') || 'none'}; empty work answers: ${report.emptyAt.length}`);
    // Every server still up but the one killed: a database restart is weathered, not fatal.
    for (const server of servers.filter((s) => s !== servers[1])) expect(server.child.exitCode, `server ${server.pid}: ${server.stderr()}`).toBeNull();

    // The failures happened mid-batch, and clients saw them (and got past them).
    expect(killedAt, events.join('; ')).toBeGreaterThan(0);
    expect(restartedAt, events.join('; ')).toBeGreaterThan(frozenAt);
    // While one server sat frozen on the locks of the tasks it was handing out, the others went on
    // leasing: they pass locked tasks over (SKIP LOCKED). Were they to wait for those locks, no
    // device would get a new lease until the freeze ended: each could at most finish the cycle it
    // was in, DEVICES cycles in all (and most of those before the count starts). Were a result
    // for the frozen task (or the frozen device's next lease) to wait without bound, each retry of
    // it would leave one more connection waiting, until the servers' pools were all waiting too.
    expect(whileFrozen, events.join('; ')).toBeGreaterThan(DEVICES);
    // The premise of that count: work was left to lease when it began.
    expect(leftAtCount, `slots left when the count began: ${events.join('; ')}`).toBeGreaterThan(4 * DEVICES);
    expect(report.retried.length, 'requests retried').toBeGreaterThan(0);
    // No request failed for good: every 5xx and dropped connection was retried until it succeeded.
    expect(report.failed).toEqual([]);
    // Nobody was told "no work" while plenty was free: servers lease side by side (SKIP LOCKED), not
    // one after the other. Free: not yet handed out, less the leases a crash may have left unanswered
    // (one per retried work request) and those the devices hold.
    const orphans = report.retried.filter((r) => r.path === API.work).length;
    const starved = report.emptyAt.filter((leases) => leases < SLOTS - orphans - 2 * DEVICES);
    expect(starved, `work requests answered with no lease while work was free (${SLOTS} slots)`).toEqual([]);

    // Every task done, its canonical result the honest output, with exactly the results its
    // redundancy asks for (a lease is never handed out twice at once), each valid.
    const perDevice = new Map<string, { valid: number; credit: number }>();
    for (const batchId of batches) {
      const results = (await (await fetch(`${live[2]}${API.batchResults(batchId)}`, { headers: await ownerHeaders(key) })).json()) as BatchResults;
      for (const task of results.tasks) {
        expect(task.state, task.taskId).toBe('done');
        expect(task.stdout, task.taskId).toBe(Buffer.from(honestOutput(task.taskId), 'base64').toString());
        expect(task.quorum.results.map((r) => r.validation), task.taskId).toEqual(Array(task.redundancy).fill('valid'));
        for (const r of task.quorum.results) {
          const tally = perDevice.get(r.deviceId) ?? { valid: 0, credit: 0 };
          perDevice.set(r.deviceId, { valid: tally.valid + 1, credit: tally.credit + r.credit });
        }
      }
    }
    // Credit counted once: each device is credited for exactly the results it got a yes for
    // (accepted, or a duplicate of one accepted before the answer was lost), no more, no less.
    for (const [deviceId, leases] of report.answered) {
      const credit = (await (await fetch(`${live[0]}${API.device(deviceId)}`)).json()) as DeviceCredit;
      expect(credit.results, deviceId).toEqual({ valid: leases.size, invalid: 0, pending: 0, error: 0 });
      expect(credit.validated, deviceId).toBeCloseTo(leases.size * creditFor(1000), 6);
      expect(perDevice.get(deviceId)?.valid ?? 0, deviceId).toBe(leases.size);
    }
    expect(answered(report)).toBe(SLOTS);
  }, 300_000); // on a loaded machine; it takes 20 to 40 s on a quiet one
});
