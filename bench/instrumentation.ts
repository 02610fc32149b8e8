/**
 * (f) What the yield hook costs on CPU-bound programs: each module run as the client runs it
 * (worker/run-job.ts: our WASI shim, memory cap, at a 100% CPU limit, so no naps) without the
 * instrumentation, with the rewrite as the client makes it (version 3), and with version 2's
 * rewrite (bench/legacy/instrument-v2.ts, kept to measure against; it needs a host that counts
 * allowances as wholly spent), in turns, in Node's V8 (the engine Chromium's workers use).
 * Reported as ratios of median run times, so the machine's speed cancels out, with the size of
 * each rewrite against the module's.
 */
import { readFileSync } from 'node:fs';
import { instrument } from '../worker/instrument.ts';
import { instrument as instrumentV2 } from './legacy/instrument-v2.ts';
import { runJob } from '../worker/run-job.ts';
import { INITIAL_ALLOWANCE } from '../src/protocol/throttle.ts';
import { capMemory } from '../src/scheduler/memory-cap.ts';
import { fmt, median } from './stats.ts';

export interface InstrumentationReport {
  program: string;
  plainMs: number;
  instrumentedMs: number;
  /** instrumented / plain */
  ratio: number;
  /** The same for the version 2 rewrite. */
  version1Ms: number;
  version1Ratio: number;
  /** Probes the instrumented run counted. */
  work: number;
  /** Bytes of each rewrite over the module's. */
  size: number;
  version1Size: number;
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

type Kind = 'plain' | 'instrumented' | 'version1';

export async function benchInstrumentation(rounds = 11): Promise<InstrumentationReport[]> {
  const reports: InstrumentationReport[] = [];
  for (const { program, path, args } of PROGRAMS) {
    const bytes = new Uint8Array(readFileSync(path));
    const rewritten = { instrumented: instrument(bytes, INITIAL_ALLOWANCE), version1: instrumentV2(bytes, INITIAL_ALLOWANCE) };
    const modules: Record<Kind, WebAssembly.Module> = { plain: compile(bytes), instrumented: compile(rewritten.instrumented), version1: compile(rewritten.version1) };
    const times: Record<Kind, number[]> = { plain: [], instrumented: [], version1: [] };
    const order: Kind[] = ['plain', 'instrumented', 'version1'];
    let work = 0;
    let expected: string | null = null;
    for (let round = -2; round < rounds; round++) {
      // Each kind first, second and last in turn, so a slow spell of the machine does not favour one.
      const turn = ((round % 3) + 3) % 3;
      for (const kind of [...order.slice(turn), ...order.slice(0, turn)]) {
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
    const version1Ms = median(times.version1);
    reports.push({
      program, plainMs, instrumentedMs, ratio: instrumentedMs / plainMs, version1Ms, version1Ratio: version1Ms / plainMs, work,
      size: rewritten.instrumented.length / bytes.length, version1Size: rewritten.version1.length / bytes.length,
    });
  }
  return reports;
}

export function printInstrumentation(reports: InstrumentationReport[]): void {
  console.log('\n(f) The yield hook on CPU-bound programs, instrumented / plain (median run time, 100% limit)');
  for (const r of reports) {
    console.log(`  ${r.program.padEnd(30)} plain ${fmt(r.plainMs)} ms, instrumented ${fmt(r.instrumentedMs)} ms: ratio ${fmt(r.ratio, 3)} (version 2 rewrite: ${fmt(r.version1Ratio, 3)}), ${r.work.toLocaleString('en')} probes, module ${fmt(r.size, 2)}x its size (version 2: ${fmt(r.version1Size, 2)}x)`);
  }
}
