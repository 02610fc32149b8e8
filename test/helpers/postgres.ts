/**
 * A throw-away PostgreSQL cluster for tests and benchmarks: `initdb` in a temporary folder, the
 * server on a free loopback port (no TCP outside loopback; its socket in that folder), stopped and
 * deleted by stop(), when this process exits or is told to end (SIGINT, SIGTERM, SIGHUP), or by
 * the next run if this process was killed outright (SIGKILL). Run
 * as root, the cluster's commands run as the `postgres` user (PostgreSQL refuses to run as root).
 * Binaries: PG_BIN, else the newest /usr/lib/postgresql/N/bin (Debian's `postgresql` package).
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onProcessEnd } from './cleanup.ts';

const PREFIX = 'dewgrid-pg-';
/** The cluster's superuser, trusted on loopback: a test cluster has no password. */
export const PG_USER = 'dewgrid';

export interface PostgresCluster {
  /** postgres://dewgrid@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** A fresh, empty database; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server now, as a crash would ('immediate') or cleanly ('fast'), and starts it again on the same port. */
  restart(mode?: 'immediate' | 'fast'): Promise<void>;
  /** Stops the server and deletes its folder. Safe to call twice. */
  stop(): void;
  /** The server's processes now: the postmaster and every backend and helper it started (for CPU accounting). */
  pids(): number[];
}

/** Settings for a cluster whose data need not outlive the machine: no fsync. Commits still wait for their WAL write (crash-safe for the server process). */
export const TEST_SETTINGS: Record<string, string> = {
  fsync: 'off',
  full_page_writes: 'off',
  max_connections: '200',
  shared_buffers: '64MB',
};

function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL is not installed: the store tests need it (Debian: apt-get install postgresql; elsewhere set PG_BIN to the folder holding initdb and pg_ctl)');
  }
  return join(root, versions[0]!, 'bin');
}

const isRoot = () => process.getuid?.() === 0;

/** Runs a cluster command, as `postgres` when we are root; throws with its output on failure. */
function run(command: string, args: string[]): string {
  const [file, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const done = spawnSync(file, argv, { encoding: 'utf8', timeout: 120_000 });
  if (done.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${done.status ?? done.signal}): ${done.stderr || done.stdout}`);
  return done.stdout;
}

/** run(), without blocking the event loop (a test's simulated clients go on meanwhile). */
async function runAsync(command: string, args: string[]): Promise<void> {
  const [file, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  await promisify(execFile)(file, argv, { timeout: 120_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Stops and deletes clusters left behind by processes that no longer run (a test run killed outright). */
function sweepOrphans(bin: string): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner'), 'utf8'));
      process.kill(owner, 0);
      continue; // its owner still runs
    } catch (error) {
      if (owner && (error as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    stopServer(bin, join(dir, 'data'));
    rmSync(dir, { recursive: true, force: true });
  }
}

function stopServer(bin: string, data: string): void {
  if (!existsSync(join(data, 'postmaster.pid'))) return;
  try {
    run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
  } catch {
    // Not running after all (a stale pid file), or already stopping.
  }
}

export async function startPostgres(settings: Record<string, string> = TEST_SETTINGS): Promise<PostgresCluster> {
  const bin = binDir();
  sweepOrphans(bin);
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  const data = join(dir, 'data');
  if (isRoot()) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (ids.status !== 0) throw new Error('there is no `postgres` user to run PostgreSQL as (Debian\'s postgresql package makes it)');
    chownSync(dir, Number(ids.stdout), Number(gids.stdout));
  }
  const stop = onProcessEnd(() => {
    stopServer(bin, data);
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    run(join(bin, 'initdb'), ['-D', data, '-U', PG_USER, '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    const options = [`-c listen_addresses=127.0.0.1`, `-k ${dir}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)];
    let port = 0;
    const startArgs = () => ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', `-p ${port} ${options.join(' ')}`, 'start'];
    const start = () => run(join(bin, 'pg_ctl'), startArgs());
    // The port is free when chosen; another process may take it before the server binds: try another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        start();
        break;
      } catch (error) {
        if (attempt === 3) throw new Error(`${(error as Error).message}\n${readFileSync(join(dir, 'log'), 'utf8').slice(-2000)}`);
      }
    }
    const url = `postgres://${PG_USER}@127.0.0.1:${port}/postgres`;
    return {
      url,
      port,
      async createDatabase(name: string) {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
        run(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', PG_USER, '-d', 'postgres', '-q', '-c', `CREATE DATABASE ${name}`]);
        return `postgres://${PG_USER}@127.0.0.1:${port}/${name}`;
      },
      async restart(mode = 'immediate') {
        await runAsync(join(bin, 'pg_ctl'), ['-D', data, '-m', mode, '-w', 'stop']);
        await runAsync(join(bin, 'pg_ctl'), startArgs());
      },
      stop,
      pids() {
        const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
        const children = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
          try {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after its ')'.
            return Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === postmaster;
          } catch {
            return false; // gone meanwhile
          }
        });
        return [postmaster, ...children.map(Number)];
      },
    };
  } catch (error) {
    stop();
    throw error;
  }
}
