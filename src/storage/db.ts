/**
 * The client's IndexedDB: one schema type, one upgrade ladder (idb's habit).
 * Every store the client keeps is declared here and nowhere else.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

export const DB_NAME = 'dewgrid';
export const DB_VERSION = 1;

export interface StoredBlob {
  sha256: string;
  bytes: Uint8Array;
  size: number;
  /** ms since epoch; the least recently used blobs are evicted first. */
  lastUsed: number;
}

export interface DewgridDB extends DBSchema {
  /** Verified module and input bytes, by SHA-256. Only bytes that matched a signed hash go in. */
  blobs: { key: string; value: StoredBlob; indexes: { lastUsed: number } };
  /** Small settings and identity values (device id, limits). */
  meta: { key: string; value: unknown };
}

/** Takes a database at any older version to DB_VERSION; each step runs once, in order. */
function upgrade(db: IDBPDatabase<DewgridDB>, oldVersion: number): void {
  if (oldVersion < 1) {
    const blobs = db.createObjectStore('blobs', { keyPath: 'sha256' });
    blobs.createIndex('lastUsed', 'lastUsed');
    db.createObjectStore('meta');
  }
}

export function openDewgridDB(name = DB_NAME): Promise<IDBPDatabase<DewgridDB>> {
  return openDB<DewgridDB>(name, DB_VERSION, { upgrade: (db, oldVersion) => upgrade(db, oldVersion) });
}
