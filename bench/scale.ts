/**
 * (n) How the task server scales: lease + result cycles per second for one, two and three server
 * processes on one PostgreSQL, and for one on SQLite, in one run, with the CPU each part spent per
 * cycle (read from /proc for the server processes and every PostgreSQL process, and from the
 * bench process for the simulated devices). The CPU per cycle is what docs/scaling.md sizes a
 * deployment from; which part spends most is the bottleneck.
 *
 * DEWGRID_BENCH_BASELINE=/path/to/another/checkout also runs that tree's server on SQLite,
 * alternating with this one's (to compare a change against the tree before it, in one run), for
 * DEWGRID_BENCH_ROUNDS rounds (default 3; on a shared machine more rounds steady the medians).
 * DEWGRID_BENCH_PG_SETTINGS="name=value ..." adds PostgreSQL settings (default: its own, durable).
 * DEWGRID_BENCH_SERVER_FLAGS="--cpu-prof --cpu-prof-dir=DIR" passes flags to the server processes
 * (a profile of each, to see where a server's time goes: bench/profile.ts sums one up).
 * DEWGRID_BENCH_ONLY=sqlite|postgres runs one engine; DEWGRID_BENCH_SERVERS=1,2,3 the counts of servers;
 * DEWGRID_BENCH_CYCLES the cycles per setup (6000).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeKey } from '../test/helpers/server.ts';
import { publishTasks, runFleet } from '../test/helpers/fleet.ts';
import { spawnServer, type ServerProcess } from '../test/helpers/server-process.ts';
import { startPostgres } from '../test/helpers/postgres.ts';
import { fmt, median, quantile } from './stats.ts';
import pg from 'pg';

export interface ScaleRow {
  label: string;
  engine: 'sqlite' | 'postgres';
  servers: number;
  cycles: number;
  cyclesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU ms per cycle: the server processes, the database's processes, the simulated devices. */
  cpu: { servers: number; database: number; devices: number };
  /** PostgreSQL only: bytes the database grew by per published task, and per cycle (its lease and result). */
  bytes?: { task: number; cycle: number };
}

const TICK_MS = 10; // /proc times are in clock ticks of 1/100 s (USER_HZ)

/** CPU ms the processes have used so far (utime + stime; processes gone meanwhile count 0). */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks * TICK_MS;
}

/** The database's size on disk, bytes (tables, indexes, TOAST), after a checkpoint-free VACUUM so dead rows do not count. */
async function databaseBytes(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('VACUUM');
    return Number((await client.query('SELECT pg_database_size(current_database()) AS n')).rows[0].n);
  } finally {
    await client.end();
  }
}

interface Setup {
  label: string;
  engine: ScaleRow['engine'];
  env: NodeJS.ProcessEnv;
  servers: number;
  tree?: string;
  databasePids?: () => number[];
}

async function measure(setup: Setup, clients: number, cycles: number): Promise<ScaleRow> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-scale-'));
  const key = await writeKey(dataDir);
  const servers: ServerProcess[] = [];
  try {
    const flags = process.env.DEWGRID_BENCH_SERVER_FLAGS?.split(' ').filter(Boolean);
    for (let i = 0; i < setup.servers; i++) servers.push(await spawnServer({ DEWGRID_DATA: dataDir, ...setup.env }, { tree: setup.tree, flags }));
    const url = setup.env.DEWGRID_DATABASE_URL;
    const empty = url ? await databaseBytes(url) : 0;
    await publishTasks(servers[0]!.url, key, { prefix: 'scale', count: cycles });
    const published = url ? await databaseBytes(url) : 0;
    const serverPids = servers.map((s) => s.pid);
    const databasePids = setup.databasePids?.() ?? [];
    const before = { servers: cpuMs(serverPids), database: cpuMs(databasePids), devices: process.cpuUsage() };
    const run = await runFleet({ servers: () => servers.map((s) => s.url), devices: clients, cycles });
    const devices = process.cpuUsage(before.devices);
    const per = (ms: number) => ms / run.cycles;
    const bytes = url ? { task: (published - empty) / cycles, cycle: ((await databaseBytes(url)) - published) / run.cycles } : undefined;
    return {
      bytes,
      label: setup.label,
      engine: setup.engine,
      servers: setup.servers,
      cycles: run.cycles,
      cyclesPerSecond: run.cycles / run.seconds,
      p50Ms: quantile(run.latencies, 0.5),
      p99Ms: quantile(run.latencies, 0.99),
      cpu: {
        servers: per(cpuMs(serverPids) - before.servers),
        database: per(cpuMs(setup.databasePids?.() ?? []) - before.database),
        devices: per((devices.user + devices.system) / 1000),
      },
    };
  } finally {
    await Promise.all(servers.map((s) => s.kill('SIGTERM')));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Measures every setup, telling `onRow` of each as it is done (a long run is not lost to an interruption). */
export async function benchScale(onRow: (row: ScaleRow) => void = () => undefined, clients = 32, cycles = Number(process.env.DEWGRID_BENCH_CYCLES ?? 6000)): Promise<ScaleRow[]> {
  const baseline = process.env.DEWGRID_BENCH_BASELINE;
  const rows: ScaleRow[] = [];
  // SQLite: this tree (and the baseline tree, alternating, `rounds` times each: the medians are reported).
  const sqlite: Setup[] = [{ label: 'SQLite, 1 server', engine: 'sqlite', env: {}, servers: 1 }];
  if (baseline) sqlite.push({ label: `SQLite, 1 server (${baseline})`, engine: 'sqlite', env: {}, servers: 1, tree: baseline });
  const only = process.env.DEWGRID_BENCH_ONLY;
  const rounds = baseline ? Number(process.env.DEWGRID_BENCH_ROUNDS ?? 3) : 1;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`DEWGRID_BENCH_ROUNDS must be a whole number of rounds, at least 1 (got "${process.env.DEWGRID_BENCH_ROUNDS}")`);
  const runs = new Map<string, ScaleRow[]>();
  for (let round = 0; only !== 'postgres' && round < rounds; round++) {
    for (const setup of sqlite) {
      const row = await measure(setup, clients, cycles);
      if (baseline) console.log(`    (round ${round + 1}) ${row.label}: ${fmt(row.cyclesPerSecond, 0)} cycles/s, server CPU ${fmt(row.cpu.servers, 2)} ms/cycle`);
      runs.set(setup.label, [...(runs.get(setup.label) ?? []), row]);
    }
  }
  for (const [, measured] of runs) {
    const middle = [...measured].sort((a, b) => a.cyclesPerSecond - b.cyclesPerSecond)[Math.floor((measured.length - 1) / 2)]!;
    const cpu = { ...middle.cpu, servers: median(measured.map((r) => r.cpu.servers)), devices: median(measured.map((r) => r.cpu.devices)) };
    rows.push({ ...middle, cyclesPerSecond: median(measured.map((r) => r.cyclesPerSecond)), cpu });
    onRow(rows.at(-1)!);
  }

  if (only === 'sqlite') return rows;
  const settings = Object.fromEntries((process.env.DEWGRID_BENCH_PG_SETTINGS ?? '').split(' ').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  const cluster = await startPostgres({ max_connections: '200', shared_buffers: '256MB', ...settings });
  try {
    for (const n of (process.env.DEWGRID_BENCH_SERVERS ?? '1,2,3').split(',').map(Number)) {
      const url = await cluster.createDatabase(`scale_${n}`);
      rows.push(await measure({ label: `PostgreSQL, ${n} server${n > 1 ? 's' : ''}`, engine: 'postgres', env: { DEWGRID_DATABASE_URL: url }, servers: n, databasePids: () => cluster.pids() }, clients, cycles));
      onRow(rows.at(-1)!);
    }
  } finally {
    cluster.stop();
  }
  return rows;
}

/** Prints a row as it comes; the first one printed is the reference the others are compared with. */
export function scalePrinter(): (row: ScaleRow) => void {
  let reference: ScaleRow | null = null;
  return (r) => {
    if (!reference) {
      reference = r;
      console.log(`\n(n) Scaling: lease + result cycles, ${r.cycles} per setup, 32 simulated devices; CPU ms per cycle by part`);
    }
    console.log(
      `    ${r.label.padEnd(28)} ${fmt(r.cyclesPerSecond, 0).padStart(6)} cycles/s (${fmt(r.cyclesPerSecond / reference.cyclesPerSecond, 2)}x ${reference.label})` +
        `  p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms` +
        `  CPU/cycle: servers ${fmt(r.cpu.servers, 2)} ms, database ${fmt(r.cpu.database, 2)} ms, devices ${fmt(r.cpu.devices, 2)} ms` +
        (r.bytes ? `  database bytes: ${fmt(r.bytes.task, 0)}/task, ${fmt(r.bytes.cycle, 0)}/cycle` : ''),
    );
  };
}
