/**
 * The client's IndexedDB: one schema type, one upgrade ladder (idb's habit).
 * Every store the client keeps is declared here and nowhere else.
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import type { Lease, ResultSubmission } from '../protocol/schema.ts';

export const DB_NAME = 'dewgrid';
export const DB_VERSION = 6;

export interface StoredBlob {
  sha256: string;
  bytes: Uint8Array;
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
 * One base64 output as kept: a Blob as the worker made it (see WorkerOutcome.encoded), its bytes
 * where IndexedDB refuses Blobs (src/storage/blob-support.ts), or a string in entries older
 * versions wrote.
 */
export type StoredOutput = string | Blob | Uint8Array<ArrayBuffer>;

/** A result as kept until the server has it: a ResultSubmission with its outputs as StoredOutputs. */
export type StoredSubmission = Omit<ResultSubmission, 'stdout' | 'stderr' | 'files'> & {
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
}

/** Checkpoint files a running task settled, so a cut-off run resumes from them (docs/protocol.md). */
export interface StoredCheckpoint {
  leaseId: string;
  files: Record<string, Uint8Array>;
}

/** A module with the yield hook in it, under instrumentedKey(module hash, instrumenter version). */
export interface StoredInstrumented {
  key: string;
  bytes: Uint8Array;
  /** SHA-256 of `bytes` when they were made: checked again on every read. */
  sha256: string;
  lastUsed: number;
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
  blobs: { key: string; value: StoredBlob; indexes: { lastUsed: number } };
  /** Small values: the device's identity (StoredIdentity), the held keyset, settings, Start. */
  meta: { key: string; value: unknown };
  /** Leases taken and not yet finished (run or refused). */
  leases: { key: string; value: StoredLease; indexes: { addedAt: number } };
  /** Results not yet accepted by the server. */
  outbox: { key: string; value: OutboxEntry; indexes: { nextAttemptAt: number } };
  /** Checkpoints of held leases. */
  checkpoints: { key: string; value: StoredCheckpoint };
  /** Instrumented modules (src/storage/instrumented-cache.ts). */
  instrumented: { key: string; value: StoredInstrumented; indexes: { lastUsed: number } };
  /** Tasks completed here, until they expire (replay protection). */
  completed: { key: string; value: CompletedTask; indexes: { expiresAt: number } };
}

/** Takes a database at any older version to DB_VERSION; each step runs once, in order. */
function upgrade(db: IDBPDatabase<DewgridDB>, oldVersion: number, tx: IDBPTransaction<DewgridDB, StoreNames<DewgridDB>[], 'versionchange'>): void {
  if (oldVersion < 1) {
    const blobs = db.createObjectStore('blobs', { keyPath: 'sha256' });
    blobs.createIndex('lastUsed', 'lastUsed');
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
    db.createObjectStore('instrumented', { keyPath: 'key' }).createIndex('lastUsed', 'lastUsed');
  }
  if (oldVersion < 6) {
    db.createObjectStore('completed', { keyPath: 'taskId' }).createIndex('expiresAt', 'expiresAt');
  }
}

export function openDewgridDB(name = DB_NAME): Promise<IDBPDatabase<DewgridDB>> {
  return openDB<DewgridDB>(name, DB_VERSION, { upgrade: (db, oldVersion, _newVersion, tx) => upgrade(db, oldVersion, tx) });
}
