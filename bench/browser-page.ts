/**
 * The bench page (bench/browser/), built and served cross-origin isolated on a loopback port, in
 * a fresh Chromium: for benchmarks that time the client's own code in the browser.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import type { Page } from 'playwright-core';
import { launchChromium } from '../test/helpers/browser.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.tmp/bench-browser');

/** Runs `use` on the bench page, then closes the browser and the server. */
export async function withBenchPage<T>(use: (page: Page) => Promise<T>): Promise<T> {
  await build({ root: join(root, 'bench/browser'), logLevel: 'warn', base: './', build: { outDir, emptyOutDir: true } });
  const server = createServer((req, res) => {
    const path = join(outDir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/\/$/, '/index.html'));
    try {
      const body = readFileSync(path);
      const type = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' }[extname(path)] ?? 'application/octet-stream';
      res.writeHead(200, { 'content-type': type, 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForSelector('html[data-ready="true"]');
    return await use(page);
  } finally {
    await browser.close();
    server.close();
  }
}
