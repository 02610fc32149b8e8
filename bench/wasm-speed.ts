/**
 * A module's speed in a browser worker (the client's own worker runtime, in Debian Chromium)
 * against the same module under Node's WASI (V8 in both), as a ratio of median run times, so the
 * machine's speed cancels out.
 *  (a) the demo module: compute-bound fractal tiles;
 *  (e) a syscall-heavy program: tiny unbuffered writes, seeks, reads and clock reads, where the
 *      WASI layer (our shim against uvwasi) decides the speed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { withBenchPage } from './browser-page.ts';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import type { WorkerJob } from '../src/protocol/worker-api.ts';
import { median, fmt } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

export interface SpeedReport {
  label: string;
  runs: number;
  browserMedianMs: number;
  nodeMedianMs: number;
  ratio: number;
}

type BenchJob = Omit<WorkerJob, 'module'>;

function job(args: string[], preopens: string[] = []): BenchJob {
  return { taskId: 'bench', engine: 'wasi-preview1', args, env: [], stdin: new Uint8Array(0), files: [], preopens, limits: { memoryBytes: 256 * 2 ** 20, outputBytes: 16 * 2 ** 20 }, cpu: 1, deterministic: false };
}

/** Runs `jobs` `rounds` times under node:wasi and in the browser worker; medians of instantiate + run. */
async function compare(label: string, wasmPath: string, jobs: BenchJob[], rounds: number): Promise<SpeedReport> {
  const wasm = new Uint8Array(readFileSync(join(root, wasmPath)));
  const module = await WebAssembly.compile(wasm);
  const nodeMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const j of jobs) {
      const result = await runUnderNodeWasi(module, { args: j.args, env: j.env, stdin: j.stdin, files: [], preopens: j.preopens, maxStdoutBytes: j.limits.outputBytes, maxStderrBytes: j.limits.outputBytes, maxOutputFileBytes: j.limits.outputBytes });
      if (result.exitCode !== 0) throw new Error(`${wasmPath} under node exited ${result.exitCode}`);
      nodeMs.push(result.runMs);
    }
  }

  const runMs = await withBenchPage(async (page) => {
    const result = await page.evaluate(
      async ({ bytes, jobs, rounds }) => {
        const run = (window as unknown as { runBench: (b: Uint8Array, j: unknown[], r: number) => Promise<{ runMs: number[] }> }).runBench;
        return run(new Uint8Array(bytes), jobs, rounds);
      },
      { bytes: Array.from(wasm), jobs, rounds },
    );
    return result.runMs;
  });
  const browserMedianMs = median(runMs);
  const nodeMedianMs = median(nodeMs);
  return { label, runs: runMs.length, browserMedianMs, nodeMedianMs, ratio: browserMedianMs / nodeMedianMs };
}

/** (a) 160x160 tiles at 4000 iterations: tens of milliseconds each, so timer noise does not decide the ratio. */
export function benchWasmSpeed(rounds = 5): Promise<SpeedReport> {
  const jobs: BenchJob[] = [];
  for (let ty = 0; ty < 720; ty += 240) {
    for (let tx = 0; tx < 960; tx += 320) jobs.push(job(['fractal', '960', '720', String(tx), String(ty), '160', '160', '4000']));
  }
  return compare('(a) Demo module (fractal, 160x160 tiles, 4000 iterations)', 'demo/fractal/fractal.wasm', jobs, rounds);
}

/** (e) 20 000 one-byte writes, 2 500 seeks, reads and clock reads per run. */
export function benchSyscallSpeed(rounds = 15): Promise<SpeedReport> {
  return compare('(e) Syscall-heavy program (bench/fixtures/syscalls.c: ~27 500 syscalls a run)', 'bench/fixtures/syscalls.wasm', [job(['syscalls'], ['/work'])], rounds);
}

export function printSpeed(r: SpeedReport): void {
  console.log(`\n${r.label}, browser worker vs Node's WASI: ${r.runs} runs each`);
  console.log(`    browser worker median ${fmt(r.browserMedianMs)} ms/run; node:wasi median ${fmt(r.nodeMedianMs)} ms/run`);
  console.log(`    ratio browser/node = ${fmt(r.ratio, 2)} (1.00 = same speed; below 1 = browser faster)`);
}
