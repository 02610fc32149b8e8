/**
 * Content-addressed cache of verified bytes. A hit is re-checked against its hash before it
 * is handed out: bytes that no longer match are dropped, so the caller fetches them again.
 */
import type { IDBPDatabase } from 'idb';
import { sha256Hex } from '../protocol/bytes.ts';
import type { DewgridDB } from './db.ts';

export class BlobCache {
  constructor(private readonly db: IDBPDatabase<DewgridDB>) {}

  /** The bytes stored under `sha256`, or null when absent or no longer matching their hash. */
  async get(sha256: string): Promise<Uint8Array | null> {
    const entry = await this.db.get('blobs', sha256);
    if (!entry) return null;
    if ((await sha256Hex(entry.bytes)) !== sha256) {
      await this.db.delete('blobs', sha256);
      return null;
    }
    await this.db.put('blobs', { ...entry, lastUsed: Date.now() });
    return entry.bytes;
  }

  /** Stores bytes the caller has already verified against `sha256`. */
  async put(sha256: string, bytes: Uint8Array): Promise<void> {
    await this.db.put('blobs', { sha256, bytes, size: bytes.length, lastUsed: Date.now() });
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.db.getKey('blobs', sha256)) !== undefined;
  }
}
