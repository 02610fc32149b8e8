/**
 * (a) The demo module's speed in a browser worker (the client's own worker runtime, in Debian
 * Chromium) against the same module under Node's WASI (V8 in both). Reported as a ratio of
 * median tile times, so the machine's speed cancels out.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { join, extname } from 'node:path';
import { build } from 'vite';
import { launchChromium } from '../test/helpers/browser.ts';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import { median, fmt } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.tmp/bench-browser');

export interface WasmSpeedReport {
  tiles: number;
  rounds: number;
  browserMedianMs: number;
  nodeMedianMs: number;
  ratio: number;
}

function tileJobs(): { args: string[]; env: [string, string][] }[] {
  const jobs = [];
  // 160x160 tiles at 4000 iterations: tens of milliseconds each, so timer noise does not decide the ratio.
  for (let ty = 0; ty < 720; ty += 240) {
    for (let tx = 0; tx < 960; tx += 320) jobs.push({ args: ['fractal', '960', '720', String(tx), String(ty), '160', '160', '4000'], env: [] as [string, string][] });
  }
  return jobs;
}

export async function benchWasmSpeed(rounds = 5): Promise<WasmSpeedReport> {
  const wasm = new Uint8Array(readFileSync(join(root, 'demo/fractal/fractal.wasm')));
  const jobs = tileJobs().map((j) => ({
    taskId: 'bench',
    args: j.args,
    env: j.env,
    stdin: new Uint8Array(0),
    files: [],
    preopens: [],
    limits: { memoryBytes: 256 * 2 ** 20, outputBytes: 16 * 2 ** 20 },
    cpu: 1,
    deterministic: false,
  }));

  // Node's WASI: same jobs, same order, same number of rounds.
  const nodeMs: number[] = [];
  const module = await WebAssembly.compile(wasm);
  for (let r = 0; r < rounds; r++) {
    for (const job of jobs) {
      const result = await runUnderNodeWasi(module, {
        args: job.args,
        env: job.env,
        stdin: job.stdin,
        files: [],
        preopens: [],
        maxStdoutBytes: job.limits.outputBytes,
        maxStderrBytes: job.limits.outputBytes,
        maxOutputFileBytes: job.limits.outputBytes,
      });
      nodeMs.push(result.runMs); // instantiate + run, as the worker's runMs
      if (result.exitCode !== 0) throw new Error(`node run exited ${result.exitCode}`);
    }
  }

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
    const { runMs } = await page.evaluate(
      async ({ bytes, jobs, rounds }) => {
        const run = (window as unknown as { runBench: (b: Uint8Array, j: unknown[], r: number) => Promise<{ runMs: number[] }> }).runBench;
        return run(new Uint8Array(bytes), jobs, rounds);
      },
      { bytes: Array.from(wasm), jobs: jobs.map((j) => ({ ...j, stdin: new Uint8Array(0) })), rounds },
    );
    const browserMedianMs = median(runMs);
    const nodeMedianMs = median(nodeMs);
    return { tiles: jobs.length, rounds, browserMedianMs, nodeMedianMs, ratio: browserMedianMs / nodeMedianMs };
  } finally {
    await browser.close();
    server.close();
  }
}

export function printWasmSpeed(r: WasmSpeedReport): void {
  console.log(`\n(a) Demo module (fractal, 160x160 tiles, 4000 iterations), browser worker vs Node's WASI: ${r.tiles} tiles x ${r.rounds} rounds`);
  console.log(`    browser worker median ${fmt(r.browserMedianMs)} ms/tile; node:wasi median ${fmt(r.nodeMedianMs)} ms/tile`);
  console.log(`    ratio browser/node = ${fmt(r.ratio, 2)} (1.00 = same speed; below 1 = browser faster)`);
}
