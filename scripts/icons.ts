/**
 * Renders the PWA's icons from their SVG sources (public/icons/*.svg) to the PNG files the web
 * app manifest and index.html name, in headless Chromium: the browser that draws SVG the way
 * browsers will, and public/favicon.ico (32 and 48 px PNGs in an ICO, for browsers and tools that
 * ask for /favicon.ico whatever the page says). The files are committed, so nothing needs this in
 * CI; run it after changing an SVG: node --import tsx scripts/icons.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
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

/** The sizes /favicon.ico holds, from icon.svg. */
const FAVICON_SIZES = [32, 48] as const;

/** An ICO file holding PNG images (ICONDIR, one ICONDIRENTRY each, then the PNGs; Windows Vista and every browser read it). */
function ico(images: { size: number; png: Buffer }[]): Buffer {
  const header = Buffer.alloc(6 + 16 * images.length);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(1, 2); // 1: icon
  header.writeUInt16LE(images.length, 4);
  let offset = header.length;
  images.forEach(({ size, png }, i) => {
    const at = 6 + 16 * i;
    header.writeUInt8(size, at); // width and height, 0 meaning 256
    header.writeUInt8(size, at + 1);
    header.writeUInt16LE(1, at + 4); // planes
    header.writeUInt16LE(32, at + 6); // bits per pixel
    header.writeUInt32LE(png.length, at + 8);
    header.writeUInt32LE(offset, at + 12);
    offset += png.length;
  });
  return Buffer.concat([header, ...images.map((i) => i.png)]);
}

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
  const favicons = [];
  for (const size of FAVICON_SIZES) {
    const svg = readFileSync(new URL('icon.svg', dir)).toString('base64');
    await page.setViewportSize({ width: size, height: size });
    await page.setContent(`<!doctype html><body style="margin:0"><img width="${size}" height="${size}" style="display:block" src="data:image/svg+xml;base64,${svg}"></body>`);
    await page.locator('img').evaluate((img: HTMLImageElement) => img.decode());
    favicons.push({ size, png: await page.screenshot({ omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } }) });
  }
  writeFileSync(new URL('../favicon.ico', dir), ico(favicons));
  console.log('public/favicon.ico');
} finally {
  await browser.close();
}
