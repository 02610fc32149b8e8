// Deterministic runs: the same task in two separate runs (two Wasi instances, as two workers or
// two devices would have) gives the same bytes, though it reads clocks, sleeps, draws random
// numbers, stamps files and lists a folder. Without the flag the same program differs run to run.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runJob } from '../../worker/run-job.ts';
import type { WorkerJob } from '../../src/protocol/worker-api.ts';
import { isDeterministic, type TaskManifest } from '../../src/protocol/index.ts';

const module = new WebAssembly.Module(readFileSync(new URL('../fixtures/wasi/nondeterminism.wasm', import.meta.url)));

function job(taskId: string, deterministic: boolean): WorkerJob {
  return { taskId, engine: 'wasi-preview1', module, args: ['nondeterminism'], env: [], stdin: new Uint8Array(0), files: [], preopens: ['/out'], limits: { memoryBytes: 2 ** 26, outputBytes: 2 ** 20 }, cpu: 1, deterministic };
}

const bytesOf = (o: ReturnType<typeof runJob>) => ({ exitCode: o.exitCode, error: o.error, stdout: o.stdout, stderr: o.stderr, files: o.files });

describe('deterministic runs', () => {
  it('give byte-identical results for the same task id', () => {
    const first = runJob(job('task-1', true));
    const second = runJob(job('task-1', true));
    expect(first.error).toBeNull();
    expect(bytesOf(second)).toEqual(bytesOf(first));
    const text = new TextDecoder().decode(first.stdout);
    expect(text).toMatch(/^realtime 1577836800\.\d{9}\n/); // the virtual epoch
    expect(text).toMatch(/listing \. \.\. a\.txt z\.txt\n$/); // "." and ".." first, then sorted
  });

  it('draw different random numbers for different task ids', () => {
    const random = (id: string) => /random ([0-9a-f]+)/.exec(new TextDecoder().decode(runJob(job(id, true)).stdout))![1];
    expect(random('task-1')).not.toBe(random('task-2'));
  });

  it('are not deterministic without the flag (the program does observe the host)', () => {
    const a = new TextDecoder().decode(runJob(job('task-1', false)).stdout);
    const b = new TextDecoder().decode(runJob(job('task-1', false)).stdout);
    expect(a).not.toBe(b);
  });

  it('are the default when results are compared (redundancy > 1), and follow the manifest otherwise', () => {
    const m = (redundancy: number, deterministic?: boolean) => ({ redundancy, ...(deterministic === undefined ? {} : { deterministic }) }) as TaskManifest;
    expect([isDeterministic(m(1)), isDeterministic(m(2)), isDeterministic(m(2, false)), isDeterministic(m(1, true))]).toEqual([false, true, false, true]);
  });
});
