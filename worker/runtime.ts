/**
 * The Web Worker that runs one WASI task at a time. The page cancels a run by terminating this
 * worker: it is the only reliable way to stop running Wasm.
 */
import * as Comlink from 'comlink';
import type { WorkerApi, WorkerJob, WorkerOutcome } from '../src/protocol/worker-api.ts';
import { outputDigests } from '../src/protocol/results.ts';
import { runJob } from './run-job.ts';

const api: WorkerApi = {
  async run(job: WorkerJob): Promise<WorkerOutcome> {
    const outcome = runJob(job);
    outcome.digests ??= await outputDigests(outcome);
    // Each buffer once: a transfer list naming a buffer twice is a DataCloneError (stdout and stderr share one when empty).
    const buffers = new Set([outcome.stdout.buffer, outcome.stderr.buffer, ...outcome.files.map((f) => f.data.buffer)]);
    return Comlink.transfer(outcome, [...buffers] as ArrayBuffer[]);
  },
};

Comlink.expose(api);
