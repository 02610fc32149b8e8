/**
 * A module's speed in each engine's browser worker (the client's own worker runtime: our WASI shim,
 * Comlink, a module worker) against the same module under Node's WASI, as ratios of median run
 * times, so the machine's speed cancels out:
 *  (a) the demo module: compute-bound fractal tiles;
 *  (e) a syscall-heavy program: tiny unbuffered writes, seeks, reads and clock reads, where the
 *      WASI layer (our shim against uvwasi) decides the speed.
 * Each runs as it arrives (plain) and with the yield hook the client adds (worker/instrument.ts),
 * so an engine's gap can be put where it is: its Wasm compiler, our shim, or our instrumentation.
 * Rounds go engine by engine in turn, Node among them, so a change in the machine's load falls on
 * all of them alike.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openBenchPage, type BenchPage } from './browser-page.ts';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import type { WorkerJob } from '../src/protocol/worker-api.ts';
import { instrument } from '../worker/instrument.ts';
import { INITIAL_ALLOWANCE } from '../src/protocol/throttle.ts';
import type { EngineName, EngineOptions } from '../test/helpers/engines/index.ts';
import { median, fmt } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The engines the browser benchmarks run in: Debian's Chromium, Firefox ESR and WebKitGTK. */
export const BENCH_ENGINES: { engine: EngineName; options?: EngineOptions }[] = [{ engine: 'chromium' }, { engine: 'firefox' }, { engine: 'webkit', options: { profile: 'ephemeral' } }];

export interface EngineSpeed {
  /** Browser, version and session. */
  engine: string;
  runs: number;
  plainMs: number;
  instrumentedMs: number;
  /** plain median over Chromium's plain median. */
  perChromium: number;
  /** plain median over node:wasi's. */
  perNode: number;
  /** The yield hook's cost in this engine: instrumented over plain. */
  instrumentedPerPlain: number;
}

export interface SpeedReport {
  label: string;
  nodeMedianMs: number;
  engines: EngineSpeed[];
}

/** A job as the bench page takes it (JSON: stdin as numbers, no module). */
type BenchJob = Omit<WorkerJob, 'module' | 'stdin'> & { stdin: number[] };

function job(args: string[], preopens: string[] = []): BenchJob {
  return { taskId: 'bench', engine: 'wasi-preview1', args, env: [], stdin: [], files: [], preopens, limits: { memoryBytes: 256 * 2 ** 20, outputBytes: 16 * 2 ** 20 }, cpu: 1, deterministic: false };
}

type RunBench = (name: string, bytes: number[], jobs: BenchJob[], rounds: number) => Promise<{ runMs: number[] }>;

/** One round of `jobs` on the bench page; wall ms per run. */
async function roundIn(bench: BenchPage, name: string, bytes: number[], jobs: BenchJob[]): Promise<number[]> {
  const result = await bench.page.evaluate(
    ({ name, bytes, jobs }) => (window as unknown as { runBench: RunBench }).runBench(name, bytes, jobs, 1),
    { name, bytes, jobs },
  );
  return result.runMs;
}

/** Runs `jobs` `rounds` times (after one round to warm up) under node:wasi and in each engine, plain and instrumented. */
async function compare(label: string, wasmPath: string, jobs: BenchJob[], rounds: number): Promise<SpeedReport> {
  const wasm = new Uint8Array(readFileSync(join(root, wasmPath)));
  const variants = { plain: Array.from(wasm), instrumented: Array.from(instrument(wasm, INITIAL_ALLOWANCE)) };
  const module = await WebAssembly.compile(wasm);
  const benches: BenchPage[] = [];
  try {
    for (const { engine, options } of BENCH_ENGINES) benches.push(await openBenchPage(engine, options));
    const nodeMs: number[] = [];
    const browserMs = benches.map(() => ({ plain: [] as number[], instrumented: [] as number[] }));
    for (let round = -1; round < rounds; round++) {
      const keep = round >= 0;
      for (const j of jobs) {
        const result = await runUnderNodeWasi(module, { args: j.args, env: j.env, stdin: new Uint8Array(j.stdin), files: [], preopens: j.preopens, maxStdoutBytes: j.limits.outputBytes, maxStderrBytes: j.limits.outputBytes, maxOutputFileBytes: j.limits.outputBytes });
        if (result.exitCode !== 0) throw new Error(`${wasmPath} under node exited ${result.exitCode}`);
        if (keep) nodeMs.push(result.runMs);
      }
      // Each round starts with another engine, and alternates plain and instrumented.
      for (let k = 0; k < benches.length; k++) {
        const i = (k + Math.max(round, 0)) % benches.length;
        const order = (round + k) % 2 === 0 ? (['plain', 'instrumented'] as const) : (['instrumented', 'plain'] as const);
        for (const variant of order) {
          const ms = await roundIn(benches[i]!, `${wasmPath} ${variant}`, variants[variant], jobs);
          if (keep) browserMs[i]![variant].push(...ms);
        }
      }
    }
    const nodeMedianMs = median(nodeMs);
    const chromiumPlain = median(browserMs[0]!.plain);
    return {
      label,
      nodeMedianMs,
      engines: benches.map((bench, i) => {
        const plainMs = median(browserMs[i]!.plain);
        const instrumentedMs = median(browserMs[i]!.instrumented);
        return { engine: bench.description, runs: browserMs[i]!.plain.length, plainMs, instrumentedMs, perChromium: plainMs / chromiumPlain, perNode: plainMs / nodeMedianMs, instrumentedPerPlain: instrumentedMs / plainMs };
      }),
    };
  } finally {
    for (const bench of benches) await bench.close();
  }
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
  console.log(`\n${r.label}, each engine's browser worker against Node's WASI (node:wasi median ${fmt(r.nodeMedianMs)} ms/run)`);
  console.log('    engine | runs | median ms/run | / Chromium | / node:wasi | instrumented ms/run | instrumented / plain');
  for (const e of r.engines) {
    console.log(`    ${e.engine} | ${e.runs} | ${fmt(e.plainMs)} | ${fmt(e.perChromium, 2)} | ${fmt(e.perNode, 2)} | ${fmt(e.instrumentedMs)} | ${fmt(e.instrumentedPerPlain, 2)}`);
  }
  console.log('    (ratios of medians; below 1 = faster than the reference)');
}
