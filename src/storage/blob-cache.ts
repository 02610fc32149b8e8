/**
 * Content-addressed cache of verified bytes, kept under a byte budget by evicting the least
 * recently used. A hit is re-checked against its hash before it is handed out: bytes that no
 * longer match are dropped, so the caller fetches them again. Caching is an optimisation: when
 * storage is full even after eviction, the bytes are used from memory and not kept.
 *
 * Costs scale with the bytes a call touches, not with the entries kept: sizes and last-use times
 * live in `blobIndex`, apart from the bytes, so eviction reads no bytes and a hit writes only its
 * index entry. (Before, every put walked every entry's bytes to sum their sizes and every hit
 * wrote its bytes back: one cold prepare of a 30 MB program with 318 inputs deserialized 10 GB.)
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
      await this.delete(sha256);
      return null;
    }
    this.touch(sha256, entry.bytes.length);
    return entry.bytes;
  }

  /**
   * The bytes of each hash that is stored and still matches it, read in one transaction (a task
   * may have hundreds of inputs: one transaction each cost more than reading them) and hashed in
   * parallel. Those no longer matching are dropped, as in get().
   */
  async getMany(hashes: string[]): Promise<Map<string, Uint8Array>> {
    const found = new Map<string, Uint8Array>();
    if (hashes.length === 0) return found;
    const tx = this.db.transaction('blobs', 'readonly');
    const entries = await Promise.all(hashes.map((sha256) => tx.store.get(sha256)));
    await tx.done;
    await Promise.all(entries.map(async (entry, i) => {
      if (!entry) return;
      const sha256 = hashes[i]!;
      if ((await sha256Hex(entry.bytes)) !== sha256) {
        this.warn(`A cached file (${sha256.slice(0, 12)}…) no longer matched its hash; it was dropped and will be fetched again.`);
        await this.delete(sha256);
        return;
      }
      this.touch(sha256, entry.bytes.length);
      found.set(sha256, entry.bytes);
    }));
    return found;
  }

  /** Hits not yet written to the index: written together, in one transaction (a task may read hundreds of inputs). */
  private touched = new Map<string, number>();

  private touch(sha256: string, size: number): void {
    if (this.touched.size === 0) setTimeout(() => void this.writeTouches(), 0);
    this.touched.set(sha256, size);
  }

  private async writeTouches(): Promise<void> {
    const touched = this.touched;
    this.touched = new Map();
    const tx = this.db.transaction('blobIndex', 'readwrite');
    const now = Date.now();
    // Only entries still there: one evicted meanwhile stays gone.
    await Promise.all([...[...touched].map(async ([sha256, size]) => {
      if ((await tx.store.getKey(sha256)) !== undefined) await tx.store.put({ sha256, size, lastUsed: now });
    }), tx.done]).catch(() => undefined); // a lost touch only makes an entry look older
  }

  /** Puts run one batch after another: each eviction must see what the previous batch stored. */
  private puts: Promise<void> = Promise.resolve();
  /** The batch that will be stored next: puts made meanwhile join it (one transaction, one eviction). */
  private batch: { sha256: string; bytes: Uint8Array }[] | null = null;
  private batchStored: Promise<void> = Promise.resolve();

  /** Stores bytes the caller has already verified against `sha256`, evicting old entries to stay in budget. */
  put(sha256: string, bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.budgetBytes) return Promise.resolve(); // larger than the whole budget: use it, do not keep it
    if (!this.batch) {
      const batch: { sha256: string; bytes: Uint8Array }[] = [];
      this.batch = batch;
      this.batchStored = this.puts.then(() => {
        if (this.batch === batch) this.batch = null;
        return this.putNow(batch);
      });
      this.puts = this.batchStored.catch(() => undefined);
    }
    this.batch.push({ sha256, bytes });
    return this.batchStored;
  }

  private async putNow(batch: { sha256: string; bytes: Uint8Array }[]): Promise<void> {
    const unique = [...new Map(batch.map((b) => [b.sha256, b])).values()];
    const incoming = unique.reduce((sum, b) => sum + b.bytes.length, 0);
    const keep = new Set(unique.map((b) => b.sha256));
    await this.evictFor(incoming, keep);
    try {
      await this.store(unique);
    } catch (error) {
      if ((error as DOMException).name !== 'QuotaExceededError') throw error;
      // The browser's quota, not ours: make room once more, then give up on caching these.
      await this.evictFor(incoming * 2, keep);
      try {
        await this.store(unique);
      } catch {
        this.warn('This device is out of storage for Dewgrid: modules are used without being kept, so they will be downloaded again next time.');
      }
    }
  }

  /** The bytes and their index entries, in one transaction: neither is ever there without the other. */
  private async store(entries: { sha256: string; bytes: Uint8Array }[]): Promise<void> {
    const tx = this.db.transaction(['blobs', 'blobIndex'], 'readwrite');
    const now = Date.now();
    await Promise.all([
      ...entries.flatMap(({ sha256, bytes }) => [tx.objectStore('blobs').put({ sha256, bytes }), tx.objectStore('blobIndex').put({ sha256, size: bytes.length, lastUsed: now })]),
      tx.done,
    ]);
  }

  private async delete(sha256: string): Promise<void> {
    const tx = this.db.transaction(['blobs', 'blobIndex'], 'readwrite');
    await Promise.all([tx.objectStore('blobs').delete(sha256), tx.objectStore('blobIndex').delete(sha256), tx.done]);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.db.getKey('blobIndex', sha256)) !== undefined;
  }

  /** Deletes least recently used entries until `incoming` more bytes fit in the budget; reads index entries only. */
  private async evictFor(incoming: number, keep: Set<string>): Promise<void> {
    const tx = this.db.transaction(['blobs', 'blobIndex'], 'readwrite');
    const index = tx.objectStore('blobIndex');
    const entries = await index.index('lastUsed').getAll(); // oldest first; a few dozen bytes each
    let total = entries.reduce((sum, entry) => sum + entry.size, 0);
    for (const entry of entries) {
      if (total + incoming <= this.budgetBytes) break;
      if (keep.has(entry.sha256)) continue;
      total -= entry.size;
      void tx.objectStore('blobs').delete(entry.sha256);
      void index.delete(entry.sha256);
    }
    await tx.done;
  }
}
