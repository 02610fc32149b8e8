// Acceptance (issue #2): open the page in Chromium, press Start, the demo batch completes, the
// picture is whole, and `dewgrid results BATCH --json` shows every task done.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { DEMO_IMAGE, demoBatchSpec, demoTiles } from '../../demo/tiles.ts';
import { storedValue, waitForBatch, pressStart } from '../helpers/donor.ts';
import type { BatchResults, DeviceCredit } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('demo');


describe('demo project end to end', () => {
  it('renders the whole picture in the browser and the CLI shows every task done', async () => {
    const tiles = demoTiles();
    const spec = demoBatchSpec(new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url))));
    const { batchId } = await publishBatch(env.server.url, await buildBatch(spec, env.server.key), env.server.key);

    const page = await env.browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const blobFetches: string[] = [];
    page.on('request', (r) => void (r.url().includes('/api/blobs/') && blobFetches.push(r.url())));
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page);
    await waitForBatch(env.server, batchId, (c) => c.done === tiles.length);

    // The picture: every tile drawn, every pixel opaque (undrawn canvas pixels are transparent).
    await page.waitForFunction((n) => document.querySelector('canvas')?.dataset.tiles === String(n), tiles.length);
    const picture = await page.evaluate(() => {
      const canvas = document.querySelector('canvas')!;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let transparent = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 255) transparent++;
      return { width: canvas.width, height: canvas.height, transparent };
    });
    expect(picture).toEqual({ width: DEMO_IMAGE.width, height: DEMO_IMAGE.height, transparent: 0 });
    expect(await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.status().counts.done)).toBe(tiles.length);
    expect(pageErrors).toEqual([]);
    // 108 tasks, one module: fetched once, compiled once.
    expect(blobFetches).toHaveLength(1);

    // Asynchronously: the server runs in this process, so a synchronous child would deadlock it.
    const cli = await promisify(execFile)(process.execPath, ['server/bin/dewgrid.js', 'results', batchId, '--json', '--server', env.server.url, '--data', env.server.dataDir], { maxBuffer: 256 * 2 ** 20 });
    const results = JSON.parse(cli.stdout) as BatchResults;
    expect(results.batchId).toBe(batchId);
    expect(results.tasks).toHaveLength(tiles.length);
    for (const task of results.tasks) {
      expect(task.state, task.taskId).toBe('done');
      expect(task.exitCode, task.taskId).toBe(0);
    }

    // The device's key pair: WebCrypto's Ed25519 here, its private key out of the page's reach.
    const identity = await (await storedValue(page, 'meta', 'identity')).evaluate((stored: { kind?: string; privateKey?: CryptoKey } | undefined) => ({
      kind: stored?.kind,
      extractable: stored?.privateKey?.extractable,
      algorithm: stored?.privateKey?.algorithm.name,
    }));
    expect(identity).toEqual({ kind: 'webcrypto', extractable: false, algorithm: 'Ed25519' });

    // The donor sees the credit the server granted this device's key: all 108 results validated (R = 1).
    const { deviceId } = await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.status());
    const credit = (await (await fetch(`${env.server.url}/api/devices/${deviceId}`)).json()) as DeviceCredit;
    expect(credit.results).toEqual({ valid: tiles.length, invalid: 0, pending: 0, error: 0 });
    expect(credit.validated).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-credit="validated"] dd').textContent(), { timeout: 10_000 }).toBe(credit.validated.toLocaleString('en-US', { maximumFractionDigits: credit.validated < 10 ? 2 : 0 }));

    // After a reload the module comes from IndexedDB: a new batch with the same module fetches no bytes.
    // Published once the reload is done: published before it, the page about to unload could lease
    // its tasks in the moment before (it asks every few seconds) and never store them, and the
    // server leases a task to a device only once.
    blobFetches.length = 0;
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    // Start is remembered until Stop: the reloaded page carries on by itself.
    await page.getByRole('button', { name: 'Stop' }).waitFor();
    const again = await publishBatch(env.server.url, await buildBatch({ ...spec, tasks: spec.tasks.slice(0, 4) }, env.server.key), env.server.key);
    await waitForBatch(env.server, again.batchId, (c) => c.done === 4);
    expect(blobFetches).toEqual([]);
    await page.close();
  });
});
