/**
 * The task server's store: one interface (Store), two engines. SQLite in the data folder is the
 * embedded default; PostgreSQL is used when a database URL is given (DEWGRID_DATABASE_URL), so
 * that several servers can share one database (docs/deploy.md).
 */
import { PostgresEngine } from './postgres.ts';
import { SqliteEngine } from './sqlite.ts';
import { Store, type StoreOptions } from './store.ts';

export * from './store.ts';
export { StoreError } from './errors.ts';
export type { EngineName } from './engine.ts';

export interface OpenStoreOptions extends StoreOptions {
  /** The data folder: SQLite's file and blobs live here (unused with a database URL). */
  dataDir: string;
  /** `postgres://...`: keep everything in that PostgreSQL database instead. */
  databaseUrl?: string;
  /** PostgreSQL connections this process holds at most; default 10. */
  poolSize?: number;
  /** The clock, ms since epoch; tests move it. Default: Date.now for SQLite, the database's clock for PostgreSQL. */
  now?: () => number;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const url = options.databaseUrl;
  if (url !== undefined && url !== '') {
    if (!/^postgres(ql)?:\/\//.test(url)) throw new Error(`the database URL must start with postgres:// (got "${url.split('@').pop()}")`);
    return new Store(await PostgresEngine.open({ url, poolSize: options.poolSize, now: options.now }), options);
  }
  return new Store(new SqliteEngine({ dataDir: options.dataDir, now: options.now }), options);
}
