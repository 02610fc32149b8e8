// ModuleCache.compile: which Response a kept module is compiled from. Through the service worker
// only where the engine keeps compiled code for it (Chromium: its code cache); elsewhere straight
// from Cache Storage, which Firefox and WebKit read 0.1-0.3 s faster for a 20-30 MB module.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { sha256Hex } from '../../src/protocol/index.ts';
import { keepsCompiledCode, ModuleCache, MODULE_CACHE_NAME } from '../../src/storage/module-cache.ts';

const module = new Uint8Array(readFileSync(new URL('../fixtures/wasi/wordfreq.wasm', import.meta.url)));
const origin = 'https://donor.example';

/** Cache Storage holding one kept module, as ModuleCache.put leaves it, and a fetch that records its calls. */
async function keptModule() {
  const headers = { 'content-type': 'application/wasm', 'x-dewgrid-sha256': await sha256Hex(module) };
  const opened: string[] = [];
  vi.stubGlobal('caches', {
    open: async (name: string) => {
      opened.push(name);
      return { match: async () => new Response(module.slice(), { headers }), delete: async () => true };
    },
  });
  const fetched: string[] = [];
  vi.stubGlobal('fetch', async (url: string) => {
    fetched.push(url);
    return new Response(module.slice(), { headers }); // as the service worker answers from the cache
  });
  return { opened, fetched };
}

afterEach(() => vi.unstubAllGlobals());

describe('ModuleCache.compile', () => {
  it('compiles a kept module as the service worker answers it where the engine keeps compiled code', async () => {
    vi.stubGlobal('navigator', { userAgentData: { brands: [] } });
    expect(keepsCompiledCode()).toBe(true);
    const { opened, fetched } = await keptModule();
    const kept = await new ModuleCache(origin).compile('k.wasm');
    expect(kept?.module).toBeInstanceOf(WebAssembly.Module);
    expect(opened).toEqual([MODULE_CACHE_NAME]);
    expect(fetched).toEqual([`${origin}/__dewgrid/modules/k.wasm`]);
  });

  it('compiles it straight from Cache Storage where the engine keeps none', async () => {
    vi.stubGlobal('navigator', {});
    expect(keepsCompiledCode()).toBe(false);
    const { fetched } = await keptModule();
    const kept = await new ModuleCache(origin).compile('k.wasm');
    expect(kept?.module).toBeInstanceOf(WebAssembly.Module);
    expect(await kept!.bytes()).toEqual(module);
    expect(fetched).toEqual([]);
  });
});
