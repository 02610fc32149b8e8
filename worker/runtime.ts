/**
 * The Web Worker that runs one WASI task at a time. The page cancels a run by terminating this
 * worker: it is the only reliable way to stop running Wasm.
 */
import type { WorkerJob, WorkerOutcome } from '../src/protocol/worker-api.ts';
import { outputDigests } from '../src/protocol/results.ts';
import { serveRuns } from '../src/protocol/task-channel.ts';
import { runJob } from './run-job.ts';

serveRuns({
  run(job: WorkerJob): WorkerOutcome | Promise<WorkerOutcome> {
    const outcome = runJob(job);
    if (outcome.digests) return outcome;
    const digests = outputDigests(outcome);
    if (!(digests instanceof Promise)) return Object.assign(outcome, { digests });
    return digests.then((hashed) => Object.assign(outcome, { digests: hashed }));
  },
});
