/**
 * The Web Worker that runs one WASI task at a time. The page cancels a run by terminating this
 * worker: it is the only reliable way to stop running Wasm.
 */
import type { WorkerApi, WorkerJob, WorkerOutcome } from '../src/protocol/worker-api.ts';
import { serveWorkerApi } from '../src/protocol/worker-channel.ts';
import { outputDigests } from '../src/protocol/results.ts';
import { runJob } from './run-job.ts';

const api: WorkerApi = {
  async run(job: WorkerJob): Promise<WorkerOutcome> {
    const outcome = runJob(job);
    outcome.digests ??= await outputDigests(outcome);
    return outcome;
  },
};

serveWorkerApi(self as unknown as Parameters<typeof serveWorkerApi>[0], api);
