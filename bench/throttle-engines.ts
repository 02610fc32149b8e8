/**
 * (g, per engine) Throttling in the browser client, on one long task, in each engine that can pause a task in
 * place (memory shared with its worker: Chromium, Firefox, and WebKitGTK with
 * JSC_useSharedArrayBuffer=1 as Safari's isolated pages):
 *  - the CPU share a throttled worker really uses at limits of 25, 50 and 75%, two ways: the
 *    operating system's accounting of all the browser's processes (/proc/<pid>/stat, utime +
 *    stime of every descendant of this process, with the browser's own use while the task is
 *    paused measured first and taken off), and the worker's own busy-time accounting (the control
 *    block), each over the same wall-clock window;
 *  - pause latency: from the page asking for a pause (the hidden-page policy, through a
 *    document.visibilityState stand-in) to the worker stopping at its next yield, both read on
 *    the epoch clock (performance.timeOrigin + now()).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../test/helpers/build.ts';
import { startTestServer, type TestServer } from '../test/helpers/server.ts';
import { launchEngine, type DonorPage, type EngineName, type EngineOptions } from '../test/helpers/engines/index.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import type { DewgridApi } from '../src/app/api.ts';
import { fmt, median, quantile } from './stats.ts';

export interface ThrottleReport {
  /** Browser, version and session. */
  engine: string;
  idleBrowserShare: number;
  shares: { limit: number; os: number; worker: number }[];
  pauseLatencyMs: { median: number; p95: number; max: number; n: number };
}

/**
 * Where (g) runs. Not WebKitGTK as shipped: it cannot share memory with a worker, so a running
 * task keeps its starting share and a pause cuts it short: there is no block to measure.
 */
export const THROTTLE_ENGINES: { engine: EngineName; options?: EngineOptions }[] = [
  { engine: 'chromium' },
  { engine: 'firefox' },
  { engine: 'webkit', options: { profile: 'persistent', sharedArrayBuffer: true } },
];

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

const status = (page: DonorPage) => page.evaluate(() => (window as unknown as Win).dewgrid.status());
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function benchThrottleEngines(windowMs = 5000, pauses = 15): Promise<ThrottleReport[]> {
  const dist = mkdtempSync(join(tmpdir(), 'dewgrid-bench-throttle-dist-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-bench-throttle-'));
  await buildClient(dist);
  const server = await startTestServer({ dataDir, staticDir: dist });
  const reports: ThrottleReport[] = [];
  try {
    for (const { engine, options } of THROTTLE_ENGINES) {
      const browser = await launchEngine(engine, options);
      try {
        const page = await browser.newPage();
        reports.push({ engine: browser.description, ...(await measure(server, page, windowMs, pauses)) });
      } finally {
        await browser.close();
      }
    }
  } finally {
    await server.close();
    rmSync(dist, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
  return reports;
}

async function measure(server: TestServer, page: DonorPage, windowMs: number, pauses: number): Promise<Omit<ThrottleReport, 'engine'>> {
  await page.goto(server.url);
  await page.waitFor(() => document.documentElement.dataset.ready === 'true', undefined);
  // The stand-in for visibility: the client reads document.visibilityState on each visibilitychange.
  await page.evaluate(() => {
    (window as unknown as Win).visibility = 'visible';
    Object.defineProperty(Document.prototype, 'visibilityState', { get: () => (window as unknown as Win).visibility, configurable: true });
  });
  await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, whenHidden: 'pause', backOffWhileInUse: false, backOffForOtherPrograms: false }));
  // The browser and all its processes are this process's descendants (the driver starts it; the
  // task server and the driver run in this process, which is not counted).
  const pid = process.pid;

  const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
  await publishBatch(server.url, await buildBatch({ name: 'throttle', module: fractal, tasks: [{ args: ['fractal', '960', '720', '800', '600', '160', '120', '300000'], env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 3_600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
  await page.evaluate(() => (window as unknown as Win).dewgrid.start());
  await page.waitFor(() => (window as unknown as Win).dewgrid.status().progress.work > 0, undefined, 60_000);

  // The browser's own use with the task held paused (its worker blocked in Atomics.wait): the
  // same page, poll and all, minus the computing. Taken off the OS figures below.
  const setHidden = (hidden: boolean) =>
    page.evaluate((h) => {
      (window as unknown as Win).visibility = h ? 'hidden' : 'visible';
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  await setHidden(true);
  await sleep(500);
  const idle0 = { cpu: descendantsCpuSeconds(pid), at: performance.now() };
  await sleep(windowMs);
  const idleBrowserShare = (descendantsCpuSeconds(pid) - idle0.cpu) / ((performance.now() - idle0.at) / 1000);
  await setHidden(false);

  const shares: ThrottleReport['shares'] = [];
  for (const limit of [0.25, 0.5, 0.75]) {
    await page.evaluate((cpu) => (window as unknown as Win).dewgrid.setSettings({ cpu }), limit);
    await sleep(1000); // one duty cycle and more, to settle
    const before = { cpu: descendantsCpuSeconds(pid), busy: (await status(page)).progress.busyMs, at: performance.now() };
    await sleep(windowMs);
    const after = { cpu: descendantsCpuSeconds(pid), busy: (await status(page)).progress.busyMs, at: performance.now() };
    const seconds = (after.at - before.at) / 1000;
    shares.push({ limit, os: (after.cpu - before.cpu) / seconds - idleBrowserShare, worker: (after.busy - before.busy) / 1000 / seconds });
  }

  await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ cpu: 1 }));
  const latencies: number[] = [];
  for (let i = 0; i < pauses; i++) {
    await sleep(150 + ((i * 37) % 100)); // pauses land at varied points of the run
    const asked = await page.evaluate(() => {
      (window as unknown as Win).visibility = 'hidden';
      const at = performance.timeOrigin + performance.now();
      document.dispatchEvent(new Event('visibilitychange'));
      return at;
    });
    await page.waitFor((t) => (window as unknown as Win).dewgrid.status().progress.lastPauseAt > t, asked, 10_000);
    latencies.push((await status(page)).progress.lastPauseAt - asked);
    await setHidden(false);
  }
  await page.close();
  return {
    idleBrowserShare,
    shares,
    pauseLatencyMs: { median: median(latencies), p95: quantile(latencies, 0.95), max: Math.max(...latencies), n: latencies.length },
  };
}

export function printThrottleEngines(reports: ThrottleReport[]): void {
  console.log("\n(g) A throttled worker's real CPU share, and pause latency (one long task, in each engine that pauses in place)");
  for (const r of reports) {
    console.log(`  ${r.engine}: browser with the task paused, taken off the OS figures: ${fmt(r.idleBrowserShare * 100)}% of a core`);
    for (const s of r.shares) {
      console.log(`    limit ${fmt(s.limit * 100, 0)}%: OS accounting ${fmt(s.os * 100)}%, worker's own ${fmt(s.worker * 100)}% (off by ${fmt((s.os - s.limit) * 100)} / ${fmt((s.worker - s.limit) * 100)} points)`);
    }
    const p = r.pauseLatencyMs;
    console.log(`    pause latency: median ${fmt(p.median)} ms, p95 ${fmt(p.p95)} ms, max ${fmt(p.max)} ms over ${p.n} pauses`);
  }
}
