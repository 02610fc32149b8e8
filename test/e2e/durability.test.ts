// Results a device paid for are never lost or counted twice: offline running with an outbox,
// and a page closed in the middle of a task.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { waitForAsync, waitForBatch, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { DewgridApi } from '../../src/app/api.ts';
import type { BatchResults } from '../../src/protocol/index.ts';
import { runUnderNodeWasi } from '../helpers/node-wasi.ts';
import { NEW_DEVICE_LEASES } from '../../server/store/rules.ts';

const env = useServerAndBrowser('durability');

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));


// A failed test must not leave the server down for the next one.
afterEach(async () => {
  await env.server.start();
});


type Win = { dewgrid: DewgridApi };
const status = (page: import('playwright-core').Page) => page.evaluate(() => (window as unknown as Win).dewgrid.status());

/** Tasks of a known cost: the same tile at the corner of the demo view that lies inside the set, where every pixel runs to `maxIter`. */
async function publishTiles(name: string, count: number, maxIter: string) {
  const tasks = Array.from({ length: count }, () => ({ args: ['fractal', '960', '720', '900', '680', '40', '40', maxIter], env: [] as [string, string][], stdin: null, files: [], preopens: [] }));
  return publishBatch(
    env.server.url,
    await buildBatch({ name, module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key), env.server.key,
  );
}

/**
 * The network goes away: the browser is offline and the server is unreachable. (Chromium's
 * offline emulation does not cover requests a service worker passes through, so the server
 * goes down too.)
 */
async function goOffline(context: import('playwright-core').BrowserContext) {
  await context.setOffline(true);
  await env.server.stop();
}

async function goOnline(context: import('playwright-core').BrowserContext) {
  await env.server.start();
  await context.setOffline(false);
}

/** Every task done, each with exactly one stored result. */
async function expectExactlyOnce(batchId: string, count: number) {
  const results = (await (await env.server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults;
  expect(results.tasks).toHaveLength(count);
  for (const task of results.tasks) {
    expect(task.state, task.taskId).toBe('done');
    expect(task.results, task.taskId).toBe(1);
  }
}

describe('no lost results', () => {
  it('keeps running offline from its buffer, holds results in the outbox, and sends them all when back online', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    const { batchId } = await publishTiles('offline', 10, '100000');
    await page.evaluate(() => (window as unknown as Win).dewgrid.setLimits({ workers: 1 }));
    await pressStart(page); // a donor's click: Start is remembered across reloads
    // Wait until the device holds as many tasks as the server gives a new device (its allowance
    // grows with its validated results: server/store/rules.ts) and its module is fetched (a task
    // has run: on a busy machine the prefetch can lag the leases), then cut the network.
    await page.waitForFunction((allowance) => {
      const s = (window as unknown as Win).dewgrid.status();
      return s.counts.queued + s.counts.running >= allowance && s.counts.done >= 1;
    }, NEW_DEVICE_LEASES);
    await goOffline(context);
    // Measured once offline: a result finished just before the cut may still be on its way out.
    const atCut = (await status(page)).counts;
    await page.waitForFunction((unsent) => (window as unknown as Win).dewgrid.status().counts.unsent >= unsent + 3, atCut.unsent, { timeout: 60_000 });
    const offline = await status(page);
    expect(offline.counts.done).toBeGreaterThanOrEqual(atCut.done + 3); // computed offline, waiting to be sent
    await goOnline(context);
    await waitForBatch(env.server, batchId, (c) => c.done === 10, 90_000);
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.unsent === 0);
    await expectExactlyOnce(batchId, 10);
    await context.close();
  });

  it('reloads while offline from the service worker and carries on; every result arrives once back online', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await waitForAsync(page, async () => (await navigator.serviceWorker.ready) && navigator.serviceWorker.controller !== null, null);
    const { batchId } = await publishTiles('offline-reload', 10, '100000');
    await page.evaluate(() => (window as unknown as Win).dewgrid.setLimits({ workers: 1 }));
    await pressStart(page); // a donor's click: Start is remembered across reloads
    await page.waitForFunction((allowance) => {
      const s = (window as unknown as Win).dewgrid.status();
      return s.counts.queued + s.counts.running >= allowance && s.counts.done >= 1;
    }, NEW_DEVICE_LEASES);
    await goOffline(context);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.unsent >= 2, null, { timeout: 60_000 });
    expect((await status(page)).running).toBe(true);
    await goOnline(context);
    await waitForBatch(env.server, batchId, (c) => c.done === 10, 90_000);
    await expectExactlyOnce(batchId, 10);
    await context.close();
  });

  it('loses nothing when the server restarts in the middle of a batch', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    const { batchId } = await publishTiles('restart', 8, '100000');
    await pressStart(page); // a donor's click: Start is remembered across reloads
    await waitForBatch(env.server, batchId, (c) => (c.done ?? 0) >= 2);
    await env.server.stop();
    await page.waitForTimeout(1500);
    await env.server.start();
    await waitForBatch(env.server, batchId, (c) => c.done === 8, 90_000);
    await expectExactlyOnce(batchId, 8);
    await context.close();
  });

  it('picks up a task cut off by closing the page, and the server counts it once', async () => {
    const context = await env.browser.newContext();
    let page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    const { batchId } = await publishTiles('closed', 2, '600000');
    await page.evaluate(() => (window as unknown as Win).dewgrid.setLimits({ workers: 1 }));
    await pressStart(page); // a donor's click: Start is remembered across reloads
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1);
    await page.close(); // mid-task: the worker dies with the page
    page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await page.waitForFunction(() => document.body.textContent?.includes('left from last time'));
    await waitForBatch(env.server, batchId, (c) => c.done === 2, 120_000);
    await expectExactlyOnce(batchId, 2);
    await context.close();
  });

  it('resumes a cut-off task from its checkpoint folder; stdout matches an uninterrupted run', async () => {
    const wasm = new Uint8Array(readFileSync(new URL('../fixtures/wasi/checkpointed.wasm', import.meta.url)));
    const args = ['checkpointed', '20', '100000000'];
    const { batchId } = await publishBatch(
      env.server.url,
      await buildBatch({ name: 'checkpointed', module: wasm, tasks: [{ args, env: [], stdin: null, files: [], preopens: ['/checkpoint'] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key), env.server.key,
    );
    const context = await env.browser.newContext();
    let page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page); // a donor's click: Start is remembered across reloads
    // Wait until the client holds a checkpoint a few steps in, then cut the run off.
    await waitForAsync(
      page,
      () =>
        new Promise<boolean>((resolve) => {
          const open = indexedDB.open('dewgrid');
          open.onsuccess = () => {
            const all = open.result.transaction('checkpoints').objectStore('checkpoints').getAll();
            all.onsuccess = () => {
              const state = all.result[0]?.files['/checkpoint/state'] as Uint8Array | undefined;
              open.result.close();
              resolve(state !== undefined && Number(new TextDecoder().decode(state).split(' ')[0]) >= 3);
            };
          };
        }),
      null,
      60_000,
    );
    await page.close();
    page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await waitForBatch(env.server, batchId, (c) => c.done === 1, 120_000);
    const results = (await (await env.server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults;
    const task = results.tasks[0]!;
    const reference = await runUnderNodeWasi(wasm, { args, env: [], stdin: new Uint8Array(0), files: [], preopens: ['/checkpoint'], maxStdoutBytes: 2 ** 20, maxStderrBytes: 2 ** 20, maxOutputFileBytes: 2 ** 20 });
    expect(task.stdout).toBe(new TextDecoder().decode(reference.stdout));
    expect(task.stderr).toMatch(/^resumed at step ([3-9]|1\d)\n$/);
    expect(task.files).toEqual([]); // checkpoint files are the client's, not results
    expect(await page.locator('.activity li').allTextContents()).toContainEqual(expect.stringMatching(/Resuming checkpointed .* from its checkpoint/));
    await expectExactlyOnce(batchId, 1);
    await context.close();
  });
});
