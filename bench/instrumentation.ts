/**
 * (f) What the yield hook costs on CPU-bound programs: each module run as the client runs it
 * (worker/run-job.ts: our WASI shim, memory cap, at a 100% CPU limit, so no naps) with and without
 * the instrumentation, alternating, in Node's V8 (the engine Chromium's workers use). Reported as
 * the ratio of median run times: the machine's speed cancels out.
 */
import { readFileSync } from 'node:fs';
import { instrument } from '../worker/instrument.ts';
import { runJob } from '../worker/run-job.ts';
import { INITIAL_ALLOWANCE } from '../src/protocol/throttle.ts';
import { capMemory } from '../src/scheduler/memory-cap.ts';
import { fmt, median } from './stats.ts';

export interface InstrumentationReport {
  program: string;
  plainMs: number;
  instrumentedMs: number;
  ratio: number;
  work: number;
}

const PROGRAMS: { program: string; path: string; args: string[] }[] = [
  { program: 'fractal (demo, 400x400 tile)', path: 'demo/fractal/fractal.wasm', args: ['fractal', '960', '720', '300', '200', '400', '400', '20000'] },
  { program: 'sha256 (32 MiB)', path: 'bench/fixtures/sha256.wasm', args: ['sha256', '32'] },
  { program: 'sieve (to 30 million)', path: 'bench/fixtures/sieve.wasm', args: ['sieve', '30000000'] },
];

function compile(bytes: Uint8Array): WebAssembly.Module {
  const capped = capMemory(bytes, 512 * 2 ** 20);
  if (!capped.ok) throw new Error(capped.message);
  return new WebAssembly.Module(capped.bytes as Uint8Array<ArrayBuffer>);
}

export async function benchInstrumentation(rounds = 9): Promise<InstrumentationReport[]> {
  const reports: InstrumentationReport[] = [];
  for (const { program, path, args } of PROGRAMS) {
    const bytes = new Uint8Array(readFileSync(path));
    const modules = { plain: compile(bytes), instrumented: compile(instrument(bytes, INITIAL_ALLOWANCE)) };
    const times = { plain: [] as number[], instrumented: [] as number[] };
    let work = 0;
    let expected: string | null = null;
    for (let round = -2; round < rounds; round++) {
      for (const kind of round % 2 === 0 ? (['plain', 'instrumented'] as const) : (['instrumented', 'plain'] as const)) {
        const started = performance.now();
        const outcome = runJob({
          taskId: 'bench', engine: 'wasi-preview1', module: modules[kind], args, env: [], stdin: new Uint8Array(0), files: [], preopens: [],
          limits: { memoryBytes: 512 * 2 ** 20, outputBytes: 16 * 2 ** 20 }, cpu: 1, deterministic: false,
        });
        const ms = performance.now() - started;
        const stdout = Buffer.from(outcome.stdout).toString('base64');
        if (outcome.error || (expected !== null && stdout !== expected)) throw new Error(`${program} (${kind}): ${outcome.error?.message ?? 'different output'}`);
        expected = stdout;
        if (kind === 'instrumented') work = outcome.work ?? 0;
        if (round >= 0) times[kind].push(ms); // the first two rounds warm the engine's tiers up
      }
    }
    const plainMs = median(times.plain);
    const instrumentedMs = median(times.instrumented);
    reports.push({ program, plainMs, instrumentedMs, ratio: instrumentedMs / plainMs, work });
  }
  return reports;
}

export function printInstrumentation(reports: InstrumentationReport[]): void {
  console.log('\n(f) The yield hook on CPU-bound programs, instrumented / plain (median run time, 100% limit)');
  for (const r of reports) {
    console.log(`  ${r.program.padEnd(30)} plain ${fmt(r.plainMs)} ms, instrumented ${fmt(r.instrumentedMs)} ms: ratio ${fmt(r.ratio, 3)} (${fmt((r.ratio - 1) * 100)}% slower), ${r.work.toLocaleString('en')} probes`);
  }
}
