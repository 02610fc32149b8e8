/**
 * The Web Worker that runs WASIX (and threaded) tasks under @wasmer/sdk. The SDK is loaded only
 * when the first such task arrives, from its own unbundled files (/wasmer-sdk/, copied as they
 * are by vite.config.ts: it finds its runtime and its own workers relative to its module URL).
 * The page cancels a run by terminating this worker, which ends the SDK's workers with it.
 */
import { outputDigests } from '../../src/protocol/results.ts';
import { serveRuns } from '../../src/protocol/task-channel.ts';
import type { Wasmer } from '@wasmer/sdk/browser';
import { failedOutcome, outputBlob, type WorkerApi, type WorkerJob, type WorkerOutcome } from '../../src/protocol/worker-api.ts';

/** Where the build puts the SDK (vite.config.ts, `shipWasmerSdk`). */
export const WASMER_SDK_PATH = '/wasmer-sdk/';

let wasmer: Promise<Wasmer> | null = null;

function loadWasmer(): Promise<Wasmer> {
  wasmer ??= (async () => {
    const base = new URL(WASMER_SDK_PATH, self.location.origin);
    const sdk = (await import(/* @vite-ignore */ new URL('dist/index.js', base).href)) as typeof import('@wasmer/sdk/browser');
    // One guest thread's worth of parallelism: the task already has this worker's core.
    const client = new sdk.Wasmer({ wasm: new URL('pkg/wasmer_sdk_js_bg.wasm', base), cache: 'memory', parallelism: 1 });
    await client.ready();
    return client;
  })();
  wasmer.catch(() => (wasmer = null));
  return wasmer;
}

const api: WorkerApi = {
  async run(job: WorkerJob): Promise<WorkerOutcome> {
    const started = performance.now();
    // The SDK's silent-success mode: without isolation its runs "succeed" with no output. Refuse first.
    if (!self.crossOriginIsolated || typeof SharedArrayBuffer !== 'function') {
      return failedOutcome('internal', 'a WASIX task needs a cross-origin isolated page (COOP and COEP), and this one is not', 0);
    }
    if (!job.moduleBytes) return failedOutcome('internal', 'a WASIX job came without its module bytes', 0);
    let client: Wasmer;
    try {
      client = await loadWasmer();
    } catch (error) {
      return failedOutcome('internal', `the WASIX engine could not load: ${describe(error)}`, performance.now() - started);
    }
    let sandbox: Awaited<ReturnType<Wasmer['sandboxes']['create']>> | null = null;
    try {
      const pkg = await client.packages.create({
        modules: { task: job.moduleBytes },
        commands: { task: { module: 'task' } },
        // Input files at their guest paths (writable, private to the run).
        files: Object.fromEntries(job.files.map((f) => [f.path, f.data])),
      });
      sandbox = await client.sandboxes.create({ packages: [pkg], env: Object.fromEntries(job.env), network: { mode: 'disabled' } });
      // argv[0] is the command's name under the SDK; the manifest's args[0] names the program too.
      const output = await sandbox.command(pkg, job.args.slice(1)).run({ check: false, stdin: job.stdin, outputBytes: job.limits.outputBytes });
      const stdout = output.stdout.bytes;
      const stderr = output.stderr.bytes;
      const runMs = performance.now() - started;
      if (output.reason !== 'exited') return failedOutcome(output.reason === 'timeout' ? 'timeout' : 'trap', `the WASIX process was ${output.reason} (exit status ${output.exitCode})`, runMs);
      const outcome: WorkerOutcome = {
        exitCode: output.exitCode,
        stdout,
        stderr,
        files: [],
        truncated: { stdout: output.stdout.truncated, stderr: output.stderr.truncated, files: false },
        error: null,
        runMs,
        work: null, // the SDK runs the module as it is: no probes, no count
        blobs: { stdout: outputBlob(stdout), stderr: outputBlob(stderr), files: [] },
        digests: await outputDigests({ stdout, stderr, files: [] }),
      };
      return outcome;
    } catch (error) {
      return failedOutcome(/link|import/i.test(describe(error)) ? 'link' : 'internal', describe(error), performance.now() - started);
    } finally {
      await sandbox?.close().catch(() => undefined);
    }
  },
};

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

serveRuns(api);
