/**
 * Modules as they are compiled (the yield hook in, the memory capped), kept in Cache Storage by
 * (module hash, instrumenter version, memory cap): a module is rewritten once per device, not
 * once per session. Cache Storage rather than IndexedDB because it streams into
 * `WebAssembly.compileStreaming`, and Chromium keeps compiled code beside such an entry, but only
 * for a Response that `fetch()` returned: a Response from `cache.match()` has no code cache
 * (Blink gives only fetched `application/wasm` responses a cached-metadata handler; measured in
 * bench/wasm-code-cache.ts: never a hit that way, across browser sessions or not). So a kept
 * module is fetched from its URL, which the service worker answers from this cache
 * (src/sw/sw.ts), and Chromium writes the module's optimised code beside the entry once enough of
 * it is optimised (1 MB of it at once with V8's defaults), and a later session deserialises it
 * instead of decoding and validating every function again. Where no service worker answers (the
 * first visit, a reload that bypasses it) the entry is read from the cache directly, and so it is
 * in engines that keep no compiled code for it (`keepsCompiledCode`): Firefox 153 and WebKitGTK
 * took 0.1-0.3 s longer to start a 20-30 MB module through the service worker than from
 * `cache.match()` (docs/benchmarks.md (l), 2026-12-03).
 *
 * Derived bytes, so a hit is re-checked against the SHA-256 they had when made (kept beside them):
 * hashed while the engine compiles, and the compiled module is thrown away if they differ. The
 * check reads the entry the service worker answers from (only this origin's code writes either).
 * Without Cache Storage (an insecure context) nothing is kept: modules are rewritten per session.
 */
import { sha256Hex } from '../protocol/bytes.ts';

export const MODULE_CACHE_NAME = 'dewgrid-modules';
/** Where entries are filed (Cache Storage keys are requests): only the service worker serves these URLs, from this cache. */
export const MODULE_URL_PREFIX = '/__dewgrid/modules/';
/** Modules kept; older ones are rewritten again when needed. */
const KEEP = 16;
const HASH_HEADER = 'x-dewgrid-sha256';

export function moduleCacheKey(moduleSha256: string, instrumenterVersion: number, memoryPages: number): string {
  return `${moduleSha256}-i${instrumenterVersion}-m${memoryPages}.wasm`;
}

/**
 * Whether this engine keeps compiled code for a module fetched through the service worker
 * (Blink's, above). No feature test tells; User-Agent Client Hints (`navigator.userAgentData`,
 * in pages and workers) are Blink's alone, so their presence stands for it. An engine that gains
 * them without the code cache only takes the slower way.
 */
export function keepsCompiledCode(): boolean {
  return typeof navigator !== 'undefined' && 'userAgentData' in navigator;
}

export class ModuleCache {
  constructor(private readonly origin: string = self.location.origin) {}

  static available(): boolean {
    return typeof caches !== 'undefined';
  }

  private url(key: string): string {
    return this.origin + MODULE_URL_PREFIX + key;
  }

  /**
   * The kept module under `key`, compiled as its bytes stream in, or null when there is none or
   * its bytes no longer match their hash (the entry is then dropped).
   */
  async compile(key: string): Promise<{ module: WebAssembly.Module; bytes: () => Promise<Uint8Array> } | null> {
    if (!ModuleCache.available()) return null;
    const cache = await caches.open(MODULE_CACHE_NAME);
    const kept = await cache.match(this.url(key));
    const expected = kept?.headers.get(HASH_HEADER);
    if (!kept || !expected) return null;
    const served = keepsCompiledCode() ? await this.fromServiceWorker(key, expected) : null;
    // The check reads the entry straight from the cache while the service worker's answer goes
    // whole to the compiler: no clone of one Response, teed chunk by chunk in JavaScript (yosys's
    // 33 MB arrived for hashing 0.1-0.3 s later that way, and the start waits for the check). As
    // a Blob, read whole: 98-117 ms for yosys's entry in a worker, against 136-190 ms for the
    // Response's arrayBuffer() (its body streamed in chunks).
    const response = served ?? kept.clone();
    const bytes = kept.blob().then((blob) => blob.arrayBuffer()).then((buffer) => new Uint8Array(buffer));
    const [compiled, actual] = await Promise.allSettled([WebAssembly.compileStreaming(response), bytes.then(sha256Hex)]);
    if (actual.status !== 'fulfilled' || actual.value !== expected || compiled.status !== 'fulfilled') {
      await cache.delete(this.url(key));
      return null;
    }
    return { module: compiled.value, bytes: () => bytes };
  }

  /**
   * The kept entry as the service worker answers `fetch()` for it (the way Chromium keeps its
   * compiled code), or null when no service worker answered with it: then the request reached the
   * server, which has no such URL, and the entry read from the cache is used instead.
   */
  private async fromServiceWorker(key: string, expected: string): Promise<Response | null> {
    try {
      const response = await fetch(this.url(key));
      if (response.ok && response.headers.get(HASH_HEADER) === expected) return response;
      void response.body?.cancel();
    } catch {
      // offline and no service worker: the cache has it
    }
    return null;
  }

  async has(key: string): Promise<boolean> {
    if (!ModuleCache.available()) return false;
    return (await (await caches.open(MODULE_CACHE_NAME)).match(this.url(key))) !== undefined;
  }

  /** Keeps `parts` (a module's bytes in pieces) under `key`; a failure to store (quota) only means rewriting again next time. */
  async put(key: string, parts: Uint8Array[], sha256: string): Promise<void> {
    if (!ModuleCache.available()) return;
    try {
      const cache = await caches.open(MODULE_CACHE_NAME);
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
