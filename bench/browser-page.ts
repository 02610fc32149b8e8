/**
 * The bench page (bench/browser/), built once and served cross-origin isolated on a loopback port,
 * in a fresh browser of any engine (test/helpers/engines): for benchmarks that time the client's
 * own code in the browser.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { launchEngine, type DonorPage, type EngineName, type EngineOptions } from '../test/helpers/engines/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Where the built page is served from: a benchmark may put files beside it once it is open. */
export const BENCH_PAGE_DIR = join(root, '.tmp/bench-browser');
const outDir = BENCH_PAGE_DIR;

let built: Promise<unknown> | null = null;

/** The bench page's server on a loopback port (the page built on first use). */
async function serveBenchPage(): Promise<{ url: string; server: Server }> {
  built ??= build({ root: join(root, 'bench/browser'), logLevel: 'warn', base: './', build: { outDir, emptyOutDir: true } });
  await built;
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
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, server };
}

/** A bench page open in an engine; close() ends the browser and the server. */
export interface BenchPage {
  page: DonorPage;
  /** The browser, its version and session, for reports. */
  description: string;
  close(): Promise<void>;
}

export async function openBenchPage(engine: EngineName = 'chromium', options: EngineOptions = {}): Promise<BenchPage> {
  const { url, server } = await serveBenchPage();
  const browser = await launchEngine(engine, options).catch((error: unknown) => {
    server.close();
    throw error;
  });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitFor(() => document.documentElement.dataset.ready === 'true', undefined);
    return {
      page,
      description: browser.description,
      async close() {
        await browser.close();
        server.close();
      },
    };
  } catch (error) {
    await browser.close();
    server.close();
    throw error;
  }
}

/** Runs `use` on the bench page in one engine, then closes the browser and the server. */
export async function withBenchPage<T>(use: (page: DonorPage) => Promise<T>, engine: EngineName = 'chromium', options: EngineOptions = {}): Promise<T> {
  const bench = await openBenchPage(engine, options);
  try {
    return await use(bench.page);
  } finally {
    await bench.close();
  }
}
