/**
 * A donor page watched for the governor's decisions (test/e2e/policies.test.ts, test/alone/):
 * Compute Pressure emulated through CDP, and waits for the state and reason on `window.dewgrid`
 * and in the page's state line.
 */
import { expect } from 'vitest';
import type { Browser, CDPSession, Page } from 'playwright-core';
import type { DewgridApi } from '../../src/app/api.ts';

type Win = { dewgrid: DewgridApi };
export type PressureState = 'nominal' | 'fair' | 'serious' | 'critical';

export const status = (page: Page) => page.evaluate(() => (window as unknown as Win).dewgrid.status());

/** A donor page at `url` whose Compute Pressure is emulated, "nominal" to start with; `pressure(state)` sets what it reads. */
export async function pressurePage(browser: Browser, url: string): Promise<{ page: Page; pressure: (state: PressureState) => Promise<unknown> }> {
  const page = await browser.newPage();
  const cdp: CDPSession = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setPressureSourceOverrideEnabled', { enabled: true, source: 'cpu' });
  const pressure = (state: PressureState) => cdp.send('Emulation.setPressureStateOverride', { source: 'cpu', state });
  await pressure('nominal');
  await page.goto(url);
  await page.waitForSelector('html[data-ready="true"]');
  return { page, pressure };
}

/**
 * Waits for the governor's state and reason, on `window.dewgrid` and in the page's state line.
 * @param line whether the state line shows it too (a hidden page renders nothing until it is shown)
 */
export async function expectActivity(page: Page, state: string, reason: RegExp, timeout = 20_000, line = true): Promise<void> {
  await page.waitForFunction(
    ([s, r]) => {
      const activity = (window as unknown as Win).dewgrid.status().activity;
      return activity.state === s && new RegExp(r).test(activity.reason);
    },
    [state, reason.source] as const,
    { timeout },
  );
  if (line) await expect.poll(() => page.locator('.state').textContent(), { timeout: 5000 }).toMatch(reason);
}
