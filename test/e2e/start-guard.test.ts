// Acceptance (issue #13, item 11): the donor page's Start is the donor's persistent decision. A
// page that opens Dewgrid under the pointer and has the next click land on Start gets nothing:
// no lease, and nothing remembered. A script's Start (window.dewgrid.start(), for kiosks) runs for
// the page's session only; a donor's click on a button that has been in view, still, for a moment
// is remembered across reloads until Stop.
import { describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { pressStart, storedValue } from '../helpers/donor.ts';
import { API } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('start-guard');
type Win = { dewgrid: DewgridApi };

/** What the page and the server hold: whether it runs, whether Start is remembered, whether it asked for work. */
async function state(page: Page, workRequests: string[]) {
  return {
    running: await page.evaluate(() => (window as unknown as Win).dewgrid.status().running),
    remembered: (await (await storedValue(page, 'meta', 'running')).jsonValue()) === true,
    asked: workRequests.length > 0,
  };
}

function watchWork(context: BrowserContext): string[] {
  const seen: string[] = [];
  context.on('request', (request) => void (request.url().endsWith(API.work) && seen.push(request.url())));
  return seen;
}

const ready = (page: Page) => page.waitForSelector('html[data-ready="true"]');

describe('Start on the donor page', () => {
  it('a page that opens Dewgrid under the pointer does not get the next click counted: nothing runs, nothing is remembered', async () => {
    const context = await env.browser.newContext();
    const work = watchWork(context);
    const lure = await context.newPage();
    await lure.goto('about:blank');
    // The attack: open the donor page and click where Start appears, as soon as it does.
    const [opened] = await Promise.all([context.waitForEvent('page'), lure.evaluate((url) => void window.open(url, '_blank'), env.server.url)]);
    await opened.getByRole('button', { name: 'Start' }).click();
    await ready(opened);
    await expect.poll(() => opened.getByRole('status').filter({ hasText: 'did not count' }).count()).toBeGreaterThan(0);
    expect(await state(opened, work)).toEqual({ running: false, remembered: false, asked: false });
    await opened.reload();
    await ready(opened);
    await opened.waitForTimeout(1000);
    expect(await state(opened, work)).toEqual({ running: false, remembered: false, asked: false });
    await context.close();
  });

  it("a script's click does nothing; a script's start() runs for the session only; a donor's click is remembered until Stop", async () => {
    const context = await env.browser.newContext();
    const work = watchWork(context);
    const page = await context.newPage();
    await page.goto(env.server.url);
    await ready(page);
    // A click made by script on the page (untrusted): nothing.
    await page.waitForTimeout(1000);
    await page.evaluate(() => (document.querySelector('button.start') as HTMLButtonElement).click());
    await page.waitForTimeout(500);
    expect(await state(page, work)).toEqual({ running: false, remembered: false, asked: false });
    // The kiosk's start(): runs now, forgotten on reload.
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    expect(await state(page, work)).toMatchObject({ running: true, remembered: false });
    await page.reload();
    await ready(page);
    await page.waitForTimeout(1000);
    expect((await state(page, work)).running).toBe(false);
    // The donor's click, once the button has been in view and the pointer at rest on it: remembered.
    await pressStart(page);
    expect(await state(page, work)).toMatchObject({ running: true, remembered: true });
    await page.reload();
    await ready(page);
    expect(await state(page, work)).toMatchObject({ running: true, remembered: true });
    await page.getByRole('button', { name: 'Stop' }).click();
    expect(await state(page, work)).toMatchObject({ running: false, remembered: false });
    await context.close();
  });
});
