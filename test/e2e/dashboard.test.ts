// The donor's dashboard while tasks run: no serious or critical axe-core violations at phone and
// desktop sizes (light and dark) with the settings open; every control reached by Tab in reading
// order with a visible focus ring and operated from the keyboard; settings applied at once and
// kept across a reload; the chart drawn from totals that never go back, with a text summary.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { seriousViolations, VIEWPORTS_AND_SCHEMES } from '../helpers/axe.ts';
import { storedValue, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('dashboard');
const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));

type Win = { dewgrid: DewgridApi };

const status = (page: Page) => page.evaluate(() => (window as unknown as Win).dewgrid.status());

/**
 * Publishes `count` tiles of about three seconds each at full speed (a corner inside the set: every
 * pixel runs to the iteration cap), so tasks run throughout a test. The first page to ask leases them all.
 */
async function publishLongTiles(count: number): Promise<string> {
  const tasks = Array.from({ length: count }, () => ({ args: ['fractal', '960', '720', '880', '640', '80', '80', '100000'], env: [], stdin: null, files: [], preopens: [] }));
  const request = await buildBatch({ name: 'dashboard', module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key);
  return (await publishBatch(env.server.url, request, env.server.key)).batchId;
}

async function openDashboard(page: Page): Promise<void> {
  await page.goto(env.server.url);
  await page.waitForSelector('html[data-ready="true"]');
}

/** The settings as IndexedDB holds them (src/storage/work-store.ts: meta/settings). */
const savedSettings = async (page: Page): Promise<unknown> => (await storedValue(page, 'meta', 'settings')).jsonValue();

describe('dashboard', () => {
  it('has no serious or critical axe violations at phone and desktop sizes, light and dark, with the settings open while tasks run', async () => {
    for (const [viewport, colorScheme] of VIEWPORTS_AND_SCHEMES) {
      const label = `${viewport.width}x${viewport.height} ${colorScheme}`;
      await publishLongTiles(2); // for this page (a new device) alone
      const page = await env.browser.newPage({ viewport, colorScheme, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await openDashboard(page);
      await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1 }));
      await pressStart(page);
      await page.locator('.settings > summary').click();
      await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1, undefined, { timeout: 30_000 });
      // A few samples in, so the chart is drawn (its line, its caption) when axe looks at it.
      await page.locator('.line-chart.work path.line').waitFor({ timeout: 10_000 });
      expect(await page.locator('.settings').getAttribute('open'), label).toBe('');
      expect(await seriousViolations(page), label).toEqual([]);
      // Nothing wider than the screen: no sideways scrolling on a phone.
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), label).toBe(true);
      await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
      expect(errors, label).toEqual([]);
      await page.close();
    }
  });

  it('reaches every control by Tab in reading order with a visible focus ring, and operates them from the keyboard; settings apply at once and survive a reload', async () => {
    await publishLongTiles(4);
    const page = await env.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await openDashboard(page);
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1 }));

    // Start from the keyboard: the first stop is the Start button. A key press counts once the
    // button has been in view for a moment (src/app/start-guard.ts), as it has for a person reading the page.
    await page.waitForTimeout(800);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Start');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (window as unknown as Win).dewgrid.status().counts.running === 1, undefined, { timeout: 30_000 });

    // The CPU slider: arrows move it, and the running tasks' share follows at once.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).type)).toBe('range');
    for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowLeft');
    const throttled = await status(page);
    expect(throttled.limits.cpu).toBe(0.5);
    expect(throttled.activity.cpu).toBeLessThanOrEqual(0.5);

    // Open the settings from the keyboard, then walk the whole page with Tab.
    await page.locator('.settings > summary').focus();
    await page.keyboard.press('Enter');
    expect(await page.locator('.settings').getAttribute('open')).toBe('');
    const walk = await page.evaluate(() => {
      // Everything a keyboard can reach, in document order: visible, enabled, and only the checked radio of a group.
      const candidates = [...document.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea, summary, [tabindex]')].filter(
        (el) => el.tabIndex >= 0 && !(el as HTMLInputElement).disabled && el.checkVisibility() && !((el as HTMLInputElement).type === 'radio' && !(el as HTMLInputElement).checked),
      );
      candidates.forEach((el, i) => (el.dataset.tabProbe = String(i)));
      return candidates.map((el) => el.tagName.toLowerCase() + ((el as HTMLInputElement).type ? `[${(el as HTMLInputElement).type}]` : ''));
    });
    // Start, CPU, tasks at once; the settings (the battery slider is off with its checkbox), the
    // details of how load is judged; the log.
    expect(walk).toEqual([
      'button[button]', 'input[range]', 'select[select-one]',
      'summary', 'input[checkbox]', 'input[radio]', 'input[checkbox]', 'input[checkbox]', 'input[checkbox]', 'input[number]', 'input[checkbox]', 'summary',
      'ol',
    ]);
    // A click on the heading moves the point Tab starts from to the top of the page.
    await page.locator('h1').click();
    const order: number[] = [];
    const unringed: string[] = [];
    for (let i = 0; i < walk.length; i++) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        const style = getComputedStyle(el);
        const ring = el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
        return { index: Number(el.dataset.tabProbe ?? -1), ring, what: el.outerHTML.slice(0, 80) };
      });
      order.push(focused.index);
      if (!focused.ring) unringed.push(focused.what);
    }
    expect(order).toEqual(walk.map((_, i) => i));
    expect(unringed).toEqual([]);

    // Settings from the keyboard: a checkbox with Space, the radio group with arrows, the number field typed.
    await page.getByLabel('Compute while on battery').focus();
    await page.keyboard.press('Space');
    await page.getByLabel('Go on at half speed').focus();
    await page.keyboard.press('ArrowRight');
    const seconds = page.getByRole('spinbutton');
    await seconds.focus();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('5000');
    await page.keyboard.press('Tab');
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('Enter a number of seconds from 0 to 3600, not 5000.');
    expect(await page.getByRole('spinbutton').getAttribute('aria-invalid')).toBe('true');
    await seconds.focus();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('12');
    await page.keyboard.press('Tab');
    expect(await page.getByRole('alert').count()).toBe(0);
    const changed = (await status(page)).settings;
    expect(changed).toMatchObject({ cpu: 0.5, runOnBattery: true, whenHidden: 'pause', dwellSeconds: 12 });

    // Kept in IndexedDB (the write lands a moment after the change), and after a reload the
    // controller and the controls say the same.
    await expect.poll(() => savedSettings(page)).toEqual(changed);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    expect((await status(page)).settings).toEqual(changed);
    await page.locator('.settings > summary').click();
    expect(await page.getByLabel('Compute while on battery').isChecked()).toBe(true);
    expect(await page.getByLabel('Pause', { exact: true }).isChecked()).toBe(true);
    expect(await page.getByRole('spinbutton').inputValue()).toBe('12');
    expect(await page.getByRole('slider', { name: /CPU per task/ }).inputValue()).toBe('50');
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    await page.close();
  });

  it('charts work and CPU from totals that never go back across task ends, with a text summary', async () => {
    // Many short tiles: tasks end and start between samples all the time.
    const tasks = Array.from({ length: 40 }, (_, i) => ({ args: ['fractal', '960', '720', String((i % 12) * 80), String(Math.floor(i / 12) * 80), '80', '80', '20000'], env: [], stdin: null, files: [], preopens: [] }));
    const { batchId } = await publishBatch(
      env.server.url,
      await buildBatch({ name: 'short', module: fractal, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key), env.server.key,
    );
    const page = await env.browser.newPage();
    await openDashboard(page);
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    const totals: number[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      totals.push((await status(page)).computed.work);
      const batch = (await (await env.server.owner(`/api/batches/${batchId}`)).json()) as { counts: { done: number } };
      if (batch.counts.done === tasks.length || Date.now() > deadline) break;
      await page.waitForTimeout(100);
    }
    expect(totals.slice(1).every((work, i) => work >= totals[i]!)).toBe(true);
    expect(totals[totals.length - 1]).toBeGreaterThan(0);

    const work = page.getByRole('img', { name: /^Work done per second over the last \d+ seconds?$/ });
    await expect.poll(async () => (await work.getAttribute('aria-describedby')) !== null).toBe(true);
    const description = await page.locator(`[id="${await work.getAttribute('aria-describedby')}"]`).textContent();
    expect(description).toMatch(/^Highest [\d.,]+[KMBT]? steps a second, at /);
    expect(await page.locator('.line-chart.work figcaption').textContent()).toMatch(/^Now [\d.,]+[KMBT]? steps a second; [\d.,]+[KMBT]? steps in the last \d+ seconds?\./);
    expect(await page.locator('.line-chart.cpu figcaption').textContent()).toMatch(/^CPU now \d+% of the \d+ processors? this browser reports; \d+% on average over the last \d+ seconds?\.$/);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    await page.close();
  });
});
