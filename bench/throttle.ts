/**
 * (g) Throttling in the browser client, on one long task in Chromium with one worker:
 *  - the CPU the whole browser uses at limits of 100, 50 and 25%, per thread from the operating
 *    system's accounting (/proc/PID/task/TID/stat, utime + stime of every thread of every process
 *    descended from this one; bench/proc-cpu.ts): the task's worker, the page's main thread and its
 *    other threads, the browser process, the GPU and utility processes; and the worker's own
 *    busy-time accounting (the control block), over the same wall-clock window. The donor's limit
 *    is a promise about all of it (issue #17): the browser's total within 5 points of the limit
 *    times one core, and the page's own threads under 0.02 cores while it is visible;
 *  - pause latency: from the page asking for a pause (the hidden-page policy, through a
 *    document.visibilityState stand-in) to the worker stopping at its next yield, both read on
 *    the epoch clock (performance.timeOrigin + now()).
 */
import { readFileSync } from 'node:fs';
import { withBuiltClient } from './client-under-test.ts';
import type { Page } from 'playwright-core';
import { buildBatch, publishBatch } from '../server/publish.ts';
import type { DewgridApi } from '../src/app/api.ts';
import { fmt, median, quantile } from './stats.ts';
import { cpuWindow, type CpuUse } from './proc-cpu.ts';

export interface ThrottleReport {
  shares: { limit: number; browser: CpuUse; worker: number }[];
  pauseLatencyMs: { median: number; p95: number; max: number; n: number };
}

type Win = { dewgrid: DewgridApi; visibility: DocumentVisibilityState };

const status = (page: Page) => page.evaluate(() => (window as unknown as Win).dewgrid.status());

export async function benchThrottle(windowMs = 5000, pauses = 15): Promise<ThrottleReport> {
  return withBuiltClient('throttle', async (server, browser) => {
    const page = await browser.newPage();
    // As text: tsx (which runs the benchmarks) wraps functions in a `__name` helper the page lacks.
    await page.addInitScript(`
      window.visibility = 'visible';
      Object.defineProperty(Document.prototype, 'visibilityState', { get: () => window.visibility, configurable: true });
    `);
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    // One worker; no back-off for other programs (a shared machine's load would only blur what is measured here).
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, whenHidden: 'pause', backOffWhileInUse: false, backOffForOtherPrograms: false }));
    const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
    await publishBatch(server.url, await buildBatch({ name: 'throttle', module: fractal, tasks: [{ args: ['fractal', '960', '720', '800', '600', '160', '120', '300000'], env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 3_600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().progress.work > 0, null, { timeout: 30_000 }).catch(async (e) => { console.log(JSON.stringify(await status(page)), await page.locator('.activity li').allTextContents()); throw e; });

    // Every thread of the browser (Chromium and all its processes are this process's descendants:
    // playwright-core starts it; the task server and the driver run in this process, not counted).
    const shares: ThrottleReport['shares'] = [];
    for (const limit of [1, 0.5, 0.25]) {
      await page.evaluate((cpu) => (window as unknown as Win).dewgrid.setSettings({ cpu }), limit);
      await page.waitForTimeout(1500); // a few duty cycles, and the page's own render of the change
      const busy0 = (await status(page)).progress.busyMs;
      const measuring = cpuWindow();
      const started = performance.now();
      await page.waitForTimeout(windowMs);
      const browser = measuring.end();
      const busy1 = (await status(page)).progress.busyMs;
      shares.push({ limit, browser, worker: (busy1 - busy0) / (performance.now() - started) });
    }
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ cpu: 1 }));
    const latencies: number[] = [];
    for (let i = 0; i < pauses; i++) {
      await page.waitForTimeout(150 + ((i * 37) % 100)); // pauses land at varied points of the run
      const asked = await page.evaluate(() => {
        const w = window as unknown as Win;
        w.visibility = 'hidden';
        const at = performance.timeOrigin + performance.now();
        document.dispatchEvent(new Event('visibilitychange'));
        return at;
      });
      await page.waitForFunction((t) => (window as unknown as Win).dewgrid.status().progress.lastPauseAt > t, asked, { timeout: 10_000 }).catch(async (e) => { console.log(asked, JSON.stringify(await status(page)), await page.evaluate(() => [document.visibilityState, (window as unknown as Win).visibility, Object.getOwnPropertyDescriptor(document, 'visibilityState')])); throw e; });
      latencies.push((await status(page)).progress.lastPauseAt - asked);
      await page.evaluate(() => {
        (window as unknown as Win).visibility = 'visible';
        document.dispatchEvent(new Event('visibilitychange'));
      });
    }
    return {
      shares,
      pauseLatencyMs: { median: median(latencies), p95: quantile(latencies, 0.95), max: Math.max(...latencies), n: latencies.length },
    };
  });
}

export function printThrottle(r: ThrottleReport): void {
  console.log('\n(g) The whole browser\'s CPU at a worker\'s limit, per thread, and pause latency (Chromium, one long task, one worker)');
  console.log('  limit: browser total (off by, points) = task worker + page main thread + page other threads + browser process + GPU/utility; worker\'s own accounting');
  for (const s of r.shares) {
    const g = s.browser.groups;
    const page = g['page main'] + g['page other'];
    console.log(
      `  ${fmt(s.limit * 100, 0)}%: ${fmt(s.browser.total * 100)}% of a core (${fmt((s.browser.total - s.limit) * 100)}) = ${fmt(g.workers, 3)} + ${fmt(g['page main'], 3)} + ${fmt(g['page other'], 3)} + ${fmt(g.browser, 3)} + ${fmt(g.helpers, 3)} cores; ` +
        `page's own threads ${fmt(page, 3)} cores${page < 0.02 ? '' : ' (over 0.02)'}; worker's own ${fmt(s.worker * 100)}%`,
    );
    const top = s.browser.threads.filter((t) => t.group !== 'workers').slice(0, 4).map((t) => `${t.name} (${t.group}) ${fmt(t.cores, 3)}`);
    console.log(`        busiest other threads: ${top.join(', ')}`);
  }
  const p = r.pauseLatencyMs;
  console.log(`  pause latency: median ${fmt(p.median)} ms, p95 ${fmt(p.p95)} ms, max ${fmt(p.max)} ms over ${p.n} pauses`);
}
