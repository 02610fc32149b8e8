// Acceptance (issue #12, item 2): a task this device cannot run (here, its worker cannot start:
// the task runtime's script fails to load) becomes a failure the project sees: a signed result with
// error `device`, its lease let go at once, never counted as done on the device; on the server it
// is not counted against the task, the status page and `dewgrid status` show it, and the task is
// never leased to that device again.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { ownerHeaders } from '../helpers/server.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { API, type BatchResults, type BatchStatus } from '../../src/protocol/index.ts';
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
    const workRequests: number[] = [];
    page.on('request', (request) => void (request.url().endsWith(API.work) && workRequests.push(Date.now())));
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

    // On the server: the lease answered, nothing counted against the task, which waits for another device.
    const deviceId = status.deviceId;
    const taskId = `${batchId}-0`;
    const batch = (await (await fetch(env.server.url + API.batch(batchId), { headers: await ownerHeaders(env.server.key, 'read') })).json()) as BatchStatus;
    expect(batch.counts).toMatchObject({ queued: 1, running: 0, failed: 0, done: 0 });
    expect(batch.reports).toMatchObject({ deviceFailures: 1, errors: 0 });
    expect(batch.failures).toMatchObject([{ taskId, deviceId, code: 'device', newDevice: true }]);
    // The page keeps asking for work; the server never gives it that task again.
    const asked = workRequests.length;
    await expect.poll(() => workRequests.length, { timeout: 60_000 }).toBeGreaterThan(asked + 1);
    const [leased] = await env.server.app.store.tasks(batchId);
    expect(leased).toMatchObject({ leases: 1, live: 0, state: 'queued' });
    // The owner sees it on the status page and in `dewgrid status`.
    const statusPage = await (await fetch(`${env.server.url}/status`, { headers: await ownerHeaders(env.server.key, 'read') })).text();
    expect(statusPage).toContain('the device could not prepare or run it');
    expect(statusPage).toContain(deviceId);
    const { stdout } = await promisify(execFile)(process.execPath, ['server/bin/dewgrid.js', 'status', batchId, '--server', env.server.url, '--data', env.server.dataDir]);
    expect(stdout).toContain(`could not prepare or run ${taskId} on new device ${deviceId}: device: this device could not run it`);
    expect(stdout).toMatch(/reports: 1 device failure, 1 of them from new devices/);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    await context.close();
  });
});
