/**
 * Bench page: runs a module in the same worker runtime the client uses (worker/run-job.ts in a
 * module worker), so the figure is the browser worker's speed, not a stand-in's.
 */
import * as Comlink from 'comlink';
import type { WorkerApi, WorkerJob } from '../../src/protocol/worker-api.ts';

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
document.documentElement.dataset.ready = 'true';
