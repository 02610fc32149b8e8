// The owner's side with a real donor in Chromium (issue #15): `dewgrid results --follow` prints each
// result as the page computes it; the demo keeps going (the picture near the top, a grid of empty
// tiles filled tile by tile, and the next picture on a donor's request); a fresh device logs no 404.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { ownerFetch, startTestServer, type TestServer } from '../helpers/server.ts';
import { openDonorPage, pressStart, waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { CLI } from '../helpers/cli.ts';
import { API, type BatchStatus, type DemoState } from '../../src/protocol/index.ts';
import { DEMO_IMAGE } from '../../demo/tiles.ts';
import { TEST_DIST } from '../global-setup.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
type Win = { dewgrid: DewgridApi };

let work: string;
let browser: Browser;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-owner-'));
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Errors the page logged, and responses it got that were not OK (a 404 shows in the console as an error). */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  return problems;
}

describe('dewgrid results --follow', () => {
  let server: TestServer;
  /** Requests for a batch's event stream, as the server saw them arrive. */
  const followers: string[] = [];
  beforeAll(async () => {
    server = await startTestServer({ dataDir: join(work, 'follow'), staticDir: TEST_DIST, onRequest: (method, url) => void (url.includes('/events') && followers.push(url)) });
  });
  afterAll(() => server?.close());

  it('prints each result as the donor page computes it, then exits 0', async () => {
    // Twelve tiles that each take a moment, one at a time: results arrive over seconds.
    const tasks = Array.from({ length: 12 }, (_, i) => ({ args: ['fractal', '640', '480', String((i % 4) * 160), String(Math.floor(i / 4) * 160), '160', '160', '8000'], env: [] as [string, string][], stdin: null, files: [], preopens: [] }));
    const { batchId } = await publishBatch(server.url, await buildBatch({ name: 'follow', module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);

    const lines: { text: string; at: number; doneThen: Promise<number> }[] = [];
    const follow = spawn(process.execPath, [CLI, 'results', batchId, '--follow', '--server', server.url, '--data', server.dataDir]);
    let buffer = '';
    let stderr = '';
    follow.stderr.on('data', (chunk) => (stderr += chunk));
    follow.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (let at = buffer.indexOf('\n'); at !== -1; at = buffer.indexOf('\n')) {
        const text = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        // How many tasks the server had finished when this line came: fewer than all, for the early ones.
        const doneThen = text.startsWith(`${batchId}-`) ? ownerFetch(server, API.batch(batchId)).then(async (r) => ((await r.json()) as BatchStatus).counts.done) : Promise.resolve(-1);
        lines.push({ text, at: Date.now(), doneThen });
      }
    });
    const exited = new Promise<number>((resolve) => follow.on('exit', (code) => resolve(code ?? -1)));
    // The CLI is following before the donor starts (Node starting on a busy machine takes a while).
    await expect.poll(() => followers.length, { timeout: 60_000 }).toBe(1);

    const { page } = await openDonorPage(browser, server.url);
    await page.evaluate(() => (window as unknown as Win).dewgrid.setLimits({ workers: 1 }));
    await pressStart(page);
    expect(await exited, stderr).toBe(0);

    const taskLines = lines.filter((l) => l.text.startsWith(`${batchId}-`));
    expect(taskLines.map((l) => l.text.split('  ')[0]).sort()).toEqual(tasks.map((_, i) => `${batchId}-${i}`).sort());
    for (const l of taskLines) expect(l.text).toMatch(/^\S+ {2}done {2}exit 0 {2}quorum 1\/1 agreeing \(1 result, 1 output\)$/);
    // As they arrived: the first line came while most of the batch was still to do.
    expect(await taskLines[0]!.doneThen).toBeLessThan(tasks.length / 2);
    expect(taskLines.at(-1)!.at - taskLines[0]!.at).toBeGreaterThan(500);
    expect(stderr).toBe('');
    await page.close();
  });
});

describe('the demo keeps going', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ dataDir: join(work, 'demo'), staticDir: TEST_DIST, demo: true });
  });
  afterAll(() => server?.close());

  const demoState = async (): Promise<DemoState> => (await fetch(server.url + API.demo)).json();

  it('shows the picture near the top as a grid of empty tiles, fills it, and renders another on request', async () => {
    expect((await fetch(server.url + API.demoNext, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    const first = await demoState();
    expect(first).toMatchObject({ number: 1, name: 'Spiral', tasks: 108, finished: 0, canAskForNext: false, image: DEMO_IMAGE });

    // A phone: the picture starts on the first screen.
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.goto(server.url);
    await phone.waitForSelector('.picture:not([hidden])');
    expect((await phone.locator('.picture').boundingBox())!.y).toBeLessThan(844);
    await phone.close();

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = watch(page);
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    // Before any tile: the empty grid, already the picture's size, and the picture's name.
    const picture = page.locator('.picture');
    await expect.poll(() => picture.locator('figcaption').textContent()).toMatch(/^Picture 1: Spiral\. 0 tiles computed on this device; 0 of 108 done by every device\.$/);
    const canvas = page.locator('.picture canvas');
    expect(await canvas.evaluate((c: HTMLCanvasElement) => [c.width, c.height, getComputedStyle(c).backgroundImage.includes('linear-gradient'), c.style.getPropertyValue('--cols')])).toEqual([960, 720, true, '12']);
    // On a desktop, the whole picture without scrolling.
    const box = (await picture.boundingBox())!;
    expect(box.y).toBeLessThan(200);
    expect(box.y + box.height).toBeLessThanOrEqual(800);
    expect(await page.evaluate(() => scrollY)).toBe(0);

    await pressStart(page);
    // Tile by tile: the count grows one by one, not all at the end.
    await expect.poll(() => canvas.getAttribute('data-tiles'), { timeout: 60_000 }).not.toBe('0');
    const partly = Number(await canvas.getAttribute('data-tiles'));
    expect(partly).toBeLessThan(108);
    await waitForBatch(server, first.batchId, (c) => c.done === 108, 120_000);
    await expect.poll(() => canvas.getAttribute('data-tiles'), { timeout: 30_000 }).toBe('108');

    // Finished: the donor asks for the next picture; the server publishes it, signed with the demo key.
    const next = page.getByRole('button', { name: 'Render another picture' });
    await next.waitFor({ timeout: 30_000 });
    await next.click();
    await expect.poll(() => picture.locator('figcaption').textContent(), { timeout: 15_000 }).toMatch(/^Picture 2: Seahorse valley\. \d+ tiles computed on this device; \d+ of 108 done by every device\.$/);
    const second = await demoState();
    expect(second).toMatchObject({ number: 2, name: 'Seahorse valley', tasks: 108 });
    expect(second.batchId).not.toBe(first.batchId);
    expect(await canvas.getAttribute('data-batch')).toBe(second.batchId);
    const batches = (await (await ownerFetch(server, API.batches)).json()) as BatchStatus[];
    expect(batches.map((b) => b.name)).toEqual(['Mandelbrot demo', 'Mandelbrot demo 2: Seahorse valley']);
    // The new picture's tiles come in too, and its tasks carry the new view.
    await expect.poll(() => canvas.getAttribute('data-tiles'), { timeout: 60_000 }).not.toBe('0');
    const [task] = (await (await ownerFetch(server, `${API.batchResults(second.batchId)}?tasks=${second.batchId}-0`)).json()).tasks;
    expect(task.args).toEqual(['fractal', '960', '720', '0', '0', '80', '80', '1500', '-0.7453', '0.1127', '0.0065', '1']);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    // A fresh device asks for its credit before the server has met it: no 404, no error.
    expect(problems).toEqual([]);
    await page.close();
  });
});
