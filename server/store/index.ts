/**
 * The task server's store: one interface (Store), two engines. SQLite in the data folder is the
 * embedded default; PostgreSQL is used when a database URL is given (DEWGRID_DATABASE_URL), so
 * that several servers can share one database (docs/deploy.md).
 */
import { SqliteEngine } from './sqlite.ts';
import { Store, type StoreOptions } from './store.ts';

export * from './store.ts';
export { StoreError } from './errors.ts';
export type { EngineName } from './engine.ts';

export interface OpenStoreOptions extends StoreOptions {
  /** The data folder: SQLite's file and blobs live here. */
  dataDir: string;
  /** The clock, ms since epoch; tests move it. Default: the engine's (Date.now for SQLite). */
  now?: () => number;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  return new Store(new SqliteEngine({ dataDir: options.dataDir, now: options.now }), options);
}
