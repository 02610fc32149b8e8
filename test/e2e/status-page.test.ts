// The owner's status page in Chromium: no serious or critical axe violations at phone and desktop
// sizes (light and dark), fitting both (every column on a desktop; sideways scrolling with a cue on
// a phone, never the page), a favicon, refreshed in place as devices work (and not once paused),
// with the keyboard focus kept; opened as the owner from a link; served by the server even where
// the donor page's service worker runs.
import { describe, expect, it } from 'vitest';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { seriousViolations, VIEWPORTS_AND_SCHEMES } from '../helpers/axe.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';
import { TestDevice } from '../helpers/device.ts';
import { API, signOwnerToken, type WorkResponse } from '../../src/protocol/index.ts';
import { ownerHeaders } from '../helpers/server.ts';
import type { BrowserContext } from 'playwright-core';

const env = useServerAndBrowser('status-page');

async function post(path: string, body: unknown): Promise<unknown> {
  const response = await fetch(env.server.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(await ownerHeaders(env.server.key)) }, body: JSON.stringify(body) });
  expect(response.ok, await response.clone().text()).toBe(true);
  return response.json();
}

/** A browser context that opened the page as the owner, from a link (the token then lives in a cookie). */
async function ownerContext(options: Parameters<typeof env.browser.newContext>[0] = {}): Promise<BrowserContext> {
  const context = await env.browser.newContext(options);
  const token = await signOwnerToken(env.server.key, { scope: 'read', lifetimeMs: 3600_000 });
  const page = await context.newPage();
  await page.goto(`${env.server.url}/status?token=${token}`);
  expect(page.url()).toBe(`${env.server.url}/status`); // the token is out of the address bar
  await page.close();
  return context;
}

describe('status page', () => {
  it('refreshes in place as devices work, keeps the focus, stops when paused, and has no serious axe violations', async () => {
    const request = await publishRequest(env.server.key, 'owner', 3);
    request.batch.name = 'Owner <b>batch</b>';
    await post(API.batches, request);
    const device = await TestDevice.create();
    const { leases } = (await post(API.work, device.work(3))) as WorkResponse;
    await post(API.refusals, await device.refusal({ kind: 'task', leaseId: leases[2]!.leaseId, taskId: leases[2]!.task.manifest.taskId, deviceId: device.deviceId, reason: 'bad-signature', detail: 'signature does not verify' }));

    for (const [viewport, colorScheme] of [...VIEWPORTS_AND_SCHEMES, [{ width: 1280, height: 800 }, 'light'] as const]) {
      const context = await ownerContext({ viewport, colorScheme });
      const page = await context.newPage();
      await page.goto(`${env.server.url}/status`);
      expect(await page.locator('#batches-table tbody tr').count()).toBe(1);
      expect(await seriousViolations(page), `${viewport.width} ${colorScheme}`).toEqual([]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), `${viewport.width}: no sideways scrolling of the page`).toBe(true);
      // Each table: on a desktop every column shows; on a phone it may scroll sideways, and then says so.
      const tables = await page.locator('.scroll').evaluateAll((regions) =>
        regions.map((r) => ({ id: r.id, overflows: r.scrollWidth > r.clientWidth + 1, cue: getComputedStyle(r.querySelector('.scroll-note')!).display !== 'none' })),
      );
      expect(tables.map((t) => t.id)).toEqual(['batches-table', 'devices-table', 'refusals-table']);
      for (const t of tables) {
        if (viewport.width >= 1280) expect(t.overflows, `${t.id} at ${viewport.width}`).toBe(false);
        else if (t.overflows) expect(t.cue, `${t.id} at ${viewport.width}: scrolls, and says so`).toBe(true);
      }
      await context.close();
    }

    const page = await (await ownerContext()).newPage();
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
    // Not the owner here: the totals only.
    expect(await donor.locator('#totals').textContent()).toMatch(/^1 batch; tasks: /);
    expect(await donor.locator('#batches-table').count()).toBe(0);
    // The favicon the page names, served.
    const icon = await donor.evaluate(async () => {
      const href = document.querySelector<HTMLLinkElement>('link[rel="icon"]')!.href;
      const response = await fetch(href);
      return { href: new URL(href).pathname, status: response.status, type: response.headers.get('content-type') };
    });
    expect(icon).toEqual({ href: '/favicon.ico', status: 200, type: 'image/x-icon' });
    expect(await donor.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    await context.close();
  });
});
