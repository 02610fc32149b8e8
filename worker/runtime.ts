/**
 * The Web Worker that runs one WASI task at a time. The page cancels a run by terminating this
 * worker: it is the only reliable way to stop running Wasm.
 */
import type { WorkerJob, WorkerOutcome } from '../src/protocol/worker-api.ts';
import { outputDigests } from '../src/protocol/results.ts';
import { serveRuns } from '../src/protocol/task-channel.ts';
import { runJob } from './run-job.ts';

serveRuns({
  async run(job: WorkerJob): Promise<WorkerOutcome> {
    const outcome = runJob(job);
    outcome.digests ??= await outputDigests(outcome);
    return outcome;
  },
});
