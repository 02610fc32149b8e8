/**
 * Modules with the yield hook in them (worker/instrument.ts), by (module hash, instrumenter
 * version): a module is rewritten once per device, not once per session. Derived bytes, so a hit
 * is re-checked against the hash they had when made, and only the most recently used few are kept.
 */
import type { IDBPDatabase } from 'idb';
import { sha256Hex } from '../protocol/bytes.ts';
import type { DewgridDB } from './db.ts';

/** Instrumented modules kept; older ones are rewritten again when needed. */
const KEEP = 16;

export function instrumentedKey(moduleSha256: string, version: number): string {
  return `${moduleSha256}:v${version}`;
}

export class InstrumentedCache {
  constructor(private readonly db: IDBPDatabase<DewgridDB>) {}

  async get(key: string): Promise<Uint8Array | null> {
    const entry = await this.db.get('instrumented', key);
    if (!entry) return null;
    if ((await sha256Hex(entry.bytes)) !== entry.sha256) {
      await this.db.delete('instrumented', key);
      return null;
    }
    await this.db.put('instrumented', { ...entry, lastUsed: Date.now() });
    return entry.bytes;
  }

  /** Keeps the bytes; a failure to store (quota) only means rewriting them again next time. */
  async put(key: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.db.put('instrumented', { key, bytes, sha256: await sha256Hex(bytes), lastUsed: Date.now() });
      const keys = await this.db.getAllKeysFromIndex('instrumented', 'lastUsed');
      for (const old of keys.slice(0, Math.max(0, keys.length - KEEP))) await this.db.delete('instrumented', old);
    } catch {
      // storage full or unavailable: the module is still used from memory
    }
  }
}
