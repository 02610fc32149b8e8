/**
 * Takes the README's screenshots from the running app: the dashboard once a demo picture is
 * computed in Chromium, as a 1280x800 desktop and a 390x844 phone show it without scrolling, and
 * the owner's status page after.
 * Run: node --import tsx scripts/screenshots.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../test/helpers/build.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { waitForBatch, pressStart } from '../test/helpers/donor.ts';
import { API, signOwnerToken, type DemoState } from '../src/protocol/index.ts';

const outDir = join(tmpdir(), 'dewgrid-screenshots-dist');
await buildClient(outDir, { sourcemap: true });
const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-screenshots-'));
// With npm start's demo: each page shows a picture of its own, asked for as a donor asks.
const server = await startTestServer({ dataDir, staticDir: outDir, demo: true });
const browser = await launchChromium();
try {
  // What each screen shows without scrolling: the picture among the first things.
  for (const [name, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ] as const) {
    const asked = await fetch(server.url + API.demoNext, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    if (!asked.ok) throw new Error(`the next demo picture: ${asked.status} ${await asked.text()}`);
    const { batchId, tasks } = (await asked.json()) as DemoState;
    const context = await browser.newContext({ viewport, deviceScaleFactor: name === 'phone' ? 2 : 1, isMobile: name === 'phone', hasTouch: name === 'phone' });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    // Half of each core, one task at a time: the demo lasts long enough to draw a curve on the chart.
    await page.evaluate(() => (window as unknown as { dewgrid: { setLimits(l: object): void } }).dewgrid.setLimits({ cpu: 0.5, workers: 1 }));
    await page.waitForTimeout(3000); // a few idle seconds first, as a donor's page has
    await pressStart(page);
    if (name === 'desktop') await page.locator('.settings > summary').click();
    await waitForBatch(server, batchId, (c) => c.done === tasks);
    await page.waitForFunction((n) => document.querySelector('canvas')?.dataset.tiles === String(n), tasks);
    await page.getByRole('button', { name: 'Render another picture' }).waitFor();
    await page.waitForTimeout(3000); // and the chart's fall back to idle
    await page.screenshot({ path: `docs/screenshots/${name}.png` });
    console.log(`docs/screenshots/${name}.png`);
    await context.close();
  }
  // The status page as its owner sees it, opened from a link.
  const owner = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const status = await owner.newPage();
  await status.goto(`${server.url}/status?token=${await signOwnerToken(server.key, { scope: 'read', lifetimeMs: 3600_000 })}`);
  await status.screenshot({ path: 'docs/screenshots/status.png', fullPage: true });
  console.log('docs/screenshots/status.png');
  await owner.close();
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
