/**
 * Modules as they are compiled (the yield hook in, the memory capped), kept in Cache Storage by
 * (module hash, instrumenter version, memory cap): a module is rewritten once per device, not
 * once per session. Cache Storage rather than IndexedDB because it streams into
 * `WebAssembly.compileStreaming`, and engines may keep compiled code beside such an entry.
 * Chromium 156 did not here: a trace of three starts of yosys in the prepare worker shows no
 * deserialised module after a reload, only lazy compiles (docs/benchmarks.md (l)). So after a
 * reload the module is not rewritten, but it is compiled (lazily) again.
 *
 * Derived bytes, so a hit is re-checked against the SHA-256 they had when made (kept beside them):
 * hashed while the engine compiles, and the compiled module is thrown away if they differ.
 * Without Cache Storage (an insecure context) nothing is kept: modules are rewritten per session.
 */
import { sha256Hex } from '../protocol/bytes.ts';

const CACHE_NAME = 'dewgrid-modules';
/** Where entries are filed: a URL nothing serves (Cache Storage keys are requests). */
const PREFIX = '/__dewgrid/modules/';
/** Modules kept; older ones are rewritten again when needed. */
const KEEP = 16;
const HASH_HEADER = 'x-dewgrid-sha256';

export function moduleCacheKey(moduleSha256: string, instrumenterVersion: number, memoryPages: number): string {
  return `${moduleSha256}-i${instrumenterVersion}-m${memoryPages}.wasm`;
}

export class ModuleCache {
  constructor(private readonly origin: string = self.location.origin) {}

  static available(): boolean {
    return typeof caches !== 'undefined';
  }

  private url(key: string): string {
    return this.origin + PREFIX + key;
  }

  /**
   * The kept module under `key`, compiled as its bytes stream in, or null when there is none or
   * its bytes no longer match their hash (the entry is then dropped).
   */
  async compile(key: string): Promise<{ module: WebAssembly.Module; bytes: () => Promise<Uint8Array> } | null> {
    if (!ModuleCache.available()) return null;
    const cache = await caches.open(CACHE_NAME);
    const response = await cache.match(this.url(key));
    const expected = response?.headers.get(HASH_HEADER);
    if (!response || !expected) return null;
    const copy = response.clone();
    const bytes = copy.arrayBuffer().then((buffer) => new Uint8Array(buffer));
    const [compiled, actual] = await Promise.allSettled([WebAssembly.compileStreaming(response), bytes.then(sha256Hex)]);
    if (actual.status !== 'fulfilled' || actual.value !== expected || compiled.status !== 'fulfilled') {
      await cache.delete(this.url(key));
      return null;
    }
    return { module: compiled.value, bytes: () => bytes };
  }

  async has(key: string): Promise<boolean> {
    if (!ModuleCache.available()) return false;
    return (await (await caches.open(CACHE_NAME)).match(this.url(key))) !== undefined;
  }

  /** Keeps `parts` (a module's bytes in pieces) under `key`; a failure to store (quota) only means rewriting again next time. */
  async put(key: string, parts: Uint8Array[], sha256: string): Promise<void> {
    if (!ModuleCache.available()) return;
    try {
      const cache = await caches.open(CACHE_NAME);
      const body = new Blob(parts as Uint8Array<ArrayBuffer>[], { type: 'application/wasm' });
      await cache.put(this.url(key), new Response(body, { headers: { 'content-type': 'application/wasm', [HASH_HEADER]: sha256 } }));
      // Cache Storage keeps keys in insertion order: the oldest go first.
      const keys = await cache.keys();
      for (const old of keys.slice(0, Math.max(0, keys.length - KEEP))) await cache.delete(old);
    } catch {
      // storage full or unavailable: the module is still used from memory
    }
  }
}
