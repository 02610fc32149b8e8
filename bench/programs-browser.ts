/**
 * (l) The large programs of bench/programs.ts as a donor runs them: published to a task server,
 * leased, prepared and run by the built client in Chromium, with a fresh profile. For each:
 *  - first start on a device: the result's fetchMs + compileMs (download, hash, cache, yield hook,
 *    memory cap, compile; all in the prepare worker), against the page downloading the module and
 *    compiling it (`fetch` then `WebAssembly.compile`, no checks), measured after, in a fresh context;
 *  - start after a reload: the same for a second task of the same program, after the page reloaded
 *    (the rewritten module from Cache Storage, compiled streaming);
 *  - run time in the browser worker (the result's runMs) against node:wasi's, the outputs compared
 *    byte for byte with node:wasi's;
 *  - the renderer's memory: the largest resident set of Chromium's renderer processes during the
 *    two tasks (VmRSS from /proc, sampled every 100 ms);
 *  - the page's main thread: its longest task in thread time, from a Chrome trace ('toplevel'),
 *    over both tasks, prepare and run.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { tmpdir } from 'node:os';
import { withBuiltClient } from './client-under-test.ts';
import { launchChromiumProfile } from '../test/helpers/browser.ts';
import { BENCH_PAGE_DIR, withBenchPage } from './browser-page.ts';
import { programs, type Program } from './programs.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { waitForBatch } from '../test/helpers/donor.ts';
import { ownerFetch } from '../test/helpers/server.ts';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import { RESULT_BODY_TYPE, sha256Hex, type BatchResults } from '../src/protocol/index.ts';
import { fmt, median } from './stats.ts';

export interface BrowserProgramReport {
  program: string;
  firstStart: { fetchMs: number; compileMs: number };
  afterReload: { fetchMs: number; compileMs: number };
  afterSecondReload: { fetchMs: number; compileMs: number };
  /**
   * Starts in new browser sessions on one profile (a donor closing and opening the browser): the
   * first start, then two more, each in a new browser process. The second session compiles the
   * kept module as the service worker answers it, and Chromium keeps its optimised code; the
   * third should deserialise that code. With the trace's code-cache events of each.
   */
  restarts: { fetchMs: number; compileMs: number; cacheEvents: Record<string, number> }[];
  /** Chromium's v8.wasm trace events over the three tasks, by name: the code cache's hits, misses and writes. */
  wasmEvents: Record<string, number>;
  /**
   * In a worker (bench/browser/rewrite-worker.ts) of each engine, medians of REWRITE_ROUNDS: the
   * yield hook's rewrite, compiling the original, compiling the rewritten module. Chromium's compile
   * leaves each function's code to its first call; Firefox's makes all of its baseline code first.
   */
  worker: Record<RewriteEngine, { rewriteMs: number; rewriterMs: number; compileMs: number; compileRewrittenMs: number; size: number }>;
  /** The page fetching the module and compiling it, nothing else. */
  downloadMs: number;
  compileMs: number;
  /** Downloading and compiling at once, unverified (compileStreaming). */
  streamingMs: number;
  runMs: number;
  nodeWasiMs: number;
  identical: boolean;
  rendererRssMiB: number;
  longestMainTaskMs: number;
  mainTasks: number;
}

interface TraceEvent {
  ph: string;
  name: string;
  pid: number;
  tid: number;
  dur?: number;
  tdur?: number;
  args?: { name?: string };
}

/** The largest VmRSS (MiB) of a Chromium renderer process among this process's descendants. */
function rendererRssMiB(root: number): number {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // ended meanwhile
    }
  }
  const descends = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  let largest = 0;
  for (const pid of parent.keys()) {
    if (!descends(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (rss) largest = Math.max(largest, Number(rss[1]) / 1024);
    } catch {
      // ended meanwhile
    }
  }
  return largest;
}

const bytesOf = (data: string | { base64: string } | null) => (data === null ? new Uint8Array(0) : typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(Buffer.from(data.base64, 'base64')));

export async function benchProgramsBrowser(): Promise<BrowserProgramReport[]> {
  const only = process.env.DEWGRID_BENCH_PROGRAMS?.split(',');
  const list = (await programs()).filter((p) => !only || only.some((name) => p.name.startsWith(name)));
  const reports = await withBuiltClient('programs', async (server, browser) => {
    const reports: Omit<BrowserProgramReport, 'worker'>[] = [];
    for (const program of list) reports.push(await one(program, server, browser));
    return reports;
  });
  const inEngine = (engine: RewriteEngine) => withBenchPage(async (page) => {
    const timed = [];
    for (const [i, program] of list.entries()) {
      writeFileSync(join(BENCH_PAGE_DIR, `program-${i}.wasm`), program.wasm);
      const times = await page.evaluate(
        ({ url, rounds }) => (window as unknown as { rewriteBench: (u: string, r: number) => Promise<{ rewriteMs: number[]; rewriterMs: number[]; compileMs: number[]; compileRewrittenMs: number[]; size: number }> }).rewriteBench(url, rounds),
        { url: `program-${i}.wasm`, rounds: REWRITE_ROUNDS },
      );
      timed.push({ rewriteMs: median(times.rewriteMs), rewriterMs: median(times.rewriterMs), compileMs: median(times.compileMs), compileRewrittenMs: median(times.compileRewrittenMs), size: times.size });
    }
    return timed;
  }, engine);
  const chromium = await inEngine('chromium');
  const firefox = await inEngine('firefox');
  return reports.map((report, i) => ({ ...report, worker: { chromium: chromium[i]!, firefox: firefox[i]! } }));
}

/** Download-and-compile baselines measured per program; the median is the first start's reference. */
const BASELINE_ROUNDS = 3;

type RewriteEngine = 'chromium' | 'firefox';

/** Rounds of the rewrite and the compiles in a worker, alternating. */
const REWRITE_ROUNDS = 5;

async function one(program: Program, server: { url: string; key: Parameters<typeof buildBatch>[1] }, browser: import('playwright-core').Browser): Promise<Omit<BrowserProgramReport, 'worker'>> {
  const limits = { memoryBytes: program.memoryBytes, wallTimeMs: 600_000, outputBytes: 16 * 2 ** 20 };
  const task = { args: program.options.args, env: program.options.env, stdin: null, files: program.options.files, preopens: program.options.preopens };
  const publish = async () => publishBatch(server.url, await buildBatch({ name: program.name, module: program.wasm, tasks: [task], limits, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
  // The reference: its outputs, and its run time (median of three).
  const references = [];
  for (let i = 0; i < 3; i++) references.push(await runUnderNodeWasi(program.wasm, program.options));
  const reference = references[0]!;
  const nodeWasiMs = median(references.map((r) => r.runMs));

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(readPostedTimings, RESULT_BODY_TYPE);
  const timings = {
    get: () => page.evaluate(() => (window as unknown as { postedTimings: { fetchMs: number; compileMs: number; runMs: number }[] }).postedTimings),
  };
  if (process.env.DEWGRID_BENCH_CONSOLE) {
    page.on('console', (m) => console.log(`  [page] ${m.text()}`));
    page.on('response', (r) => void (r.url().includes('/api/') && console.log(`  [page] ${r.status()} ${r.request().method()} ${r.url()}`)));
  }
  await page.goto(server.url);
  await page.waitForSelector('html[data-ready="true"]');
  // At once and whatever else the machine runs (the defaults wait for a quiet, idle device: on a
  // machine shared with other work the tasks never started).
  await page.evaluate(() => (window as unknown as { dewgrid: { setSettings(s: object): void } }).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, backOffWhileInUse: false, backOffForOtherPrograms: false }));
  let rss = 0;
  const sampler = setInterval(() => (rss = Math.max(rss, rendererRssMiB(process.pid))), 100);
  await browser.startTracing(page, { categories: ['toplevel', 'v8.wasm', 'v8', 'disabled-by-default-v8.wasm.detailed', 'blink'] });
  const runTask = async (reload: boolean) => {
    const batch = await publish();
    if (reload) {
      await page.reload();
      await page.waitForSelector('html[data-ready="true"]');
    }
    await page.evaluate(() => (window as unknown as { dewgrid: { start(): void } }).dewgrid.start());
    await waitForBatch(server, batch.batchId, (c) => (c.done ?? 0) + (c['exit-nonzero'] ?? 0) + (c.failed ?? 0) === 1, 900_000);
    const posted = await timings.get();
    await page.evaluate(() => (window as unknown as { dewgrid: { stop(): void } }).dewgrid.stop());
    const results = (await (await ownerFetch(server, `/api/batches/${batch.batchId}/results`)).json()) as BatchResults;
    const t = results.tasks[0]!;
    if (t.error) throw new Error(`${program.name} in Chromium: ${t.error.code}: ${t.error.message}`);
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
    const identical = t.exitCode === reference.exitCode && same(bytesOf(t.stdout), reference.stdout) && same(bytesOf(t.stderr), reference.stderr)
      && t.files.length === reference.files.length && t.files.every((f, i) => f.path === reference.files[i]!.path && same(bytesOf(f.data), reference.files[i]!.data));
    if (!posted.length) throw new Error(`${program.name}: the page posted no binary result`);
    return { timing: posted[posted.length - 1]!, identical };
  };
  const first = await runTask(false);
  const second = await runTask(true);
  // A second reload: Chromium writes a module's compiled code beside its Cache Storage entry only
  // once enough of it has been optimised, which may take the first run after a reload.
  const third = await runTask(true);
  clearInterval(sampler);
  const trace = JSON.parse((await browser.stopTracing()).toString()) as { traceEvents: TraceEvent[] };
  const mainThreads = new Set(trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  const tasks = trace.traceEvents.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask' && mainThreads.has(`${e.pid}:${e.tid}`));
  // Chromium's compiled-code cache for modules streamed from Cache Storage (v8_wasm_response_extensions.cc).
  const wasmEvents: Record<string, number> = {};
  for (const e of trace.traceEvents) if (/wasm/i.test(e.name) && e.ph !== 'E') wasmEvents[e.name] = (wasmEvents[e.name] ?? 0) + 1;
  await context.close();

  // Download and compile alone, each time in a fresh context (an empty HTTP cache); the median of
  // BASELINE_ROUNDS by their sum (one measure of a 0.3 s baseline moved the ratio by 2x).
  const hash = await sha256Hex(program.wasm);
  const baselines = [];
  for (let i = 0; i < BASELINE_ROUNDS; i++) {
    const fresh = await browser.newContext();
    const bare = await fresh.newPage();
    await bare.goto(server.url);
    baselines.push(await plainDownloadAndCompile(bare, `/api/blobs/${hash}`));
    await fresh.close();
  }
  const baseline = baselines.sort((a, b) => a.downloadMs + a.compileMs - (b.downloadMs + b.compileMs))[Math.floor(BASELINE_ROUNDS / 2)]!;

  const restarts = await restartedStarts(program, server, publish);

  return {
    restarts,
    program: program.name,
    firstStart: { fetchMs: first.timing.fetchMs, compileMs: first.timing.compileMs },
    afterReload: { fetchMs: second.timing.fetchMs, compileMs: second.timing.compileMs },
    afterSecondReload: { fetchMs: third.timing.fetchMs, compileMs: third.timing.compileMs },
    wasmEvents,
    downloadMs: baseline.downloadMs,
    compileMs: baseline.compileMs,
    streamingMs: baseline.streamingMs,
    runMs: median([first.timing.runMs, second.timing.runMs, third.timing.runMs]),
    nodeWasiMs,
    identical: first.identical && second.identical && third.identical,
    rendererRssMiB: rss,
    longestMainTaskMs: Math.max(0, ...tasks.map((t) => (t.tdur ?? t.dur ?? 0) / 1000)),
    mainTasks: tasks.length,
  };
}

/** In the page, before its scripts: keeps the timings each result reports, read from the head of the binary body the page posts (a Blob body's bytes are not in the browser's request events). */
function readPostedTimings(type: string): void {
  const kept: unknown[] = [];
  (window as unknown as { postedTimings: unknown[] }).postedTimings = kept;
  const original = window.fetch;
  window.fetch = async (input, init) => {
    const body = init?.body;
    if (String(input).endsWith('/api/results') && body instanceof Blob && body.type === type) {
      const length = new DataView(await body.slice(0, 4).arrayBuffer()).getUint32(0);
      kept.push(JSON.parse(await body.slice(4, 4 + length).text()).timings);
    }
    return original(input, init);
  };
}

/**
 * Sessions of the restart runs: the first start, then more in new browser processes on the same
 * profile (DEWGRID_BENCH_RESTARTS, 3 by default). Past the third, each session that found the
 * code cache drops it after its task (the entry put again, same bytes, no compiled code beside
 * it), so that the sessions alternate: one compiling (and keeping the code), one deserialising.
 */
const RESTART_SESSIONS = Number(process.env.DEWGRID_BENCH_RESTARTS ?? 3);

/** One task per browser session, each a new Chromium on one profile; the timings of each, and the code-cache events of the trace. */
async function restartedStarts(program: Program, server: { url: string; key: Parameters<typeof buildBatch>[1] }, publish: () => Promise<{ batchId: string }>): Promise<{ fetchMs: number; compileMs: number; cacheEvents: Record<string, number> }[]> {
  const profile = mkdtempSync(join(tmpdir(), 'dewgrid-bench-profile-'));
  const starts = [];
  try {
    for (let i = 0; i < RESTART_SESSIONS; i++) {
      const context = await launchChromiumProfile(profile);
      try {
        const page = context.pages()[0] ?? (await context.newPage());
        await page.addInitScript(readPostedTimings, RESULT_BODY_TYPE);
        if (process.env.DEWGRID_BENCH_CONSOLE) page.on('console', (m) => console.log(`  [session ${i}] ${m.text()}`));
        await page.goto(server.url);
        await page.waitForSelector('html[data-ready="true"]');
        await page.evaluate(() => (window as unknown as { dewgrid: { setSettings(s: object): void } }).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, backOffWhileInUse: false, backOffForOtherPrograms: false }));
        const cdp = await context.newCDPSession(page);
        const names: string[] = [];
        cdp.on('Tracing.dataCollected', (e) => void names.push(...e.value.map((v) => v.name!)));
        const complete = new Promise<void>((resolve) => cdp.once('Tracing.tracingComplete', () => resolve()));
        await cdp.send('Tracing.start', { traceConfig: { includedCategories: ['disabled-by-default-devtools.timeline', 'v8.wasm'] }, transferMode: 'ReportEvents' });
        const batch = await publish();
        await page.evaluate(() => (window as unknown as { dewgrid: { start(): void } }).dewgrid.start());
        await waitForBatch(server, batch.batchId, (c) => (c.done ?? 0) + (c['exit-nonzero'] ?? 0) + (c.failed ?? 0) === 1, 900_000);
        await page.evaluate(() => (window as unknown as { dewgrid: { stop(): void } }).dewgrid.stop());
        // The service worker installed before the browser closes; the optimised code kept (from a background thread).
        await page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined));
        await page.waitForTimeout(5000);
        await cdp.send('Tracing.end');
        await complete;
        const posted = await page.evaluate(() => (window as unknown as { postedTimings: { fetchMs: number; compileMs: number }[] }).postedTimings);
        const cacheEvents: Record<string, number> = {};
        for (const name of names) if (/^v8\.wasm\.(moduleCache|cachedModule)|^wasm\.Deserialize$/.test(name)) cacheEvents[name] = (cacheEvents[name] ?? 0) + 1;
        const timing = posted[posted.length - 1]!;
        starts.push({ fetchMs: timing.fetchMs, compileMs: timing.compileMs, cacheEvents });
        if (i >= 2 && cacheEvents['v8.wasm.moduleCacheHit']) {
          await page.evaluate(async () => {
            const cache = await caches.open('dewgrid-modules');
            for (const key of await cache.keys()) {
              const kept = (await cache.match(key))!;
              await cache.put(key, new Response(await kept.blob(), { headers: kept.headers }));
            }
          });
        }
      } finally {
        await context.close();
      }
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
  return starts;
}

/**
 * The module downloaded then compiled, and (the alternative docs/security.md weighs) compiled
 * while it downloads, unverified: `compileStreaming` of the response.
 */
function plainDownloadAndCompile(page: Page, url: string): Promise<{ downloadMs: number; compileMs: number; streamingMs: number }> {
  return page.evaluate(async (path) => {
    const started = performance.now();
    const bytes = await (await fetch(path, { cache: 'no-store' })).arrayBuffer();
    const downloaded = performance.now();
    await WebAssembly.compile(bytes);
    const compiled = performance.now();
    const response = await fetch(path, { cache: 'no-store' });
    await WebAssembly.compileStreaming(new Response(response.body, { headers: { 'content-type': 'application/wasm' } }));
    return { downloadMs: downloaded - started, compileMs: compiled - downloaded, streamingMs: performance.now() - compiled };
  }, url);
}

export function printProgramsBrowser(reports: BrowserProgramReport[]): void {
  console.log('\n(l) Large real-world programs as the donor runs them, Chromium (one run each; interleave runs of the whole benchmark for medians)');
  for (const r of reports) {
    const first = r.firstStart.fetchMs + r.firstStart.compileMs;
    const again = r.afterReload.fetchMs + r.afterReload.compileMs;
    console.log(`  ${r.program}: outputs ${r.identical ? 'identical to node:wasi byte for byte' : 'DIFFERENT from node:wasi'}`);
    console.log(`    first start ${fmt(first)} ms (fetch+verify+cache ${fmt(r.firstStart.fetchMs)}, hook+compile ${fmt(r.firstStart.compileMs)}) = ${fmt(first / (r.downloadMs + r.compileMs), 2)}x download ${fmt(r.downloadMs)} + compile ${fmt(r.compileMs)} ms (target: 2x); compiling while downloading, unverified: ${fmt(r.streamingMs)} ms`);
    const third = r.afterSecondReload.fetchMs + r.afterSecondReload.compileMs;
    console.log(`    start after a reload ${fmt(again)} ms (fetch ${fmt(r.afterReload.fetchMs)}, compile ${fmt(r.afterReload.compileMs)}), after a second ${fmt(third)} ms (fetch ${fmt(r.afterSecondReload.fetchMs)}, compile ${fmt(r.afterSecondReload.compileMs)}) (target: under 500 ms)`);
    r.restarts.forEach((s, i) => console.log(`    ${i === 0 ? 'first start, new profile' : `start in a new browser session ${i}`}: ${fmt(s.fetchMs + s.compileMs)} ms (fetch ${fmt(s.fetchMs)}, compile ${fmt(s.compileMs)}); code cache: ${Object.entries(s.cacheEvents).map(([name, n]) => `${name} ${n}`).join(', ') || 'no events'}`));
    console.log(`    Chromium's v8.wasm trace events: ${Object.entries(r.wasmEvents).map(([name, n]) => `${name} ${n}`).join(', ') || 'none'}`);
    for (const [engine, w] of Object.entries(r.worker)) {
      const how = engine === 'chromium' ? 'lazily: each function on its first call' : 'all of its baseline code first';
      console.log(`    in a ${engine} worker: the rewrite ${fmt(w.rewriteMs)} ms (the rewriter alone ${fmt(w.rewriterMs)} ms, the rest joining its output to the sections it does not read) against compiling ${fmt(w.compileMs)} ms (${how}): ${fmt((100 * w.rewriteMs) / w.compileMs)}% (alone ${fmt((100 * w.rewriterMs) / w.compileMs)}%; target: 20%); the rewritten module (${fmt(w.size, 3)}x) compiles in ${fmt(w.compileRewrittenMs)} ms`);
    }
    console.log(`    run ${fmt(r.runMs)} ms in the browser worker, node:wasi ${fmt(r.nodeWasiMs)} ms: ${fmt(r.runMs / r.nodeWasiMs, 2)}x (target: 1.10)`);
    console.log(`    renderer RSS at most ${fmt(r.rendererRssMiB)} MiB; longest main-thread task ${fmt(r.longestMainTaskMs)} ms of thread time over ${r.mainTasks} tasks (target: 50 ms)`);
  }
}
