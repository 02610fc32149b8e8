/**
 * (c) From opening the page with no network to the first task running again: the app shell
 * from the service worker, trust and held leases from IndexedDB, the module from the blob cache.
 */
import { readFileSync } from 'node:fs';
import { withBuiltClient } from './client-under-test.ts';
import { waitForAsync } from '../test/helpers/donor.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { fmt, median, quantile } from './stats.ts';

export interface OfflineStartReport {
  runs: number;
  medianMs: number;
  p95Ms: number;
}

export async function benchOfflineStart(runs = 7): Promise<OfflineStartReport> {
  return withBuiltClient('offline', async (server, browser) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await waitForAsync(page, async () => (await navigator.serviceWorker.ready) && navigator.serviceWorker.controller !== null, null);
    // Long tasks (seconds each), so the one running when the page reloads is still there to pick up.
    const tasks = Array.from({ length: 4 }, () => ({ args: ['fractal', '960', '720', '900', '680', '40', '40', '600000'], env: [] as [string, string][], stdin: null, files: [], preopens: [] }));
    await publishBatch(server.url, await buildBatch({ name: 'offline bench', module: new Uint8Array(readFileSync('demo/fractal/fractal.wasm')), tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
    await page.evaluate(() => (window as unknown as { dewgrid: { setLimits(l: object): void; start(): void } }).dewgrid.setLimits({ workers: 1 }));
    await page.evaluate(() => (window as unknown as { dewgrid: { start(): void } }).dewgrid.start());
    await page.waitForFunction(() => (window as unknown as { dewgrid: { status(): { counts: { running: number; queued: number } } } }).dewgrid.status().counts.queued >= 3);
    await context.setOffline(true);
    await server.stop();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = Date.now();
      await page.reload();
      await page
        .waitForFunction(() => ((window as unknown as { dewgrid?: { status(): { counts: { running: number } } } }).dewgrid?.status().counts.running ?? 0) >= 1, null, { polling: 5, timeout: 10_000 })
        .catch(async (error: Error) => {
          const log = await page.evaluate(() => [...document.querySelectorAll('.activity li')].slice(0, 6).map((l) => l.textContent));
          throw new Error(`${error.message}\nactivity: ${log.join(' | ')}`);
        });
      times.push(Date.now() - started);
    }
    await context.close();
    if (process.env.BENCH_VERBOSE) console.log(`times: ${JSON.stringify(times)}`);
    return { runs, medianMs: median(times), p95Ms: quantile(times, 0.95) };
  });
}

export function printOfflineStart(r: OfflineStartReport): void {
  console.log(`\n(c) Opening the page offline to the first task running again (${r.runs} reloads, service worker + IndexedDB)`);
  console.log(`    median ${fmt(r.medianMs, 0)} ms, p95 ${fmt(r.p95Ms, 0)} ms`);
}
