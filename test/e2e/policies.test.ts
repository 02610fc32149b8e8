// Acceptance (issues #5 and #17): each policy, driven by emulated signals while a long task runs,
// pauses or slows it (its work counter stops, or goes on at half speed), lets it resume where it
// stopped, and the task finishes with output identical to an undisturbed run; the page says why,
// in the words the policy chose. Signals: a navigator.getBattery stand-in, CDP compute-pressure
// emulation, a document.visibilityState stand-in (Playwright's pages are always visible), real
// pointer moves for "in use", and a program whose pace drops halfway by itself (which is not heat:
// the core's speed check says the core runs as fast as before). Heat itself cannot be emulated in a
// browser (CDP's Emulation.setCPUThrottlingRate slows a page's main thread, and refuses workers:
// "Operation is only supported for pages, not workers"); the governor's tests drive it
// (test/scheduler/governor.test.ts). Compute Pressure, which tells other programs' load from
// Dewgrid's own, is tested in test/alone/pressure.test.ts, with nothing else of the suite running.
// Chromium only: it alone has the Compute Pressure API and a way to drive it (CDP's
// Emulation.setPressureSourceOverrideEnabled / setPressureStateOverride); Firefox and WebKit have
// neither the API nor the Battery Status API, so there the policies run on what remains (the
// slowdown watch, visibility, use of the page), as the engine journeys do (engines-*.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { expectActivity, pressurePage, status } from '../helpers/governed-page.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { runJob } from '../../worker/run-job.ts';
import type { BatchResults, JsonBytes } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';
import { TEST_DIST } from '../global-setup.ts';

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const phases = new Uint8Array(readFileSync(new URL('../fixtures/wasi/phases.wasm', import.meta.url)));
/** About nine seconds of computing at full speed: long enough to live through every policy below. */
const ARGS = ['fractal', '960', '720', '860', '640', '80', '80', '300000'];

type Win = { dewgrid: DewgridApi; battery: EventTarget & { charging: boolean; level: number }; visibility: DocumentVisibilityState };

let server: TestServer;
let browser: Browser;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-policies-'));
  server = await startTestServer({ dataDir: join(work, 'data'), staticDir: TEST_DIST });
  browser = await launchChromium({ computePressure: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The running task's work counter: still over `ms` when paused, moving when running. */
async function workMoves(page: Page, ms = 600): Promise<boolean> {
  const before = (await status(page)).progress.work;
  await page.waitForTimeout(ms);
  const after = (await status(page)).progress.work;
  return after > before;
}

async function expectPausedInPlace(page: Page, running = 1): Promise<void> {
  await page.waitForTimeout(200); // the pause takes hold at the next yield, well within this
  expect(await workMoves(page)).toBe(false);
  expect((await status(page)).counts.running).toBe(running); // held, not killed
}

async function expectRunningAgain(page: Page): Promise<void> {
  await expect.poll(() => workMoves(page, 400), { timeout: 10_000 }).toBe(true);
}

describe('policies on a long task', () => {
  it('battery, a hidden page and the donor using it pause or slow it; its output is that of an undisturbed run', async () => {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      const w = window as unknown as Win;
      const battery = Object.assign(new EventTarget(), { charging: true, level: 0.9 });
      w.battery = battery;
      Object.defineProperty(Navigator.prototype, 'getBattery', { value: () => Promise.resolve(battery), configurable: true });
      w.visibility = 'visible';
      Object.defineProperty(Document.prototype, 'visibilityState', { get: () => w.visibility, configurable: true });
      Object.defineProperty(Document.prototype, 'hidden', { get: () => w.visibility === 'hidden', configurable: true });
    });
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    // Other programs (this suite's other files) are not what this test is about.
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 1, whenHidden: 'pause', backOffWhileInUse: false, backOffForOtherPrograms: false }));

    const { batchId } = await publishBatch(
      server.url,
      await buildBatch({ name: 'long', module: fractal, tasks: [{ args: ARGS, env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key,
    );
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    await expectActivity(page, 'running', /^Running at full speed\./);
    await expectRunningAgain(page);

    // Battery: off the charger (computing only while charging is the default), then back on it.
    await page.evaluate(() => {
      const b = (window as unknown as Win).battery;
      b.charging = false;
      b.dispatchEvent(new Event('chargingchange'));
    });
    await expectActivity(page, 'paused', /^Paused: on battery at 90% \(you chose to compute only while charging\)\./);
    await expectPausedInPlace(page);
    await page.evaluate(() => {
      const b = (window as unknown as Win).battery;
      b.charging = true;
      b.dispatchEvent(new Event('chargingchange'));
    });
    await expectActivity(page, 'running', /^Running at full speed\./);
    await expectRunningAgain(page);

    // The page hidden, with "pause when hidden" chosen; then shown again.
    await page.evaluate(() => {
      (window as unknown as Win).visibility = 'hidden';
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expectActivity(page, 'paused', /^Paused: this page is hidden \(you chose to pause then\)\./, 20_000, false);
    await expectPausedInPlace(page);
    await page.evaluate(() => {
      (window as unknown as Win).visibility = 'visible';
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expectActivity(page, 'running', /^Running at full speed\./);

    // The donor using the page (with "slow down while I use this page" on): half speed, then full again.
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ backOffWhileInUse: true }));
    await page.mouse.move(10, 10);
    await page.mouse.move(200, 120);
    await expectActivity(page, 'throttled', /^Running at 50%: you are using this page\./);
    await expectRunningAgain(page);
    await expectActivity(page, 'running', /^Running at full speed\./);

    await waitForBatch(server, batchId, (counts) => counts.done === 1, 120_000);
    const task = ((await (await server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults).tasks[0]!;
    const undisturbed = runJob({
      taskId: 'reference', engine: 'wasi-preview1', module: new WebAssembly.Module(fractal), args: ARGS, env: [], stdin: new Uint8Array(0), files: [], preopens: [],
      limits: { memoryBytes: 64 * 2 ** 20, outputBytes: 2 ** 20 }, cpu: 1, deterministic: false,
    });
    expect(task.exitCode).toBe(0);
    expect(Buffer.from(bytesOf(task.stdout)).equals(Buffer.from(undisturbed.stdout))).toBe(true);
    // It ran once, on one device, never cut short and restarted.
    expect(task.results).toBe(1);
    expect((await page.locator('.activity li').allTextContents()).join('\n')).not.toMatch(/left from last time/);
    await page.close();
  }, 240_000);
});

describe('heat', () => {
  it('a task that slows down by itself (a new phase of the program) is not heat: the core speed check holds, and it runs on at full speed', async () => {
    const { page } = await pressurePage(browser, server.url);
    // "nominal" throughout, and no back-off for other programs (the suite's other files load the machine).
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 600, backOffWhileInUse: false, backOffForOtherPrograms: false }));
    // About six seconds of the fast loop, then the one that does the same work three times slower per
    // probe. Judged by the task's pace (before this test), that read as heat within seconds.
    const args = ['phases', '1200000000', '400000000'];
    await publishBatch(server.url, await buildBatch({ name: 'phases', module: phases, tasks: [{ args, env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 16 * 2 ** 20, wallTimeMs: 600_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    await expectActivity(page, 'running', /^Running at full speed\./);
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1, null, { timeout: 60_000 });
    // Until the task is done, past its change of pace: every decision is full speed.
    const seen = new Set<string>();
    let work = 0;
    const deadline = Date.now() + 150_000;
    for (;;) {
      const now = await status(page);
      seen.add(now.activity.reason);
      work = Math.max(work, now.progress.work);
      if (now.counts.done >= 1) break;
      expect(Date.now(), 'the phases task did not finish in time').toBeLessThan(deadline);
      await page.waitForTimeout(250);
    }
    expect([...seen]).toEqual(['Running at full speed.']);
    expect(work).toBeGreaterThan(0);
    // The core's speed was checked meanwhile, and held (the settings' details say so).
    const coreSpeed = Number(await page.locator('[data-core-speed]').getAttribute('data-core-speed'));
    expect(coreSpeed).toBeGreaterThan(0.5);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    await page.close();
  }, 240_000);
});

function bytesOf(value: JsonBytes | null): Uint8Array {
  if (value === null) return new Uint8Array(0);
  return typeof value === 'string' ? new TextEncoder().encode(value) : Uint8Array.from(Buffer.from(value.base64, 'base64'));
}
