/**
 * (l, peers) Dewgrid beside the WASI runtimes a user could pick instead, in Chromium and Firefox at
 * once (issue #16): each program in three runners on the bench page (bench/browser/peers.ts), each
 * in a dedicated worker with the program already compiled:
 *  - Dewgrid as the donor runs it: worker/runtime.ts, the module with the yield hook and the memory
 *    cap, a throttle control block at 100% CPU;
 *  - browser_wasi_shim (@bjorn3/browser_wasi_shim) and @wasmer/sdk (as a WASI command), both on the
 *    program as published.
 * And node:wasi as the reference, in this process. Rounds interleave everything: node:wasi, then
 * each engine, each runner, the order of engines and runners rotating every round; one round to
 * warm up, then medians. Every run's outputs (exit code, stdout, stderr, the files it wrote) are
 * compared with node:wasi's by SHA-256; a runner that fails or differs gets its reason, no figure.
 * Times are the page's: the job posted to the outcome back (node:wasi's: instantiate and run).
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_PAGE_DIR, openBenchPage, type BenchPage } from './browser-page.ts';
import { programs } from './programs.ts';
import { runUnderNodeWasi } from '../test/helpers/node-wasi.ts';
import type { WasiOptions, WasiResult } from '../worker/wasi/index.ts';
import type { Runner, RunReport } from './browser/peers.ts';
import type { EngineName } from '../test/helpers/engines/index.ts';
import { fmt, median } from './stats.ts';
import { instrumentInto } from '../worker/instrument.ts';
import { INITIAL_ALLOWANCE } from '../src/protocol/throttle.ts';
import { concatBytes, fromBase64 } from '../src/protocol/bytes.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const MiB = 2 ** 20;
/**
 * DEWGRID_BENCH_CANDIDATE=/abs/path/rewriter-wasm.ts (what worker/rewriter/build.sh writes there, from a
 * changed rewriter.c) adds a runner, "candidate": Dewgrid's runtime on the module as that build
 * rewrites it, in the same rounds as the others, and the report gives candidate ÷ Dewgrid paired
 * round by round. Changes to the hook move its cost by a few points, less than what separates two
 * invocations of the bench on a shared machine: only runs in the same rounds tell them apart.
 */
const CANDIDATE = process.env.DEWGRID_BENCH_CANDIDATE;
const RUNNERS: Runner[] = CANDIDATE ? ['dewgrid', 'bare', 'candidate', 'shim', 'wasmer'] : ['dewgrid', 'bare', 'shim', 'wasmer'];
const PEERS: Runner[] = ['shim', 'wasmer'];
/** DEWGRID_BENCH_RUNNERS=dewgrid,bare runs only those: the hook's own cost, in fewer rounds' time. */
const chosenRunners = (): Runner[] => RUNNERS.filter((r) => !process.env.DEWGRID_BENCH_RUNNERS || process.env.DEWGRID_BENCH_RUNNERS.split(',').includes(r));
const RUNNER_NAMES: Record<Runner, string> = { dewgrid: 'Dewgrid', bare: 'Dewgrid without the yield hook', candidate: 'the candidate rewrite', shim: 'browser_wasi_shim', wasmer: '@wasmer/sdk' };
/** DEWGRID_BENCH_ENGINES=webkit (or chromium,firefox,webkit): other engines than the two the issue's targets name. */
const chosenEngines = (): EngineName[] => (process.env.DEWGRID_BENCH_ENGINES?.split(',') as EngineName[] | undefined) ?? ['chromium', 'firefox'];

interface PeerProgram {
  name: string;
  wasm: Uint8Array;
  options: WasiOptions;
  memoryBytes: number;
  rounds: number;
}

function small(name: string, path: string, args: string[], preopens: string[] = []): PeerProgram {
  const options: WasiOptions = { args, env: [], stdin: new Uint8Array(0), files: [], preopens, maxStdoutBytes: 16 * MiB, maxStderrBytes: 16 * MiB, maxOutputFileBytes: 64 * MiB };
  return { name, wasm: new Uint8Array(readFileSync(join(root, path))), options, memoryBytes: 256 * MiB, rounds: 7 };
}

/** The programs, small to large; DEWGRID_BENCH_PROGRAMS=fractal,hello runs only those whose names start so; DEWGRID_BENCH_ROUNDS sets the rounds (DEWGRID_BENCH_RUNNERS the runners). */
async function peerPrograms(): Promise<PeerProgram[]> {
  const [flite, yosys] = await programs();
  const all = [
    small('fractal tile (CPU)', 'demo/fractal/fractal.wasm', ['fractal', '960', '720', '300', '200', '400', '400', '4000']),
    small('syscall-heavy (bench/fixtures/syscalls.c)', 'bench/fixtures/syscalls.wasm', ['syscalls'], ['/work']),
    small('hello (bench/fixtures/hello.c)', 'bench/fixtures/hello.wasm', ['hello']),
    { ...flite!, rounds: 5 },
    { ...yosys!, rounds: 5 },
  ];
  const only = process.env.DEWGRID_BENCH_PROGRAMS?.split(',');
  // DEWGRID_BENCH_ROUNDS=25: more rounds for every program, where a few percent must be decided.
  const rounds = Number(process.env.DEWGRID_BENCH_ROUNDS) || 0;
  return all.filter((p) => !only || only.some((name) => p.name.startsWith(name))).map((p) => (rounds > 0 ? { ...p, rounds } : p));
}

function fingerprint(result: WasiResult): string {
  const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
  return [`exit ${result.exitCode}`, `stdout ${sha(result.stdout)}`, `stderr ${sha(result.stderr)}`, ...result.files.map((f) => `${f.path} ${sha(f.data)}`)].join('\n');
}

/** One runner on one program in one engine: its median, or why it has none. */
export type PeerFigure = { ms: number; runMs: number; runs: number; note?: string; perRound: number[] } | { failed: string };

export interface PeerReport {
  program: string;
  /** The load average (1 min) as the program's first and last rounds began: the machine is shared. */
  load: [number, number];
  nodeWasiMs: number;
  /** By engine description, then runner. */
  engines: { engine: string; runners: Partial<Record<Runner, PeerFigure>> }[];
}

export async function benchPeers(): Promise<PeerReport[]> {
  const list = await peerPrograms();
  const benches: BenchPage[] = [];
  const reports: PeerReport[] = [];
  const runners = chosenRunners();
  const candidate = CANDIDATE ? await candidateRewriter(CANDIDATE) : undefined;
  try {
    // WebKit shares memory with workers only with SharedArrayBuffer switched on (as Safari's isolated pages do).
    for (const engine of chosenEngines()) benches.push(await openBenchPage(engine, engine === 'webkit' ? { sharedArrayBuffer: true } : {}));
    // @wasmer/sdk finds its runtime and its workers beside its own module: shipped as it is (as vite.config.ts does for the client).
    for (const part of ['dist', 'pkg']) cpSync(join(root, 'node_modules/@wasmer/sdk', part), join(BENCH_PAGE_DIR, 'wasmer-sdk', part), { recursive: true });
    for (const [p, program] of list.entries()) {
      const module = await WebAssembly.compile(program.wasm as Uint8Array<ArrayBuffer>);
      const reference = await runUnderNodeWasi(module, program.options);
      if (reference.exitCode !== 0) throw new Error(`${program.name} under node:wasi exited ${reference.exitCode}`);
      const expected = fingerprint(reference);
      const name = `peers-${p}`;
      writeFileSync(join(BENCH_PAGE_DIR, `${name}.wasm`), program.wasm);
      rmSync(join(BENCH_PAGE_DIR, `${name}.candidate.wasm`), { force: true });
      if (candidate) writeFileSync(join(BENCH_PAGE_DIR, `${name}.candidate.wasm`), instrumentInto(program.wasm, INITIAL_ALLOWANCE, (pieces) => concatBytes(pieces), candidate));
      const b64 = (data: Uint8Array) => Buffer.from(data).toString('base64');
      const { args, env, stdin, files, preopens } = program.options;
      writeFileSync(join(BENCH_PAGE_DIR, `${name}.json`), JSON.stringify({ args, env, stdin: b64(stdin), files: files.map((f) => ({ path: f.path, base64: b64(f.data) })), preopens, outputPaths: reference.files.map((f) => f.path), memoryBytes: program.memoryBytes, candidate: candidate !== undefined }));
      const failed = benches.map(() => ({}) as Partial<Record<Runner, string>>);
      for (const [i, bench] of benches.entries()) Object.assign(failed[i]!, await watched(bench, bench.page.evaluate((n) => (window as unknown as { peersLoad(n: string): Promise<Partial<Record<Runner, string>>> }).peersLoad(n), name)));
      const notes = benches.map(() => ({}) as Partial<Record<Runner, string>>);
      const nodeMs: number[] = [];
      const times = benches.map(() => Object.fromEntries(RUNNERS.map((r) => [r, { ms: [] as number[], runMs: [] as number[] }])) as Record<Runner, { ms: number[]; runMs: number[] }>);
      const load: [number, number] = [loadavg()[0]!, 0];
      for (let round = -1; round < program.rounds; round++) {
        const keep = round >= 0;
        if (round === program.rounds - 1) load[1] = loadavg()[0]!;
        const node = await runUnderNodeWasi(module, program.options);
        if (keep) nodeMs.push(node.runMs);
        const turn = round + 1;
        for (let k = 0; k < benches.length; k++) {
          const i = (k + turn) % benches.length;
          for (let r = 0; r < runners.length; r++) {
            // Each runner first in turn, in each engine: on a small program the run first after the
            // other engine's (a gap) reads slower (docs/benchmarks.md, "(l) peers"), and with the
            // engine's index added too, two engines and two or four runners left some runner never
            // first in an engine.
            const runner = runners[(r + turn) % runners.length]!;
            if (failed[i]![runner]) continue;
            const report = await watched(benches[i]!, benches[i]!.page.evaluate((rn) => (window as unknown as { peersRun(r: Runner): Promise<RunReport> }).peersRun(rn), runner));
            if ('error' in report) failed[i]![runner] = report.error;
            else if (report.fingerprint !== comparable(expected, report.unreadable?.paths ?? [])) failed[i]![runner] = `outputs differ from node:wasi's (${differences(report.fingerprint, expected)}; stderr: ${JSON.stringify(report.stderrHead)})`;
            else if (keep) {
              if (report.unreadable) notes[i]![runner] = `${report.unreadable.paths.join(', ')} not compared: ${report.unreadable.why}`;
              times[i]![runner].ms.push(report.ms);
              times[i]![runner].runMs.push(report.runMs);
            }
          }
        }
      }
      reports.push({
        program: program.name,
        load,
        nodeWasiMs: median(nodeMs),
        engines: benches.map((bench, i) => ({
          engine: bench.description,
          runners: Object.fromEntries(runners.map((r) => {
            const t = times[i]![r];
            const figure: PeerFigure = failed[i]![r] ? { failed: failed[i]![r]! } : { ms: median(t.ms), runMs: median(t.runMs), runs: t.ms.length, note: notes[i]![r], perRound: t.ms };
            return [r, figure];
          })) as Partial<Record<Runner, PeerFigure>>,
        })),
      });
      printPeers(reports.slice(-1)); // as it goes: a long run shows its figures early
    }
  } finally {
    for (const bench of benches) await bench.close();
  }
  return reports;
}

/** How long an evaluate may take before the page is asked what it is doing (an intermittent hang in Firefox, docs/benchmarks.md (l) peers). */
const WATCH_MS = 30_000;

/** `pending`, saying on stderr what the page is doing every WATCH_MS until it settles. */
async function watched<T>(bench: BenchPage, pending: Promise<T>): Promise<T> {
  const timer = setInterval(() => {
    bench.page
      .evaluate(() => (window as unknown as { peersStage(): string }).peersStage())
      .then((stage) => console.error(`  (${bench.description}: an evaluate unanswered for ${WATCH_MS / 1000} s more; the page says: ${stage})`))
      .catch((error: unknown) => console.error(`  (${bench.description}: an evaluate unanswered, and the page does not answer either: ${String(error)})`));
  }, WATCH_MS);
  try {
    return await pending;
  } finally {
    clearInterval(timer);
  }
}

/** A fingerprint without the lines of files a runtime could not hand back. */
function comparable(fingerprint: string, unreadable: string[]): string {
  return fingerprint.split('\n').filter((line) => !unreadable.includes(line.slice(0, line.lastIndexOf(' ')))).join('\n');
}

/** Which outputs differ: "stdout", "/out/x.wav", "exit", or a file missing on one side. */
function differences(got: string, expected: string): string {
  const mine = new Map(got.split('\n').map((l) => [l.slice(0, l.lastIndexOf(' ')), l]));
  const theirs = new Map(expected.split('\n').map((l) => [l.slice(0, l.lastIndexOf(' ')), l]));
  const keys = [...new Set([...mine.keys(), ...theirs.keys()])];
  return keys.filter((k) => mine.get(k) !== theirs.get(k)).map((k) => (!mine.has(k) ? `${k} missing` : !theirs.has(k) ? `${k} extra` : k)).join(', ');
}

let headerPrinted = false;

export function printPeers(reports: PeerReport[]): void {
  if (!headerPrinted) {
    headerPrinted = true;
    console.log('\n(l, peers) Dewgrid as the donor runs it, browser_wasi_shim and @wasmer/sdk, each in a dedicated worker, interleaved; medians, ms from job posted to outcome back');
  }
  for (const r of reports) {
    console.log(`  ${r.program}: node:wasi ${fmt(r.nodeWasiMs, 2)} ms (instantiate + run); load average ${fmt(r.load[0], 2)} → ${fmt(r.load[1], 2)}`);
    for (const e of r.engines) {
      const shown = RUNNERS.flatMap((runner) => {
        const f = e.runners[runner];
        if (!f) return [];
        return ['failed' in f ? `${RUNNER_NAMES[runner]} cannot: ${f.failed}` : `${RUNNER_NAMES[runner]} ${fmt(f.ms, 2)} (in its worker ${fmt(f.runMs, 2)}${f.note ? `; ${f.note}` : ''})`];
      });
      const figure = (runner: Runner) => {
        const f = e.runners[runner];
        return f && 'ms' in f ? f : null;
      };
      const dew = figure('dewgrid');
      const bare = figure('bare');
      const peerMs = PEERS.flatMap((p) => figure(p)?.ms ?? []);
      const ratios = dew
        ? [
            peerMs.length ? `Dewgrid / faster peer ${fmt(dew.ms / Math.min(...peerMs), 2)}` : PEERS.some((p) => e.runners[p]) ? 'Dewgrid / faster peer n/a (no peer ran it)' : '',
            `Dewgrid / node:wasi ${fmt(dew.ms / r.nodeWasiMs, 2)} (in its worker ${fmt(dew.runMs / r.nodeWasiMs, 2)})`,
            bare ? `the hook (Dewgrid / without) ${fmt(dew.ms / bare.ms, 3)} (in its worker ${fmt(dew.runMs / bare.runMs, 3)})` : '',
            candidateRatio(figure('candidate'), dew, bare),
          ].filter(Boolean).join('; ')
        : 'no Dewgrid figure';
      console.log(`    ${e.engine} (${dew?.runs ?? 0} runs): ${shown.join('; ')}`);
      console.log(`      ${ratios}`);
    }
  }
}

/** The candidate rewriter's build, from the module that worker/rewriter/build.sh writes. */
async function candidateRewriter(path: string): Promise<WebAssembly.Module> {
  const built = (await import(new URL(path, `file://${process.cwd()}/`).href)) as { REWRITER_WASM_BASE64?: string };
  if (!built.REWRITER_WASM_BASE64) throw new Error(`DEWGRID_BENCH_CANDIDATE: ${path} exports no REWRITER_WASM_BASE64 (give the .ts that worker/rewriter/build.sh writes)`);
  return new WebAssembly.Module(fromBase64(built.REWRITER_WASM_BASE64) as Uint8Array<ArrayBuffer>);
}

/** candidate ÷ Dewgrid, the median of the rounds' own ratios (both ran in every round), and ÷ without the hook. */
function candidateRatio(candidate: { ms: number; perRound: number[] } | null, dew: { perRound: number[] }, bare: { ms: number } | null): string {
  if (!candidate || candidate.perRound.length !== dew.perRound.length) return '';
  const paired = median(candidate.perRound.map((ms, round) => ms / dew.perRound[round]!));
  return `candidate / Dewgrid ${fmt(paired, 3)} (paired by round)${bare ? `; candidate / without ${fmt(candidate.ms / bare.ms, 3)}` : ''}`;
}
