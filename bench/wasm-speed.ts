/**
 * A module's speed in each engine's browser worker (the client's own worker runtime: our WASI shim,
 * its message channel, a module worker) against the same module under Node's WASI, as ratios of median run
 * times, so the machine's speed cancels out:
 *  (a) the demo module: compute-bound fractal tiles;
 *  (e) a syscall-heavy program: tiny unbuffered writes, seeks, reads and clock reads, where the
 *      WASI layer (our shim against uvwasi) decides the speed.
 * Each runs as it arrives (plain) and with the yield hook the client adds (worker/instrument.ts),
 * so an engine's gap can be put where it is: its Wasm compiler, our shim, or our instrumentation.
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
import { descendantsCpuNs, ownCpuMs } from './cpu-time.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The engines the browser benchmarks run in: Debian's Chromium, Firefox ESR and WebKitGTK. */
export const BENCH_ENGINES: { engine: EngineName; options?: EngineOptions }[] = [{ engine: 'chromium' }, { engine: 'firefox' }, { engine: 'webkit', options: { profile: 'ephemeral' } }];

/** Medians per run, ms: CPU time (the browser's processes, or Node's), and wall time as the worker measured it. */
interface Times {
  cpuMs: number;
  wallMs: number;
}

export interface EngineSpeed {
  /** Browser, version and session. */
  engine: string;
  runs: number;
  plain: Times;
  instrumented: Times;
  /** Plain CPU time over Chromium's. */
  perChromium: number;
  /** Plain CPU time over node:wasi's. */
  perNode: number;
  /** The yield hook's cost in this engine: instrumented CPU time over plain. */
  instrumentedPerPlain: number;
}

export interface SpeedReport {
  label: string;
  node: Times;
  engines: EngineSpeed[];
}

/** A job as the bench page takes it (JSON: stdin as numbers, no module). */
type BenchJob = Omit<WorkerJob, 'module' | 'stdin'> & { stdin: number[] };

function job(args: string[], preopens: string[] = []): BenchJob {
  return { taskId: 'bench', engine: 'wasi-preview1', args, env: [], stdin: [], files: [], preopens, limits: { memoryBytes: 256 * 2 ** 20, outputBytes: 16 * 2 ** 20 }, cpu: 1, deterministic: false };
}

type RunBench = (name: string, bytes: number[] | null, jobs: BenchJob[], rounds: number) => Promise<{ runMs: number[] }>;

/**
 * Runs one job on a bench page (the module's bytes sent with the first job only): the CPU time of
 * every browser process meanwhile (the others idle), and the run's wall time as its worker timed it.
 */
async function runIn(bench: BenchPage, name: string, bytes: number[] | null, job: BenchJob): Promise<Times> {
  const before = descendantsCpuNs();
  const result = await bench.page.evaluate(
    ({ name, bytes, job }) => (window as unknown as { runBench: RunBench }).runBench(name, bytes, [job], 1),
    { name, bytes, job },
  );
  return { cpuMs: (descendantsCpuNs() - before) / 1e6, wallMs: result.runMs[0]! };
}

const medians = (runs: Times[]): Times => ({ cpuMs: median(runs.map((t) => t.cpuMs)), wallMs: median(runs.map((t) => t.wallMs)) });

/**
 * Runs `jobs` `rounds` times (after one round to warm up) under node:wasi and in each engine, plain
 * and instrumented, interleaved job by job (each job in every engine and variant in turn, the
 * order rotating), so a change in the machine's load falls on all of them alike.
 */
async function compare(label: string, wasmPath: string, jobs: BenchJob[], rounds: number): Promise<SpeedReport> {
  const wasm = new Uint8Array(readFileSync(join(root, wasmPath)));
  const variants = { plain: Array.from(wasm), instrumented: Array.from(instrument(wasm, INITIAL_ALLOWANCE)) };
  const module = await WebAssembly.compile(wasm);
  const benches: BenchPage[] = [];
  try {
    for (const { engine, options } of BENCH_ENGINES) benches.push(await openBenchPage(engine, options));
    const nodeMs: Times[] = [];
    const browserMs = benches.map(() => ({ plain: [] as Times[], instrumented: [] as Times[] }));
    const sent = new Set<string>();
    let turn = 0;
    for (let round = -1; round < rounds; round++) {
      const keep = round >= 0;
      for (const j of jobs) {
        turn++;
        const cpuBefore = ownCpuMs();
        const result = await runUnderNodeWasi(module, { args: j.args, env: j.env, stdin: new Uint8Array(j.stdin), files: [], preopens: j.preopens, maxStdoutBytes: j.limits.outputBytes, maxStderrBytes: j.limits.outputBytes, maxOutputFileBytes: j.limits.outputBytes });
        const cpuMs = ownCpuMs() - cpuBefore; // with node:wasi's set-up (a temporary folder), which its wall time leaves out
        if (result.exitCode !== 0) throw new Error(`${wasmPath} under node exited ${result.exitCode}`);
        if (keep) nodeMs.push({ cpuMs, wallMs: result.runMs });
        for (let k = 0; k < benches.length; k++) {
          const i = (k + turn) % benches.length;
          const order = (turn + k) % 2 === 0 ? (['plain', 'instrumented'] as const) : (['instrumented', 'plain'] as const);
          for (const variant of order) {
            const name = `${wasmPath} ${variant}`;
            const first = !sent.has(`${i} ${name}`);
            sent.add(`${i} ${name}`);
            const ms = await runIn(benches[i]!, name, first ? variants[variant] : null, j);
            if (keep) browserMs[i]![variant].push(ms);
          }
        }
      }
    }
    const node = medians(nodeMs);
    const chromium = medians(browserMs[0]!.plain);
    return {
      label,
      node,
      engines: benches.map((bench, i) => {
        const plain = medians(browserMs[i]!.plain);
        const instrumented = medians(browserMs[i]!.instrumented);
        return { engine: bench.description, runs: browserMs[i]!.plain.length, plain, instrumented, perChromium: plain.cpuMs / chromium.cpuMs, perNode: plain.cpuMs / node.cpuMs, instrumentedPerPlain: instrumented.cpuMs / plain.cpuMs };
      }),
    };
  } finally {
    for (const bench of benches) await bench.close();
  }
}

/** (a) 160x160 tiles at 4000 iterations: tens of milliseconds each, so timer noise does not decide the ratio. */
export function benchWasmSpeed(rounds = 7): Promise<SpeedReport> {
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

/**
 * (f, by engine) The yield hook's cost in each engine: the CPU-bound programs of (f), runs of a
 * fraction of a second to a second, so per-run costs (messages, hashing the output) do not
 * blur it. The ratio to read is each engine's instrumented / plain.
 */
export async function benchYieldHookByEngine(rounds = 5): Promise<SpeedReport[]> {
  return [
    await compare('(f) fractal (demo, 400x400 tile, 20 000 iterations)', 'demo/fractal/fractal.wasm', [job(['fractal', '960', '720', '300', '200', '400', '400', '20000'])], rounds),
    await compare('(f) sha256 (32 MiB)', 'bench/fixtures/sha256.wasm', [job(['sha256', '32'])], rounds),
    await compare('(f) sieve (to 30 million)', 'bench/fixtures/sieve.wasm', [job(['sieve', '30000000'])], rounds),
  ];
}

export function printSpeed(r: SpeedReport): void {
  console.log(`\n${r.label}, each engine's browser worker against Node's WASI`);
  console.log(`    node:wasi: CPU ${fmt(r.node.cpuMs)} ms/run (with its set-up), wall ${fmt(r.node.wallMs)} ms/run`);
  console.log('    engine | runs | CPU ms/run | / Chromium | / node:wasi | wall ms/run | instrumented CPU ms/run | instrumented / plain');
  for (const e of r.engines) {
    console.log(`    ${e.engine} | ${e.runs} | ${fmt(e.plain.cpuMs)} | ${fmt(e.perChromium, 2)} | ${fmt(e.perNode, 2)} | ${fmt(e.plain.wallMs)} | ${fmt(e.instrumented.cpuMs)} | ${fmt(e.instrumentedPerPlain, 2)}`);
  }
  console.log('    (medians per run; ratios of CPU time, which a busy machine does not inflate; below 1 = faster than the reference)');
}
