/**
 * The client's IndexedDB: one schema type, one upgrade ladder (idb's habit).
 * Every store the client keeps is declared here and nowhere else.
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import type { Lease, ResultSubmission } from '../protocol/schema.ts';

export const DB_NAME = 'dewgrid';
export const DB_VERSION = 7;

/**
 * Verified bytes. Entries written before version 7 also carry `size` and `lastUsed`, which nothing
 * reads any more: those live in `blobIndex`, so that eviction and cache hits touch no bytes.
 */
export interface StoredBlob {
  sha256: string;
  bytes: Uint8Array;
}

/** A cached blob's size and last use, kept apart from its bytes (`blobs`). */
export interface BlobIndexEntry {
  sha256: string;
  size: number;
  /** ms since epoch; the least recently used blobs are evicted first. */
  lastUsed: number;
}

/** A lease this device holds, kept so a reload or a crash does not lose the work. */
export interface StoredLease {
  leaseId: string;
  lease: Lease;
  /** When it was taken; the queue runs oldest first. */
  addedAt: number;
}

/**
 * One output as kept: its bytes in a Blob as the worker made them (WorkerOutcome.blobs), the bytes
 * themselves where IndexedDB refuses Blobs (src/storage/blob-support.ts), or, in entries older
 * versions wrote (no `encoding`), base64 text in a Blob or a string.
 */
export type StoredOutput = string | Blob | Uint8Array<ArrayBuffer>;

/** A result as kept until the server has it: a ResultSubmission with its outputs as StoredOutputs. */
export type StoredSubmission = Omit<ResultSubmission, 'stdout' | 'stderr' | 'files'> & {
  /** 'bytes': the outputs are their bytes, posted as a binary body (RESULT_BODY_TYPE); absent: base64 text, posted as JSON. */
  encoding?: 'bytes';
  stdout: StoredOutput;
  stderr: StoredOutput;
  files: { path: string; data: StoredOutput }[];
};

/** A result waiting to reach the server. Written before the first post; removed once the server has it. */
export interface OutboxEntry {
  leaseId: string;
  submission: StoredSubmission;
  attempts: number;
  /** ms since epoch; not posted again before this. */
  nextAttemptAt: number;
  /** How many of the attempts the server answered with a 5xx (absent: none). */
  serverErrors?: number;
}

/** Checkpoint files a running task settled, so a cut-off run resumes from them (docs/protocol.md). */
export interface StoredCheckpoint {
  leaseId: string;
  files: Record<string, Uint8Array>;
}

/** A task this device completed, kept until the task expires: a lease for it again is a replay. */
export interface CompletedTask {
  taskId: string;
  /** The manifest's expiresAt: past it, the task is refused as expired anyway. */
  expiresAt: number;
}

/**
 * This device's signing key pair: WebCrypto's Ed25519 with a non-extractable private key where the
 * browser has it (the key never leaves the browser's key store, not even to this page), else a
 * @noble/ed25519 secret. Its public key names the device (deviceIdOf).
 */
export type StoredIdentity =
  | { kind: 'webcrypto'; publicKey: Uint8Array; privateKey: CryptoKey }
  | { kind: 'noble'; publicKey: Uint8Array; secretKey: Uint8Array };

export interface DewgridDB extends DBSchema {
  /** Verified module and input bytes, by SHA-256. Only bytes that matched a signed hash go in. */
  blobs: { key: string; value: StoredBlob };
  /** Each entry of `blobs`: its size and last use, for eviction (src/storage/blob-cache.ts). */
  blobIndex: { key: string; value: BlobIndexEntry; indexes: { lastUsed: number } };
  /** Small values: the device's identity (StoredIdentity), the held keyset, settings, Start. */
  meta: { key: string; value: unknown };
  /** Leases taken and not yet finished (run or refused). */
  leases: { key: string; value: StoredLease; indexes: { addedAt: number } };
  /** Results not yet accepted by the server. */
  outbox: { key: string; value: OutboxEntry; indexes: { nextAttemptAt: number } };
  /** Checkpoints of held leases. */
  checkpoints: { key: string; value: StoredCheckpoint };
  /** Tasks completed here, until they expire (replay protection). */
  completed: { key: string; value: CompletedTask; indexes: { expiresAt: number } };
}

/** Takes a database at any older version to DB_VERSION; each step runs once, in order. */
function upgrade(db: IDBPDatabase<DewgridDB>, oldVersion: number, tx: IDBPTransaction<DewgridDB, StoreNames<DewgridDB>[], 'versionchange'>): void {
  if (oldVersion < 1) {
    const blobs = db.createObjectStore('blobs', { keyPath: 'sha256' });
    (blobs as unknown as IDBObjectStore).createIndex('lastUsed', 'lastUsed'); // gone since version 7
    db.createObjectStore('meta');
  }
  if (oldVersion < 2) {
    db.createObjectStore('leases', { keyPath: 'leaseId' }).createIndex('addedAt', 'addedAt');
    db.createObjectStore('outbox', { keyPath: 'leaseId' });
  }
  if (oldVersion < 3) {
    db.createObjectStore('checkpoints', { keyPath: 'leaseId' });
  }
  if (oldVersion < 4) {
    // When the next result is due, without reading every waiting result's bytes.
    tx.objectStore('outbox').createIndex('nextAttemptAt', 'nextAttemptAt');
  }
  if (oldVersion < 5) {
    (db as unknown as IDBDatabase).createObjectStore('instrumented', { keyPath: 'key' }).createIndex('lastUsed', 'lastUsed'); // gone since version 7
  }
  if (oldVersion < 6) {
    db.createObjectStore('completed', { keyPath: 'taskId' }).createIndex('expiresAt', 'expiresAt');
  }
  if (oldVersion < 7) {
    // Sizes and last use apart from the bytes: eviction walked every entry's bytes to sum sizes,
    // and every hit wrote the bytes back to store its time (issue #16: 10 GB deserialized on the
    // main thread for one 30 MB program). Each old entry is read once, here, to index it.
    const index = db.createObjectStore('blobIndex', { keyPath: 'sha256' });
    index.createIndex('lastUsed', 'lastUsed');
    const blobs = tx.objectStore('blobs');
    (blobs as unknown as IDBObjectStore).deleteIndex('lastUsed');
    void blobs.openCursor().then(async function indexed(cursor): Promise<void> {
      if (!cursor) return;
      const old = cursor.value as StoredBlob & Partial<BlobIndexEntry>;
      await index.put({ sha256: old.sha256, size: old.bytes.length, lastUsed: old.lastUsed ?? 0 });
      return indexed(await cursor.continue());
    });
    // Modules with the yield hook now live in Cache Storage, where the engine can keep their
    // compiled code too (src/storage/module-cache.ts); these derived bytes are made again.
    (db as unknown as IDBDatabase).deleteObjectStore('instrumented');
  }
}

export function openDewgridDB(name = DB_NAME): Promise<IDBPDatabase<DewgridDB>> {
  return openDB<DewgridDB>(name, DB_VERSION, { upgrade: (db, oldVersion, _newVersion, tx) => upgrade(db, oldVersion, tx) });
}
