// A new version waiting in the service worker is offered; applying it lets the running task
// finish and deliver first, then the page reloads into the new version and carries on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitForAsync, waitForBatch, pressStart } from '../helpers/donor.ts';
import { TEST_DIST } from '../global-setup.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { DewgridApi } from '../../src/app/api.ts';

let server: TestServer;
let browser: Browser;
let work: string;
let staticDir: string;

beforeAll(async () => {
  // Its own copy of the build: the test changes the service worker to make a "new version".
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-update-'));
  staticDir = join(work, 'static');
  cpSync(TEST_DIST, staticDir, { recursive: true });
  server = await startTestServer({ dataDir: join(work, 'data'), staticDir });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

type Win = { dewgrid: DewgridApi };

describe('updates', () => {
  it('applies a new version only after the running task has finished and delivered', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await waitForAsync(page, async () => (await navigator.serviceWorker.ready) && navigator.serviceWorker.controller !== null, null);

    // One task of several seconds: longer than installing the new version takes on a loaded machine.
    const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
    const { batchId } = await publishBatch(
      server.url,
      await buildBatch(
        { name: 'update', module: fractal, tasks: [{ args: ['fractal', '960', '720', '860', '640', '80', '80', '300000'], env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 },
        server.key,
      ), server.key,
    );
    // The suite's other files are other programs to this page; backing off for them is not what this test is about.
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ backOffForOtherPrograms: false }));
    await pressStart(page); // a donor's click: Start is remembered across reloads
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1);

    // A new version: any byte of sw.js changed makes the browser install it and hold it waiting.
    appendFileSync(join(staticDir, 'sw.js'), '\n// next version\n');
    await page.evaluate(async () => void (await (await navigator.serviceWorker.ready).update()));
    await page.getByRole('button', { name: 'Update' }).click();
    await page.getByText('Finishing the running tasks, then updating').waitFor({ timeout: 5000 });

    // The page reloads only after the task's result reached the server.
    const reloaded = page.waitForEvent('load', { timeout: 60_000 });
    await waitForBatch(server, batchId, (c) => c.done === 1, 60_000);
    await reloaded;
    await page.waitForSelector('html[data-ready="true"]');
    const scriptUrl = await page.evaluate(async () => {
      const sw = navigator.serviceWorker.controller;
      const text = sw ? await (await fetch(sw.scriptURL)).text() : '';
      return text.includes('next version');
    });
    expect(scriptUrl).toBe(true);
    // Had the page reloaded mid-task, the new version would have picked the task up again.
    expect((await page.locator('.activity li').allTextContents()).join('\n')).not.toMatch(/left from last time/);
    // Start was remembered: the new version carries on.
    expect(await page.evaluate(() => (window as unknown as Win).dewgrid.status().running)).toBe(true);
    const results = await (await server.owner(`/api/batches/${batchId}/results`)).json();
    expect(results.tasks[0]).toMatchObject({ state: 'done', exitCode: 0, results: 1 });
    await page.close();
  });
});
