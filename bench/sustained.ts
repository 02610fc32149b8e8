/**
 * (p) Donating for hours: `npm run bench -- sustained` (issue #17). Real Chromium (headless, the
 * tests' flags, Compute Pressure on as browsers ship it), no pressure or battery emulation, the
 * client's default settings (every core, full speed, "go on" when hidden), a batch of long tasks.
 * Two phases of DEWGRID_SUSTAINED_SECONDS each (or `--seconds=N`; default 600): the page in front,
 * then hidden behind another tab (Chromium driven over a pipe without Playwright, whose pages are
 * never hidden: test/helpers/cdp-pipe.ts). For each: the cores the browser used (utime + stime of
 * every thread of its processes, /proc), against the cores the settings allow; the other programs'
 * load over the same time (the machine's busy time less the browser's: an idle machine is the
 * premise); and every reason the state line gave, with how long it held.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../test/helpers/build.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { PipeBrowser, type PipePage } from '../test/helpers/cdp-pipe.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import type { Status } from '../src/scheduler/controller.ts';
import { cpuWindow, formatCpuUse, machineBusySeconds, type CpuUse } from './proc-cpu.ts';
import { fmt } from './stats.ts';

export interface SustainedPhase {
  name: 'visible' | 'hidden';
  seconds: number;
  /** Cores the settings allow: tasks at once times the CPU share each. */
  allowed: number;
  browser: CpuUse;
  /** Cores the rest of the machine used meanwhile. */
  others: number;
  /** Each reason the state line gave, and for how many seconds. */
  reasons: { reason: string; seconds: number }[];
  tasksDone: number;
  /** The core speed check (heat) at its least and its median over the phase, as shares of the best; null without checks. */
  coreSpeed: { least: number; median: number } | null;
}

export interface SustainedReport {
  cores: number;
  phases: SustainedPhase[];
}

const POLL_MS = 2000;

/** The duration of each phase, seconds: `--seconds=N` on the command line, else DEWGRID_SUSTAINED_SECONDS, else 600. */
export function sustainedSeconds(argv: string[] = process.argv): number {
  const flag = argv.find((a) => a.startsWith('--seconds='));
  const value = Number(flag ? flag.slice('--seconds='.length) : (process.env.DEWGRID_SUSTAINED_SECONDS ?? 600));
  if (!(value >= 10)) throw new RangeError(`the sustained benchmark's phases last at least 10 seconds, got ${flag ?? process.env.DEWGRID_SUSTAINED_SECONDS}`);
  return value;
}

export async function benchSustained(seconds = sustainedSeconds()): Promise<SustainedReport> {
  const outDir = join(tmpdir(), 'dewgrid-bench-sustained-dist');
  await buildClient(outDir);
  const work = mkdtempSync(join(tmpdir(), 'dewgrid-bench-sustained-'));
  const server = await startTestServer({ dataDir: join(work, 'data'), staticDir: outDir });
  const browser = await PipeBrowser.launch([], join(work, 'profile'));
  try {
    const page = await browser.newPage(server.url);
    await page.waitFor(`document.documentElement.dataset.ready === 'true'`);
    const cores = await page.evaluate<number>('navigator.hardwareConcurrency');
    // Tiles inside the set at 900 000 iterations: about half a minute each at full speed; enough
    // for both phases on every core, and some to spare.
    const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
    const count = Math.ceil((2 * seconds * cores) / 20) + 4 * cores;
    const tasks = Array.from({ length: count }, () => ({ args: ['fractal', '960', '720', '860', '640', '80', '80', '900000'], env: [], stdin: null, files: [], preopens: [] }));
    await publishBatch(server.url, await buildBatch({ name: 'sustained', module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 3_600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 6 * 3600_000 }, server.key), server.key);
    // The defaults, untouched: start as a donor would.
    await page.evaluate('window.dewgrid.start()');
    const { settings } = await page.evaluate<Status>('window.dewgrid.status()');
    await page.waitFor(`window.dewgrid.status().counts.running === ${settings.workers}`, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // past the start: the workers compute

    const phases: SustainedPhase[] = [];
    phases.push(await measure(page, 'visible', seconds, settings.workers * settings.cpu));
    const other = await browser.newPage(); // another tab in front: the donor works elsewhere
    if ((await page.evaluate<string>('document.visibilityState')) !== 'hidden') throw new Error('the page did not become hidden behind another tab');
    phases.push(await measure(page, 'hidden', seconds, settings.workers * settings.cpu));
    await page.activate();
    void other;
    await page.evaluate('window.dewgrid.stop()');
    return { cores, phases };
  } finally {
    await browser.close();
    await server.close();
    rmSync(work, { recursive: true, force: true });
  }
}

async function measure(page: PipePage, name: SustainedPhase['name'], seconds: number, allowed: number): Promise<SustainedPhase> {
  const reasons = new Map<string, number>();
  const startDone = (await page.evaluate<Status>('window.dewgrid.status()')).counts.done;
  const window = cpuWindow();
  const machine0 = machineBusySeconds();
  const started = performance.now();
  let last = started;
  let lastReason = (await page.evaluate<Status>('window.dewgrid.status()')).activity.reason;
  const speeds: number[] = [];
  while (performance.now() - started < seconds * 1000) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, seconds * 1000 - (performance.now() - started))));
    const now = performance.now();
    reasons.set(lastReason, (reasons.get(lastReason) ?? 0) + (now - last) / 1000);
    last = now;
    const status = await page.evaluate<Status>('window.dewgrid.status()');
    lastReason = status.activity.reason;
    if (status.load.coreSpeed !== null) speeds.push(status.load.coreSpeed);
  }
  const browser = window.end();
  const sorted = speeds.sort((a, b) => a - b);
  const coreSpeed = sorted.length ? { least: sorted[0]!, median: sorted[Math.floor(sorted.length / 2)]! } : null;
  const others = Math.max(0, (machineBusySeconds() - machine0) / browser.seconds - browser.total);
  const tasksDone = (await page.evaluate<Status>('window.dewgrid.status()')).counts.done - startDone;
  return { name, seconds: browser.seconds, allowed, browser, others, reasons: [...reasons].map(([reason, s]) => ({ reason, seconds: s })).sort((a, b) => b.seconds - a.seconds), tasksDone, coreSpeed };
}

export function printSustained(r: SustainedReport): void {
  console.log(`\n(p) Donating for hours: default settings, real Chromium, no emulation (${r.cores} cores)`);
  for (const p of r.phases) {
    const ratio = p.browser.total / p.allowed;
    console.log(`  ${p.name}, ${fmt(p.seconds, 0)} s: the browser used ${fmt(p.browser.total, 2)} cores of ${fmt(p.allowed, 2)} allowed: ${fmt(ratio, 2)}x (target >= 0.90${ratio >= 0.9 ? '' : ', MISSED'}); ${p.tasksDone} tasks done`);
    console.log(`    by thread group: ${formatCpuUse(p.browser)}`);
    console.log(`    other programs meanwhile: ${fmt(p.others, 2)} cores${p.others > 0.1 * r.cores ? ' (the machine was not idle: the figure above says little)' : ''}`);
    if (p.coreSpeed) console.log(`    core speed check (heat): median ${fmt(p.coreSpeed.median, 2)}, least ${fmt(p.coreSpeed.least, 2)} of the best (hot: under 0.75, four windows in a row)`);
    for (const { reason, seconds } of p.reasons) console.log(`    ${fmt(seconds, 0).padStart(5)} s  ${reason}`);
  }
}
