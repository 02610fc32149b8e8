/**
 * Content-addressed cache of verified bytes, kept under a byte budget by evicting the least
 * recently used. A hit is re-checked against its hash before it is handed out: bytes that no
 * longer match are dropped, so the caller fetches them again. Caching is an optimisation: when
 * storage is full even after eviction, the bytes are used from memory and not kept.
 */
import type { IDBPDatabase } from 'idb';
import { sha256Hex } from '../protocol/bytes.ts';
import type { DewgridDB } from './db.ts';

/** Default budget for cached modules and inputs. */
export const DEFAULT_BLOB_BUDGET_BYTES = 256 * 2 ** 20;

export class BlobCache {
  constructor(
    private readonly db: IDBPDatabase<DewgridDB>,
    private readonly budgetBytes = DEFAULT_BLOB_BUDGET_BYTES,
    private readonly warn: (message: string) => void = () => undefined,
  ) {}

  /** The bytes stored under `sha256`, or null when absent or no longer matching their hash. */
  async get(sha256: string): Promise<Uint8Array | null> {
    const entry = await this.db.get('blobs', sha256);
    if (!entry) return null;
    if ((await sha256Hex(entry.bytes)) !== sha256) {
      this.warn(`A cached file (${sha256.slice(0, 12)}…) no longer matched its hash; it was dropped and will be fetched again.`);
      await this.db.delete('blobs', sha256);
      return null;
    }
    await this.db.put('blobs', { ...entry, lastUsed: Date.now() });
    return entry.bytes;
  }

  /** Puts run one after another: each eviction must see what the previous put stored. */
  private puts: Promise<void> = Promise.resolve();

  /** Stores bytes the caller has already verified against `sha256`, evicting old entries to stay in budget. */
  put(sha256: string, bytes: Uint8Array): Promise<void> {
    const next = this.puts.then(() => this.putNow(sha256, bytes));
    this.puts = next.catch(() => undefined);
    return next;
  }

  private async putNow(sha256: string, bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.budgetBytes) return; // larger than the whole budget: use it, do not keep it
    await this.evictFor(bytes.length, sha256);
    try {
      await this.db.put('blobs', { sha256, bytes, size: bytes.length, lastUsed: Date.now() });
    } catch (error) {
      if ((error as DOMException).name !== 'QuotaExceededError') throw error;
      // The browser's quota, not ours: make room once more, then give up on caching this one.
      await this.evictFor(bytes.length * 2, sha256);
      try {
        await this.db.put('blobs', { sha256, bytes, size: bytes.length, lastUsed: Date.now() });
      } catch {
        this.warn('This device is out of storage for Dewgrid: modules are used without being kept, so they will be downloaded again next time.');
      }
    }
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.db.getKey('blobs', sha256)) !== undefined;
  }

  /** Deletes least recently used entries until `incoming` more bytes fit in the budget. */
  private async evictFor(incoming: number, keep: string): Promise<void> {
    const tx = this.db.transaction('blobs', 'readwrite');
    let total = 0;
    for (let cursor = await tx.store.openCursor(); cursor; cursor = await cursor.continue()) total += cursor.value.size;
    for (let cursor = await tx.store.index('lastUsed').openCursor(); cursor && total + incoming > this.budgetBytes; cursor = await cursor.continue()) {
      if (cursor.value.sha256 === keep) continue;
      total -= cursor.value.size;
      await cursor.delete();
    }
    await tx.done;
  }
}
