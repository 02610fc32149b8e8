/**
 * Bench page: runs a module in the same worker runtime the client uses (worker/run-job.ts in a
 * module worker), so the figure is the browser worker's speed, not a stand-in's.
 */
import * as Comlink from 'comlink';
import type { WorkerApi, WorkerJob } from '../../src/protocol/worker-api.ts';
import { verifyEnvelope } from '../../src/protocol/verify.ts';
import { verifyKeyset } from '../../src/protocol/keyset.ts';
import type { TrustConfig } from '../../src/protocol/api.ts';

const api = Comlink.wrap<WorkerApi>(new Worker(new URL('../../worker/runtime.ts', import.meta.url), { type: 'module' }));

type BenchJob = Omit<WorkerJob, 'module'>;

/** Runs `jobs` in order `rounds` times, each run timed; returns wall ms per run, in order. */
async function runBench(moduleBytes: Uint8Array, jobs: BenchJob[], rounds: number): Promise<{ runMs: number[]; stdoutBytes: number }> {
  const module = await WebAssembly.compile(moduleBytes as Uint8Array<ArrayBuffer>);
  const runMs: number[] = [];
  let stdoutBytes = 0;
  for (let r = 0; r < rounds; r++) {
    for (const job of jobs) {
      const outcome = await api.run({ ...job, module });
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
document.documentElement.dataset.ready = 'true';
