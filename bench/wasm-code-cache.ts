/**
 * Does Chromium keep a WebAssembly module's compiled code across browser sessions, and for which
 * way of handing it the module's bytes? Dewgrid keeps rewritten modules in Cache Storage
 * (src/storage/module-cache.ts); this finds out, on a generated module, whether a later session
 * compiles such a module from the code cache when the bytes come
 *  - straight from `cache.match()` in a dedicated worker (what Dewgrid did), or
 *  - from `fetch()` in that worker, answered by the page's service worker out of the same cache.
 * Each session is a new browser process on the same profile directory (a reload in one renderer
 * finds V8's in-process module cache instead, which says nothing about the next session).
 *
 * Chromium writes the code only once enough of the module has been optimised (V8's
 * --wasm-caching-threshold, 1000 bytes of TurboFan code, then --wasm-caching-timeout-ms, 2 s with
 * no new optimised code): the first session runs hot functions, then waits. The trace's
 * `v8.wasm.moduleCacheHit` / `v8.wasm.cachedModule` events (devtools.timeline) say what happened.
 * DEWGRID_CODE_CACHE_ARGS adds Chromium flags, e.g. `--js-flags=--wasm-caching-timeout-ms=0`.
 *
 * Found on 2026-12-02 (Chromium 156): a Response from `cache.match()` never has its code cached
 * (Blink gives only `fetch()`ed `application/wasm` responses a cached-metadata handler); one the
 * service worker answers from Cache Storage does, and a later session deserialises it. With V8's
 * defaults, the code of this module was never written: its 64 optimised functions stay under the
 * 1 MB hard threshold, and the 2 s timeout that should write smaller chunks did not fire (nor at
 * 100 ms); with the timeout at 0 it is written at once and the next session hits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import binaryen from 'binaryen';
import { launchChromiumProfile } from '../test/helpers/browser.ts';
import { fmt } from './stats.ts';

/** Functions of filler: enough code that compiling it takes a measurable time. */
const FILLER_FUNCTIONS = 12_000;
const HOT_FUNCTIONS = 64;

/** A module of HOT_FUNCTIONS exported loops (each optimised once hot) and FILLER_FUNCTIONS never called. */
export function generatedModule(): Uint8Array {
  const funcs: string[] = [];
  for (let h = 0; h < HOT_FUNCTIONS; h++) {
    funcs.push(`(func $hot${h} (export "hot${h}") (param $n i32) (result f64) (local $i i32) (local $x f64)
      (local.set $x (f64.const ${h + 1}))
      (block $done (loop $again
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (f64.add (f64.mul (local.get $x) (f64.const 1.0000001)) (f64.convert_i32_u (i32.xor (local.get $i) (i32.const ${h * 7 + 3})))))
        (if (f64.gt (local.get $x) (f64.const 1e12)) (then (local.set $x (f64.sqrt (local.get $x)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
      (local.get $x))`);
  }
  for (let f = 0; f < FILLER_FUNCTIONS; f++) {
    const body = Array.from({ length: 12 }, (_, k) => `(local.set $a (i32.add (i32.mul (local.get $a) (i32.const ${f + k + 3})) (i32.rotl (local.get $b) (i32.const ${k}))))
      (local.set $b (i32.xor (local.get $b) (i32.shr_u (local.get $a) (i32.const ${(k % 7) + 1}))))`).join('\n');
    funcs.push(`(func $f${f} (export "f${f}") (param $a i32) (param $b i32) (result i32) ${body} (i32.add (local.get $a) (local.get $b)))`);
  }
  const module = binaryen.parseText(`(module ${funcs.join('\n')})`);
  const bytes = module.emitBinary();
  module.dispose();
  return bytes;
}

const PAGE = `<!doctype html><title>wasm code cache</title><script>
window.swReady = navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready);
window.worker = new Worker('/worker.js');
window.ask = (message) => new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); worker.postMessage(message); });
</script>`;

/** Answers /mods/ from Cache Storage, as Dewgrid's service worker would answer its kept modules. */
const SERVICE_WORKER = `
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (!url.pathname.startsWith('/mods/')) return;
  event.respondWith(caches.open('mods').then((cache) => cache.match(event.request)).then((hit) => hit ?? new Response('not kept', { status: 404 })));
});`;

const WORKER = `
const URL_KEPT = '/mods/module.wasm';
let module = null;
onmessage = async ({ data }) => {
  const started = performance.now();
  if (data.op === 'store') {
    const bytes = await (await fetch('/module.wasm')).arrayBuffer();
    const cache = await caches.open('mods');
    await cache.put(URL_KEPT, new Response(new Blob([bytes], { type: 'application/wasm' }), { headers: { 'content-type': 'application/wasm' } }));
    postMessage({ ms: performance.now() - started });
  } else if (data.op === 'compile') {
    const response = data.via === 'fetch' ? await fetch(URL_KEPT) : await (await caches.open('mods')).match(URL_KEPT);
    module = await WebAssembly.compileStreaming(response);
    postMessage({ ms: performance.now() - started, status: response.status });
  } else if (data.op === 'run') {
    const instance = await WebAssembly.instantiate(module);
    let sum = 0;
    for (let round = 0; round < data.rounds; round++) for (let h = 0; h < ${HOT_FUNCTIONS}; h++) sum += instance.exports['hot' + h](400_000);
    postMessage({ ms: performance.now() - started, sum });
  }
};`;

function serve(wasm: Uint8Array): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const files: Record<string, [string, string | Uint8Array]> = {
      '/': ['text/html', PAGE],
      '/sw.js': ['text/javascript', SERVICE_WORKER],
      '/worker.js': ['text/javascript', WORKER],
      '/module.wasm': ['application/wasm', wasm],
    };
    const file = files[path];
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, server })));
}

type Ask = (message: object) => Promise<{ ms: number; status?: number }>;

/** One browser session on `profile`: the page open, controlled by its service worker; `use` talks to its worker. */
async function session<T>(profile: string, url: string, use: (ask: Ask, page: Page, context: BrowserContext) => Promise<T>): Promise<T> {
  const context = await launchChromiumProfile(profile, { extraArgs: process.env.DEWGRID_CODE_CACHE_ARGS?.split(' ') });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(url);
    await page.evaluate(() => (window as unknown as { swReady: Promise<unknown> }).swReady);
    if (!(await page.evaluate(() => navigator.serviceWorker.controller !== null))) await page.reload();
    await page.evaluate(() => (window as unknown as { swReady: Promise<unknown> }).swReady);
    const ask: Ask = (message) => page.evaluate((m) => (window as unknown as { ask: (m: object) => Promise<{ ms: number; status?: number }> }).ask(m), message);
    return await use(ask, page, context);
  } finally {
    await context.close();
  }
}

/** The trace's wasm code-cache events over `work`, by name. */
async function wasmCacheEvents(page: Page, context: BrowserContext, work: () => Promise<unknown>): Promise<Record<string, number>> {
  const cdp = await context.newCDPSession(page);
  const events: { name: string }[] = [];
  cdp.on('Tracing.dataCollected', (e) => void events.push(...e.value.map((v) => ({ name: v.name! }))));
  const complete = new Promise<void>((resolve) => cdp.once('Tracing.tracingComplete', () => resolve()));
  await cdp.send('Tracing.start', { traceConfig: { includedCategories: ['disabled-by-default-devtools.timeline', 'v8.wasm', 'disabled-by-default-v8.wasm.detailed'] }, transferMode: 'ReportEvents' });
  await work();
  await cdp.send('Tracing.end');
  await complete;
  const counts: Record<string, number> = {};
  for (const e of events) if (/^v8\.wasm\.(moduleCache|cachedModule|compiledModule)|^wasm\.(Deserialize|CompilationChunkFinished|TopTierCompilation)$/.test(e.name)) counts[e.name] = (counts[e.name] ?? 0) + 1;
  return counts;
}

export interface CodeCacheReport {
  moduleBytes: number;
  /** Session 1: the module kept, compiled through the service worker, run hot, then left idle. */
  firstCompileMs: number;
  firstEvents: Record<string, number>;
  /** Later sessions, each a new browser on the same profile: compiled through fetch (the service worker), then from cache.match. */
  viaFetch: { ms: number; events: Record<string, number> }[];
  viaMatch: { ms: number; events: Record<string, number> }[];
}

export async function benchWasmCodeCache(rounds = 2): Promise<CodeCacheReport> {
  const wasm = generatedModule();
  const { url, server } = await serve(wasm);
  const profile = mkdtempSync(join(tmpdir(), 'dewgrid-code-cache-'));
  try {
    const first = await session(profile, url, async (ask, page, context) => {
      await ask({ op: 'store' });
      let compileMs = 0;
      const events = await wasmCacheEvents(page, context, async () => {
        compileMs = (await ask({ op: 'compile', via: 'fetch' })).ms;
        await ask({ op: 'run', rounds: 20 });
        // V8 caches once no new optimised code came for --wasm-caching-timeout-ms (2 s).
        await new Promise((resolve) => setTimeout(resolve, 8000));
      });
      return { compileMs, events };
    });
    const viaFetch: CodeCacheReport['viaFetch'] = [];
    const viaMatch: CodeCacheReport['viaMatch'] = [];
    for (let r = 0; r < rounds; r++) {
      for (const via of ['fetch', 'match'] as const) {
        const timed = await session(profile, url, async (ask, page, context) => {
          let ms = 0;
          const events = await wasmCacheEvents(page, context, async () => void (ms = (await ask({ op: 'compile', via })).ms));
          return { ms, events };
        });
        (via === 'fetch' ? viaFetch : viaMatch).push(timed);
      }
    }
    return { moduleBytes: wasm.length, firstCompileMs: first.compileMs, firstEvents: first.events, viaFetch, viaMatch };
  } finally {
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

export function printWasmCodeCache(r: CodeCacheReport): void {
  const events = (e: Record<string, number>) => Object.entries(e).map(([name, n]) => `${name} ${n}`).join(', ') || 'no code-cache events';
  console.log(`\nWasm code cache across browser sessions (a generated ${fmt(r.moduleBytes / 2 ** 20, 3)} MB module in a dedicated worker, Cache Storage)`);
  console.log(`  session 1, compiled through the service worker, run hot, left idle: ${fmt(r.firstCompileMs)} ms; ${events(r.firstEvents)}`);
  r.viaFetch.forEach((s, i) => console.log(`  new session ${i + 1}, fetch() answered by the service worker from the cache: ${fmt(s.ms)} ms; ${events(s.events)}`));
  r.viaMatch.forEach((s, i) => console.log(`  new session ${i + 1}, cache.match() in the worker: ${fmt(s.ms)} ms; ${events(s.events)}`));
}
