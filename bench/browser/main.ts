/**
 * Bench page: runs a module in the same worker runtime the client uses (worker/run-job.ts in a
 * module worker), so the figure is the browser worker's speed, not a stand-in's.
 */
import type { WorkerJob } from '../../src/protocol/worker-api.ts';
import { taskWorkerClient } from '../../src/protocol/task-channel.ts';
import { verifyEnvelope } from '../../src/protocol/verify.ts';
import { verifyKeyset } from '../../src/protocol/keyset.ts';
import type { TrustConfig } from '../../src/protocol/api.ts';
import './peers.ts'; // bench/peers.ts's runners

const api = taskWorkerClient(new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module' }));

/** A job as JSON carries it: no module, stdin as plain numbers. */
type BenchJob = Omit<WorkerJob, 'module' | 'stdin'> & { stdin: number[] };

/**
 * Modules compiled once per name, so every round runs the same compiled code: a fresh compile
 * would start each engine's tiering over (baseline code first, optimised code once hot).
 */
const compiled = new Map<string, Promise<WebAssembly.Module>>();

/**
 * Runs `jobs` in order `rounds` times, each run timed; returns wall ms per run, in order. The module's
 * bytes need only come with the first call for `name` (null after: the compiled module is kept).
 */
async function runBench(name: string, moduleBytes: number[] | null, jobs: BenchJob[], rounds: number): Promise<{ runMs: number[]; stdoutBytes: number }> {
  let module = compiled.get(name);
  if (!module) {
    if (!moduleBytes) throw new Error(`runBench: no module compiled as ${name} yet, and no bytes given`);
    compiled.set(name, (module = WebAssembly.compile(new Uint8Array(moduleBytes))));
  }
  const runMs: number[] = [];
  let stdoutBytes = 0;
  for (let r = 0; r < rounds; r++) {
    for (const job of jobs) {
      const outcome = await api.run({ ...job, stdin: new Uint8Array(job.stdin), module: await module });
      if (outcome.error) throw new Error(`${outcome.error.code}: ${outcome.error.message}`);
      runMs.push(outcome.runMs);
      stdoutBytes += outcome.stdout.length;
    }
  }
  return { runMs, stdoutBytes };
}

(window as unknown as { runBench: typeof runBench }).runBench = runBench;

/**
 * Times the client's envelope check (verifyEnvelope: schema, key lookup, ed25519 through
 * WebCrypto, key standing, expiry) on each envelope in turn, and the keyset check once per round;
 * returns µs per envelope and per keyset.
 */
async function verifyBench(envelopes: unknown[], keyset: unknown, roots: TrustConfig, rounds: number): Promise<{ envelopeUs: number[]; keysetUs: number[]; refused: number }> {
  const envelopeUs: number[] = [];
  const keysetUs: number[] = [];
  let refused = 0;
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    const verdict = await verifyKeyset(keyset, roots, null);
    keysetUs.push((performance.now() - started) * 1000);
    if (!verdict.ok) throw new Error(`keyset: ${verdict.reason}: ${verdict.detail}`);
    for (const envelope of envelopes) {
      const t = performance.now();
      const checked = await verifyEnvelope(envelope, verdict.keys, Date.now());
      envelopeUs.push((performance.now() - t) * 1000);
      if (!checked.ok) refused++;
    }
  }
  return { envelopeUs, keysetUs, refused };
}

(window as unknown as { verifyBench: typeof verifyBench }).verifyBench = verifyBench;

/** Times the yield hook's rewrite and the compile of a module (served beside this page) in a worker: bench/browser/rewrite-worker.ts. */
function rewriteBench(url: string, rounds: number): Promise<{ rewriteMs: number[]; rewriterMs: number[]; compileMs: number[]; compileRewrittenMs: number[]; size: number }> {
  const worker = new Worker(new URL('./rewrite-worker.ts', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => (worker.terminate(), resolve(event.data));
    worker.onerror = (event) => (worker.terminate(), reject(new Error(event.message)));
    worker.postMessage({ url: new URL(url, location.href).href, rounds }); // the worker's own URL is under assets/
  });
}

(window as unknown as { rewriteBench: typeof rewriteBench }).rewriteBench = rewriteBench;
document.documentElement.dataset.ready = 'true';
