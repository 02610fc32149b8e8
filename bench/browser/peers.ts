/**
 * The bench page's part of bench/peers.ts: one program at a time in three runners, each in a
 * dedicated worker holding the program ready (compiled, or packaged where the runtime compiles its
 * own copy), run on request and timed from the page: the job posted to the outcome back, its inputs
 * transferred (copies made before the clock starts), as the client's WorkerSlot hands them over.
 *  - dewgrid: the client's own worker runtime (worker/runtime.ts) as a donor's page runs it: the
 *    module with the yield hook and the memory cap, as the prepare worker makes it
 *    (src/scheduler/module-preparer.ts), and a throttle control block at 100% CPU;
 *  - bare: the same without the yield hook, to tell the hook's cost from the rest;
 *  - candidate: the same with the module as another build of the rewriter makes it, where one is
 *    given (bench/peers.ts, DEWGRID_BENCH_CANDIDATE), to measure a change to the hook in the same rounds;
 *  - shim: browser_wasi_shim (shim-worker.ts); wasmer: @wasmer/sdk (wasmer-worker.ts).
 * Outputs go back to Node as one fingerprint (exit code and SHA-256 of stdout, stderr and each
 * written file), taken after the clock stops.
 */
import { inputBuffers, taskWorkerClient, type TaskWorkerClient } from '../../src/protocol/task-channel.ts';
import type { WorkerJob } from '../../src/protocol/worker-api.ts';
import { INITIAL_ALLOWANCE, ThrottleBlock } from '../../src/protocol/throttle.ts';
import { capMemory } from '../../src/scheduler/memory-cap.ts';
import { instrument } from '../../worker/instrument.ts';
import type { PeerJob, PeerOutputs, PeerReply, PeerRequest } from './peer-protocol.ts';

/** bare: Dewgrid's runtime on the module without the yield hook (memory cap kept): where Dewgrid's gap to a peer comes from. */
export type Runner = 'dewgrid' | 'bare' | 'candidate' | 'shim' | 'wasmer';
/** The runners that are Dewgrid's own runtime, each in its own worker. */
type OwnRunner = 'dewgrid' | 'bare' | 'candidate';

/** A program as bench/peers.ts writes it beside the page: the job, files and stdin in base64. */
interface ProgramFile {
  args: string[];
  env: [string, string][];
  stdin: string;
  files: { path: string; base64: string }[];
  preopens: string[];
  outputPaths: string[];
  memoryBytes: number;
  /** `name`.candidate.wasm lies beside it: a candidate rewriter was given (DEWGRID_BENCH_CANDIDATE). */
  candidate: boolean;
}

/** ms: from the job posted to the outcome back on the page; runMs: the run as its worker timed it (Dewgrid's: instantiate and run, before hashing its outputs). */
export type RunReport = { ms: number; runMs: number; fingerprint: string; stderrHead: string; unreadable?: PeerOutputs['unreadable'] } | { error: string };

interface Loaded {
  job: PeerJob;
  memoryBytes: number;
  /**
   * Each of Dewgrid's runners: its module (dewgrid: with the hook, as a donor's; bare: without;
   * candidate: as a candidate rewriter makes it, bench/peers.ts, only where one was given) in a
   * worker/runtime.ts of its own.
   */
  own: Partial<Record<OwnRunner, { module: WebAssembly.Module; worker: Worker; api: TaskWorkerClient }>>;
  peers: Partial<Record<'shim' | 'wasmer', Worker>>;
  /** Why a runner cannot run this program, where it cannot even load it. */
  refused: Partial<Record<Runner, string>>;
}

let loaded: Loaded | null = null;

/** What the page is doing now, for bench/peers.ts to ask when an evaluate takes too long (a hang's whereabouts). */
let stage = 'idle';

const base64Bytes = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/**
 * A peer's answer longer than this is none: @wasmer/sdk's runs in Firefox now and then never
 * settle (docs/benchmarks.md (l) peers), and the bench then waited for puppeteer's 180 s and stopped.
 */
const PEER_ANSWER_MS = 60_000;

/** A load (yosys's 30 MB packaged by @wasmer/sdk) may take longer; still under puppeteer's 180 s. */
const PEER_LOAD_MS = 150_000;

function ask(worker: Worker, request: PeerRequest, answerMs = PEER_ANSWER_MS, transfer: Transferable[] = []): Promise<PeerReply> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // Where it is stuck, if the worker still answers messages, then the reason with it.
      const channel = new MessageChannel();
      const told = new Promise<string>((answered) => {
        channel.port1.onmessage = (event: MessageEvent<string>) => answered(event.data);
        setTimeout(() => answered('no answer to that either'), 1000);
      });
      worker.postMessage({ type: 'stage' } satisfies PeerRequest, [channel.port2]);
      void told.then((where) => resolve({ type: 'failed', message: `no answer in ${answerMs / 1000} s (the worker says it is at: ${where})` }));
    }, answerMs);
    worker.onmessage = (event: MessageEvent<PeerReply>) => (clearTimeout(timer), resolve(event.data));
    worker.onerror = (event) => (clearTimeout(timer), resolve({ type: 'failed', message: event.message || 'the worker failed' }));
    worker.postMessage(request, transfer);
  });
}

/** Loads program `name` (`name`.wasm and `name`.json beside the page) into fresh workers; returns why any runner refused it. */
async function peersLoad(name: string): Promise<Partial<Record<Runner, string>>> {
  if (loaded) {
    for (const runner of Object.values(loaded.own)) runner?.worker.terminate();
    for (const worker of Object.values(loaded.peers)) worker.terminate();
    loaded = null;
  }
  stage = `${name}: fetching`;
  const bytes = new Uint8Array(await (await fetch(`${name}.wasm`)).arrayBuffer());
  const program = (await (await fetch(`${name}.json`)).json()) as ProgramFile;
  const job: PeerJob = { ...program, stdin: base64Bytes(program.stdin), files: program.files.map((f) => ({ path: f.path, data: base64Bytes(f.base64) })) };
  const compiledCapped = async (source: Uint8Array) => {
    const capped = capMemory(source, program.memoryBytes);
    if (!capped.ok) throw new Error(capped.message);
    return WebAssembly.compile(capped.bytes as Uint8Array<ArrayBuffer>);
  };
  const runtime = (module: WebAssembly.Module) => {
    const worker = new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module' });
    return { module, worker, api: taskWorkerClient(worker) };
  };
  const refused: Loaded['refused'] = {};
  const peers: Loaded['peers'] = {};
  const plain = await WebAssembly.compile(bytes);
  // Each `new Worker(new URL(...))` written out: the form Vite finds and bundles.
  const spawn = { shim: () => new Worker(new URL('./shim-worker.ts', import.meta.url), { type: 'module' }), wasmer: () => new Worker(new URL('./wasmer-worker.ts', import.meta.url), { type: 'module' }) };
  for (const runner of ['shim', 'wasmer'] as const) {
    stage = `${name}: loading ${runner}`;
    const peer = spawn[runner]();
    const reply = await ask(peer, { type: 'load', module: plain, bytes, job }, PEER_LOAD_MS);
    if (reply.type === 'failed') {
      refused[runner] = reply.message;
      peer.terminate();
    } else peers[runner] = peer;
  }
  stage = `${name}: compiling Dewgrid's modules`;
  const own: Loaded['own'] = { dewgrid: runtime(await compiledCapped(instrument(bytes, INITIAL_ALLOWANCE))), bare: runtime(await compiledCapped(bytes)) };
  // A candidate's rewrite, made in Node by the candidate rewriter.
  if (program.candidate) {
    const candidate = await fetch(`${name}.candidate.wasm`);
    if (!candidate.ok) throw new Error(`${name}.candidate.wasm: ${candidate.status} ${candidate.statusText}`);
    own.candidate = runtime(await compiledCapped(new Uint8Array(await candidate.arrayBuffer())));
  } else refused.candidate = 'no candidate rewriter given (DEWGRID_BENCH_CANDIDATE)';
  loaded = { job, memoryBytes: program.memoryBytes, own, peers, refused };
  stage = `${name}: loaded`;
  return refused;
}

async function fingerprint(outputs: PeerOutputs): Promise<string> {
  const sha = async (data: Uint8Array) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))].map((b) => b.toString(16).padStart(2, '0')).join('');
  const lines = [`exit ${outputs.exitCode}`, `stdout ${await sha(outputs.stdout)}`, `stderr ${await sha(outputs.stderr)}`];
  for (const file of outputs.files) lines.push(`${file.path} ${await sha(file.data)}`);
  return lines.join('\n');
}

/** The start of stderr, to say why a run's outputs differ. */
const head = (stderr: Uint8Array) => new TextDecoder().decode(stderr.subarray(0, 300));

/**
 * The job with copies of its inputs, made before the clock starts and handed to the runner's worker
 * (every runner alike): as the client's WorkerSlot hands over the prepare worker's copies.
 */
const ownInputs = (job: PeerJob): PeerJob => ({ ...job, stdin: job.stdin.slice(), files: job.files.map((f) => ({ path: f.path, data: f.data.slice() })) });

/** Runs the loaded program once in `runner`. */
async function peersRun(runner: Runner): Promise<RunReport> {
  if (!loaded) throw new Error('peersRun: no program loaded');
  const { job } = loaded;
  stage = `running ${runner}`;
  if (runner === 'dewgrid' || runner === 'bare' || runner === 'candidate') {
    const own = loaded.own[runner];
    if (!own) return { error: loaded.refused[runner] ?? 'not loaded' };
    const control = new ThrottleBlock();
    control.set({ cpu: 1, paused: false });
    // A task worker takes a WorkerJob and nothing more (it refuses unknown fields).
    const { args, env, stdin, files, preopens } = ownInputs(job);
    const workerJob: WorkerJob = { args, env, stdin, files, preopens, taskId: 'bench', engine: 'wasi-preview1', module: own.module, limits: { memoryBytes: loaded.memoryBytes, outputBytes: 64 * 2 ** 20 }, cpu: 1, deterministic: false, control: control.buffer };
    const started = performance.now();
    const outcome = await own.api.run(workerJob, inputBuffers(workerJob));
    const ms = performance.now() - started;
    if (outcome.error) return { error: `${outcome.error.code}: ${outcome.error.message}` };
    return { ms, runMs: outcome.runMs, fingerprint: await fingerprint({ ...outcome, exitCode: outcome.exitCode ?? -1 }), stderrHead: head(outcome.stderr) };
  }
  const worker = loaded.peers[runner];
  if (!worker) return { error: loaded.refused[runner] ?? 'not loaded' };
  const own = ownInputs(job);
  const started = performance.now();
  const reply = await ask(worker, { type: 'run', job: own }, PEER_ANSWER_MS, inputBuffers(own));
  const ms = performance.now() - started;
  if (reply.type === 'failed' && reply.message.startsWith('no answer')) {
    worker.terminate(); // its threads go with it; the runner has a reason and no more runs
    delete loaded.peers[runner];
    loaded.refused[runner] = reply.message;
  }
  if (reply.type !== 'ran') return { error: reply.type === 'failed' ? reply.message : 'no outputs' };
  return { ms, runMs: reply.runMs, fingerprint: await fingerprint(reply.outputs), stderrHead: head(reply.outputs.stderr), unreadable: reply.outputs.unreadable };
}

Object.assign(window, { peersLoad, peersRun, peersStage: () => stage });
