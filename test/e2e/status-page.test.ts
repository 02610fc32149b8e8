// The owner's status page in Chromium: no serious or critical axe violations at phone and desktop
// sizes (light and dark), refreshed in place as devices work (and not once paused), with the
// keyboard focus kept; served by the server even where the donor page's service worker runs.
import { describe, expect, it } from 'vitest';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { seriousViolations, VIEWPORTS_AND_SCHEMES } from '../helpers/axe.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';
import { TestDevice } from '../helpers/device.ts';
import { API, type WorkResponse } from '../../src/protocol/index.ts';

const env = useServerAndBrowser('status-page');

async function post(path: string, body: unknown): Promise<unknown> {
  const response = await fetch(env.server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.ok, await response.clone().text()).toBe(true);
  return response.json();
}

describe('status page', () => {
  it('refreshes in place as devices work, keeps the focus, stops when paused, and has no serious axe violations', async () => {
    const request = await publishRequest(env.server.key, 'owner', 3);
    request.batch.name = 'Owner <b>batch</b>';
    await post(API.batches, request);
    const device = await TestDevice.create();
    const { leases } = (await post(API.work, device.work(3))) as WorkResponse;
    await post(API.refusals, await device.refusal({ kind: 'task', leaseId: leases[2]!.leaseId, taskId: leases[2]!.task.manifest.taskId, deviceId: device.deviceId, reason: 'bad-signature', detail: 'signature does not verify' }));

    for (const [viewport, colorScheme] of VIEWPORTS_AND_SCHEMES) {
      const page = await env.browser.newPage({ viewport, colorScheme });
      await page.goto(`${env.server.url}/status`);
      expect(await page.locator('#batches-table tbody tr').count()).toBe(1);
      expect(await seriousViolations(page), `${viewport.width} ${colorScheme}`).toEqual([]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), `${viewport.width}: no sideways scrolling of the page`).toBe(true);
      await page.close();
    }

    const page = await env.browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${env.server.url}/status?refresh=2`);
    expect(await page.locator('#batches-table').textContent()).toContain('Owner <b>batch</b>');
    const bar = page.locator('#batches-table .bar');
    // The refused task waits for another device (one refusal does not end it).
    expect(await bar.getAttribute('aria-label')).toBe('0 of 3 tasks finished (0%): 2 running');
    expect(await page.locator('#refusals-table').textContent()).toContain('bad-signature');
    // The keyboard focus on the batches table survives the swap.
    await page.locator('#batches-table').focus();
    await post(API.results, await device.sign(resultFor(leases[0]!, device.deviceId)));
    await expect.poll(() => bar.getAttribute('aria-label'), { timeout: 10_000 }).toBe('1 of 3 tasks finished (33%): 1 done, 1 running');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('batches-table');

    // Paused: nothing changes any more, though a result arrives.
    await page.getByLabel('Refresh every 2 s').uncheck();
    await post(API.results, await device.sign(resultFor(leases[1]!, device.deviceId)));
    await page.waitForTimeout(4500);
    expect(await bar.getAttribute('aria-label')).toBe('1 of 3 tasks finished (33%): 1 done, 1 running');
    await page.getByLabel('Refresh every 2 s').check();
    await expect.poll(() => bar.getAttribute('aria-label'), { timeout: 10_000 }).toBe('2 of 3 tasks finished (66%): 2 done');
    expect(await page.getByRole('status').textContent()).toBe('');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('is served by the server where the donor page has installed its service worker', async () => {
    const context = await env.browser.newContext();
    const donor = await context.newPage();
    await donor.goto(env.server.url);
    await donor.waitForSelector('html[data-ready="true"]');
    await donor.evaluate(async () => {
      await navigator.serviceWorker.ready;
      // Controlled, so the next navigation goes through the worker's routes.
      if (!navigator.serviceWorker.controller) await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    });
    await donor.goto(`${env.server.url}/status?refresh=30`);
    expect(await donor.locator('h1').textContent()).toBe('Dewgrid status');
    expect(await donor.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    await context.close();
  });
});
