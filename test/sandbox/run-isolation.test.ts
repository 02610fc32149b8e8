// Runs after runs in one thread, as a task worker runs them (worker/runtime.ts keeps its module,
// the syscall table and its helpers across tasks): each must find only what its own job gave it.
// The probe (test/fixtures/wasi/leftovers.c) prints its arguments, environment, every file under
// "/" with its inode number and the descriptors open; asked to, it leaves files, a folder and open
// descriptors behind, and traps.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { WorkerJob } from '../../src/protocol/worker-api.ts';
import { runJob } from '../../worker/run-job.ts';

const module = new WebAssembly.Module(readFileSync(new URL('../fixtures/wasi/leftovers.wasm', import.meta.url)));
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Every run has one input of its own, so the probe prints an inode number each time. */
const probed = { path: '/in/probe.txt', data: new Uint8Array(3) };

function job(args: string[], more: Partial<WorkerJob> = {}): WorkerJob {
  return { taskId: 't', engine: 'wasi-preview1', module, args: ['leftovers', ...args], env: [], stdin: new Uint8Array(0), files: [probed], preopens: ['/'], limits: { memoryBytes: 2 ** 26, outputBytes: 2 ** 20 }, cpu: 1, deterministic: false, ...more };
}

describe('a task run after others in the same worker', () => {
  it('finds none of their arguments, environment, files or descriptors, after a run that exited or one that trapped', () => {
    const alone = runJob(job([]));
    expect(alone.error).toBeNull();
    expect(text(alone.stdout)).toMatch(/\/in\/probe\.txt ino \d+ size 3\n/);
    const leaving = { env: [['SECRET', 'one'] as [string, string]], files: [probed, { path: '/in/data.txt', data: new TextEncoder().encode('input\n') }] };

    const made = runJob(job(['make'], leaving));
    expect(made.error).toBeNull();
    // What the probe leaves behind, seen by itself: so a later run would show it too, were it kept.
    expect(text(made.stdout)).toMatch(/made\n {2}env SECRET=one\n(.|\n)* {2}\/in\/data\.txt ino \d+ size 6\n(.|\n)* {2}\/made\/kept\.txt (.|\n)* {2}fd \d+ open/);
    expect(text(runJob(job([])).stdout)).toBe(text(alone.stdout));

    const trapped = runJob(job(['make', 'trap'], leaving));
    expect(trapped.error?.code).toBe('trap');
    expect(text(runJob(job([])).stdout)).toBe(text(alone.stdout));
  });
});
