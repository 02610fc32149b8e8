/**
 * Renders the PWA's icons from their SVG sources (public/icons/*.svg) to the PNG files the web
 * app manifest and index.html name, in headless Chromium: the browser that draws SVG the way
 * browsers will. The PNGs are committed, so nothing needs this in CI; run it after changing an
 * SVG: node --import tsx scripts/icons.ts
 */
import { readFileSync } from 'node:fs';
import { launchChromium } from '../test/helpers/browser.ts';

/** Every PNG the manifest (public/manifest.webmanifest) and index.html name, from which source. */
const ICON_RENDERS = [
  { source: 'icon.svg', out: 'icon-192.png', size: 192 },
  { source: 'icon.svg', out: 'icon-512.png', size: 512 },
  { source: 'maskable.svg', out: 'maskable-192.png', size: 192 },
  { source: 'maskable.svg', out: 'maskable-512.png', size: 512 },
  { source: 'monochrome.svg', out: 'monochrome-192.png', size: 192 },
  { source: 'monochrome.svg', out: 'monochrome-512.png', size: 512 },
  // iOS rounds the corners itself and shows transparency as black: the full-bleed square.
  { source: 'maskable.svg', out: 'apple-touch-icon.png', size: 180 },
] as const;

const dir = new URL('../public/icons/', import.meta.url);
const browser = await launchChromium();
try {
  const page = await browser.newPage({ deviceScaleFactor: 1 });
  for (const { source, out, size } of ICON_RENDERS) {
    const svg = readFileSync(new URL(source, dir)).toString('base64');
    await page.setViewportSize({ width: size, height: size });
    await page.setContent(`<!doctype html><body style="margin:0"><img width="${size}" height="${size}" style="display:block" src="data:image/svg+xml;base64,${svg}"></body>`);
    await page.locator('img').evaluate((img: HTMLImageElement) => img.decode());
    // Transparent where the SVG draws nothing (the tile's corners, the monochrome icon's background).
    await page.screenshot({ path: new URL(out, dir).pathname, omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } });
    console.log(`public/icons/${out}`);
  }
} finally {
  await browser.close();
}
