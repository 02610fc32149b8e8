/**
 * The store engine a test file runs against: the `node` test project runs the server's tests on
 * SQLite, the `postgres` project runs the same files again on PostgreSQL (vitest.config.ts sets
 * DEWGRID_TEST_ENGINE), so one test covers both engines.
 */
import { inject } from 'vitest';
import pg from 'pg';
import type { EngineName } from '../../server/store/index.ts';
import { TEMPLATE_DATABASE } from '../postgres-setup.ts';

export const TEST_ENGINE: EngineName = process.env.DEWGRID_TEST_ENGINE === 'postgres' ? 'postgres' : 'sqlite';

let admin: pg.Pool | null = null;
let made = 0;

/**
 * A new database in the run's PostgreSQL cluster (test/postgres-setup.ts), with the store's
 * tables and nothing in them (a copy of the migrated template), or without any (`empty`); returns
 * its URL.
 */
export async function freshDatabase(options: { empty?: boolean } = {}): Promise<string> {
  const url = inject('postgresUrl');
  if (!url) throw new Error('no PostgreSQL cluster for this test: run it in the `postgres` project (npx vitest run --project postgres)');
  admin ??= new pg.Pool({ connectionString: url, max: 1, idleTimeoutMillis: 1000, allowExitOnIdle: true });
  const name = `t${process.pid}_${++made}_${Date.now().toString(36)}`;
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${options.empty ? 'template1' : TEMPLATE_DATABASE}`);
  return url.replace(/\/[^/]*$/, `/${name}`);
}

/**
 * What createServer (or openStore) needs besides a fresh data folder for an empty store on this
 * file's engine: nothing on SQLite (the data folder holds it), a new database on PostgreSQL.
 */
export async function freshStore(options: { empty?: boolean } = {}): Promise<{ databaseUrl?: string }> {
  return TEST_ENGINE === 'postgres' ? { databaseUrl: await freshDatabase(options) } : {};
}
