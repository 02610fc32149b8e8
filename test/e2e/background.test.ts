// Acceptance (issue #17): a donor leaves the tab in the background. A page hidden behind another
// tab (really hidden: Chromium driven without Playwright, whose pages never are; see
// test/helpers/cdp-pipe.ts), its main-thread timers throttled (to once a second; and where
// Chromium's intensive throttling applies, which the flag below starts after 10 s instead of 5
// minutes, to once a minute), goes on at full speed by default, keeps the leases it holds alive and
// its results going out: its work supply waits on a worker's timers (src/scheduler/clock.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PipeBrowser, type PipePage } from '../helpers/cdp-pipe.ts';
import { ownerHeaders, startTestServer, type TestServer } from '../helpers/server.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { Status } from '../../src/scheduler/controller.ts';
import { TEST_DIST } from '../global-setup.ts';

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));

let server: TestServer;
let browser: PipeBrowser;
let work: string;
const requests: { at: number; url: string }[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-background-'));
  server = await startTestServer({ dataDir: join(work, 'data'), staticDir: TEST_DIST, onRequest: (method, url) => void (method === 'POST' && requests.push({ at: Date.now(), url })) });
  browser = await PipeBrowser.launch(['--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10'], join(work, 'profile'));
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

const status = (page: PipePage) => page.evaluate<Status>('window.dewgrid.status()');

describe('a hidden page', () => {
  it('goes on at full speed by default, and takes and sends work while its main-thread timers are throttled', async () => {
    const page = await browser.newPage(server.url);
    await page.waitFor(`document.documentElement.dataset.ready === 'true'`);
    // One task at a time, of about two seconds each; other test files may load the machine meanwhile.
    await page.evaluate(`window.dewgrid.setSettings({ workers: 1, backOffForOtherPrograms: false })`);
    expect((await status(page)).settings.whenHidden).toBe('run');
    const tasks = Array.from({ length: 120 }, () => ({ args: ['fractal', '960', '720', '860', '640', '80', '80', '60000'], env: [], stdin: null, files: [], preopens: [] }));
    const { batchId } = await publishBatch(server.url, await buildBatch({ name: 'background', module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
    await page.evaluate('window.dewgrid.start()');
    await page.waitFor('window.dewgrid.status().counts.running === 1');
    // A chain of main-thread timers, to see what throttling the page is under.
    await page.evaluate(`(() => { window.gaps = []; window.lastTick = performance.now(); const tick = () => { const now = performance.now(); gaps.push(now - lastTick); lastTick = now; setTimeout(tick, 100); }; tick(); })()`);

    await browser.newPage(); // another tab in front: this one is hidden
    expect(await page.evaluate('document.visibilityState')).toBe('hidden');
    await new Promise((resolve) => setTimeout(resolve, 15_000)); // past the 10 s before intensive throttling
    const before = await status(page);
    const from = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 45_000));
    const after = await status(page);
    const seconds = (Date.now() - from) / 1000;

    // The page's own timers were throttled: its 100 ms chain ran about once a second, or less.
    const gaps = await page.evaluate<number[]>(`gaps.slice(-30)`);
    expect(gaps.length).toBeGreaterThan(10);
    expect(gaps.sort((a, b) => a - b)[Math.floor(gaps.length / 2)]).toBeGreaterThan(900);
    // Yet the task's worker computed nearly all the time (its own accounting), and tasks came and went.
    const busyShare = (after.computed.busyMs - before.computed.busyMs) / 1000 / seconds;
    expect(busyShare).toBeGreaterThan(0.8);
    expect(after.activity).toMatchObject({ state: 'running', reason: 'Running at full speed.' });
    expect(after.counts.done).toBeGreaterThan(before.counts.done + 3);
    // The results reached the server while hidden, and new work came in. (No lease needed renewing:
    // a lease is renewed only while its task shows progress, and a two-second task ends well within
    // its lease's first term; the lease keeper's timing is test/scheduler/lease-keeper.test.ts's.)
    const hidden = requests.filter((r) => r.at >= from);
    expect(hidden.filter((r) => r.url === '/api/results').length).toBeGreaterThan(3);
    expect(hidden.filter((r) => r.url === '/api/work').length).toBeGreaterThan(0);
    const done = ((await (await fetch(`${server.url}/api/batches/${batchId}`, { headers: await ownerHeaders(server.key, 'read') })).json()) as { counts: { done: number } }).counts.done;
    expect(done).toBeGreaterThan(3);
    await page.evaluate('window.dewgrid.stop()');
  });
});
