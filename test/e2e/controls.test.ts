// window.dewgrid, the automation surface (README): limits are checked, stop stops and keeps
// the cut-short task, start resumes it, the Start button and the API agree.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { openDonorPage, waitForBatch, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('controls');




type Win = { dewgrid: DewgridApi };

describe('window.dewgrid', () => {
  it('checks limits, stops at once, resumes the cut-short task, and finishes the batch', async () => {
    // One long tile (a few seconds at 1 worker) and a short one.
    const request = await buildBatch(
      {
        name: 'controls',
        module: new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url))),
        tasks: [
          { args: ['fractal', '960', '720', '0', '0', '960', '720', '60000'], env: [], stdin: null, files: [], preopens: [] },
          { args: ['fractal', '64', '64', '0', '0', '64', '64'], env: [], stdin: null, files: [], preopens: [] },
        ],
        limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 4 * 2 ** 20 },
        redundancy: 1,
        expiresInMs: 3600_000,
      },
      env.server.key,
    );
    const { batchId } = await publishBatch(env.server.url, request, env.server.key);
    const { page, errors } = await openDonorPage(env.browser, env.server.url);

    const limitErrors = await page.evaluate(() => {
      const api = (window as unknown as Win).dewgrid;
      const attempt = (f: () => unknown) => {
        try {
          f();
          return 'ok';
        } catch (e) {
          return `${(e as Error).name}: ${(e as Error).message}`;
        }
      };
      return [attempt(() => api.setLimits({ cpu: 0.05 })), attempt(() => api.setLimits({ workers: 0 })), attempt(() => api.setLimits({ workers: 999 })), attempt(() => api.setLimits({ cpu: 1, workers: 1 }))];
    });
    expect(limitErrors[0]).toMatch(/^RangeError: cpu must be a number from 0.1 to 1, got 0.05/);
    expect(limitErrors[1]).toMatch(/^RangeError: workers must be a whole number from 1 to \d+, got 0/);
    expect(limitErrors[2]).toMatch(/^RangeError: workers must be a whole number/);
    expect(limitErrors[3]).toBe('ok');
    expect(await page.evaluate(() => (window as unknown as Win).dewgrid.status().limits)).toEqual({ cpu: 1, workers: 1 });

    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1);
    await page.waitForTimeout(300);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    const stopped = await page.evaluate(() => (window as unknown as Win).dewgrid.status());
    expect(stopped.running).toBe(false);
    expect(stopped.counts.running).toBe(0);
    expect(stopped.counts.queued).toBeGreaterThanOrEqual(1); // the cut-short task is kept
    expect(await page.getByRole('button', { name: 'Start' }).isVisible()).toBe(true);
    const before = await (await env.server.owner(`/api/batches/${batchId}`)).json();
    expect(before.counts.done).toBe(0);

    await pressStart(page);
    await waitForBatch(env.server, batchId, (c) => c.done === 2, 120_000);
    expect(errors).toEqual([]);
    await page.close();
  });
});
