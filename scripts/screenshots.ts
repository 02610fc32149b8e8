/**
 * Takes the README's screenshots from the running app: the dashboard while and after the demo
 * batch is computed in Chromium, at desktop and phone sizes, and the owner's status page after.
 * Run: node --import tsx scripts/screenshots.ts
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../test/helpers/build.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { waitForBatch, pressStart } from '../test/helpers/donor.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { demoBatchSpec } from '../demo/tiles.ts';

const outDir = join(tmpdir(), 'dewgrid-screenshots-dist');
await buildClient(outDir, { sourcemap: true });
const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-screenshots-'));
const server = await startTestServer({ dataDir, staticDir: outDir });
const browser = await launchChromium();
try {
  for (const [name, viewport] of [
    ['desktop', { width: 1280, height: 900 }],
    ['phone', { width: 390, height: 844 }],
  ] as const) {
    const request = await buildBatch(demoBatchSpec(new Uint8Array(readFileSync('demo/fractal/fractal.wasm'))), server.key);
    const { batchId } = await publishBatch(server.url, request);
    const page = await browser.newPage({ viewport, deviceScaleFactor: name === 'phone' ? 2 : 1, isMobile: name === 'phone', hasTouch: name === 'phone' });
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    // Half of each core, one task at a time: the demo lasts long enough to draw a curve on the chart.
    await page.evaluate(() => (window as unknown as { dewgrid: { setLimits(l: object): void } }).dewgrid.setLimits({ cpu: 0.5, workers: 1 }));
    await page.waitForTimeout(3000); // a few idle seconds first, as a donor's page has
    await pressStart(page);
    if (name === 'desktop') await page.locator('.settings > summary').click();
    await waitForBatch(server.url, batchId, (c) => c.done === request.tasks.length);
    await page.waitForFunction((n) => document.querySelector('canvas')?.dataset.tiles === String(n), request.tasks.length);
    await page.waitForTimeout(3000); // and the chart's fall back to idle
    await page.screenshot({ path: `docs/screenshots/${name}.png`, fullPage: true });
    console.log(`docs/screenshots/${name}.png`);
    await page.close();
  }
  const status = await browser.newPage({ viewport: { width: 1600, height: 640 } });
  await status.goto(`${server.url}/status`);
  await status.screenshot({ path: 'docs/screenshots/status.png', fullPage: true });
  console.log('docs/screenshots/status.png');
  await status.close();
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
