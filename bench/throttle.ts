/**
 * (g) Throttling in the browser client, on one long task in Chromium:
 *  - the CPU share a throttled worker really uses at limits of 25, 50 and 75%, two ways: the
 *    operating system's accounting of all of Chromium's processes (/proc/<pid>/stat, utime +
 *    stime of every descendant of this process, with the browser's own use while the task is paused measured
 *    first and taken off), and the worker's own
 *    busy-time accounting (the control block), each over the same wall-clock window;
 *  - pause latency: from the page asking for a pause (the hidden-page policy, through a
 *    document.visibilityState stand-in) to the worker stopping at its next yield, both read on
 *    the epoch clock (performance.timeOrigin + now()).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { withBuiltClient } from './client-under-test.ts';
import type { Page } from 'playwright-core';
import { buildBatch, publishBatch } from '../server/publish.ts';
import type { DewgridApi } from '../src/app/api.ts';
import { fmt, median, quantile } from './stats.ts';

export interface ThrottleReport {
  idleBrowserShare: number;
  shares: { limit: number; os: number; worker: number }[];
  pauseLatencyMs: { median: number; p95: number; max: number; n: number };
}

type Win = { dewgrid: DewgridApi; visibility: DocumentVisibilityState };
const CLOCK_TICKS_PER_S = 100; // Linux USER_HZ

/** CPU seconds used so far by the descendants of a process (not by itself). */
function descendantsCpuSeconds(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    if (pid === root) return false;
    for (let p = pid, hops = 0; p > 1 && hops < 20; hops++) {
      if (p === root) return true;
      p = stats.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let ticks = 0;
  for (const [pid, s] of stats) if (inTree(pid)) ticks += s.ticks;
  return ticks / CLOCK_TICKS_PER_S;
}

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
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, whenHidden: 'pause', backOffWhileInUse: false }));
    // Chromium and all its processes are this process's descendants (playwright-core starts it;
    // the task server and the driver run in this process, which is not counted).
    const pid = process.pid;

    const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
    await publishBatch(server.url, await buildBatch({ name: 'throttle', module: fractal, tasks: [{ args: ['fractal', '960', '720', '800', '600', '160', '120', '300000'], env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 3_600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().progress.work > 0, null, { timeout: 30_000 }).catch(async (e) => { console.log(JSON.stringify(await status(page)), await page.locator('.activity li').allTextContents()); throw e; });

    // The browser's own use with the task held paused (its worker blocked in Atomics.wait): the
    // same page, poll and all, minus the computing. Taken off the OS figures below.
    const setHidden = (hidden: boolean) =>
      page.evaluate((h) => {
        (window as unknown as Win).visibility = h ? 'hidden' : 'visible';
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await setHidden(true);
    await page.waitForTimeout(500);
    const idle0 = { cpu: descendantsCpuSeconds(pid), at: performance.now() };
    await page.waitForTimeout(windowMs);
    const idleBrowserShare = (descendantsCpuSeconds(pid) - idle0.cpu) / ((performance.now() - idle0.at) / 1000);
    await setHidden(false);

    const shares: ThrottleReport['shares'] = [];
    for (const limit of [0.25, 0.5, 0.75]) {
      await page.evaluate((cpu) => (window as unknown as Win).dewgrid.setSettings({ cpu }), limit);
      await page.waitForTimeout(1000); // one duty cycle and more, to settle
      const before = { cpu: descendantsCpuSeconds(pid), busy: (await status(page)).progress.busyMs, at: performance.now() };
      await page.waitForTimeout(windowMs);
      const after = { cpu: descendantsCpuSeconds(pid), busy: (await status(page)).progress.busyMs, at: performance.now() };
      const seconds = (after.at - before.at) / 1000;
      shares.push({ limit, os: (after.cpu - before.cpu) / seconds - idleBrowserShare, worker: (after.busy - before.busy) / 1000 / seconds });
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
      idleBrowserShare,
      shares,
      pauseLatencyMs: { median: median(latencies), p95: quantile(latencies, 0.95), max: Math.max(...latencies), n: latencies.length },
    };
  });
}

export function printThrottle(r: ThrottleReport): void {
  console.log('\n(g) A throttled worker\'s real CPU share, and pause latency (Chromium, one long task)');
  console.log(`  browser with the task paused, taken off the OS figures: ${fmt(r.idleBrowserShare * 100)}% of a core`);
  for (const s of r.shares) {
    console.log(`  limit ${fmt(s.limit * 100, 0)}%: OS accounting ${fmt(s.os * 100)}%, worker's own ${fmt(s.worker * 100)}% (off by ${fmt((s.os - s.limit) * 100)} / ${fmt((s.worker - s.limit) * 100)} points)`);
  }
  const p = r.pauseLatencyMs;
  console.log(`  pause latency: median ${fmt(p.median)} ms, p95 ${fmt(p.p95)} ms, max ${fmt(p.max)} ms over ${p.n} pauses`);
}
