// Acceptance (issue #12, item 2, the client's side): a task this device cannot run (here, its
// worker cannot start: the task runtime's script fails to load) becomes a failure the project sees:
// a signed result with error `device`, its lease let go at once, never counted as done.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { ownerHeaders } from '../helpers/server.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { BatchResults } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('device-failure');
const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));

type Win = { dewgrid: DewgridApi };

describe('a task this device cannot run', () => {
  it('is answered with a signed `device` failure, its lease let go, and not counted as done', async () => {
    // No service worker (it would serve the runtime from its cache), and the task runtime's worker script refused.
    const context = await env.browser.newContext({ serviceWorkers: 'block' });
    await context.route(/\/assets\/runtime-[\w-]+\.js$/, (route) => route.fulfill({ status: 404, body: 'gone' }));
    const page = await context.newPage();
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1 }));
    const { batchId } = await publishBatch(
      env.server.url,
      await buildBatch({ name: 'unrunnable', module: fractal, tasks: [{ args: ['fractal', '32', '32', '0', '0', '32', '32'], env: [], stdin: null, files: [], preopens: [] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key),
      env.server.key,
    );
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());

    let task: BatchResults['tasks'][number] | undefined;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      task = ((await (await fetch(`${env.server.url}/api/batches/${batchId}/results`, { headers: await ownerHeaders(env.server.key, 'read') })).json()) as BatchResults).tasks[0];
      if (task?.error) break;
    }
    expect(task?.error).toMatchObject({ code: 'device', message: expect.stringMatching(/^this device could not run it: Error: the task's worker failed to start/) });
    const status = await page.evaluate(() => (window as unknown as Win).dewgrid.status());
    expect(status.counts).toMatchObject({ done: 0, failed: 1, running: 0 });
    // The lease went with the answer: nothing of it is held on the device.
    const held = await page.evaluate(
      () =>
        new Promise<number>((resolve) => {
          const open = indexedDB.open('dewgrid');
          open.onsuccess = () => {
            const count = open.result.transaction('leases').objectStore('leases').count();
            count.onsuccess = () => resolve(count.result);
          };
        }),
    );
    expect(held).toBe(0);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    await context.close();
  });
});
