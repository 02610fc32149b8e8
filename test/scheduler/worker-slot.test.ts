// A slot's run (src/scheduler/worker-slot.ts) against a task worker's serving side
// (src/protocol/task-channel.ts) over a MessageChannel, standing in for the Worker Node lacks.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { serveRuns } from '../../src/protocol/task-channel.ts';
import { failedOutcome, type WorkerJob, type WorkerOutcome } from '../../src/protocol/worker-api.ts';
import { WorkerSlot } from '../../src/scheduler/worker-slot.ts';

const module = new WebAssembly.Module(readFileSync(new URL('../../bench/fixtures/hello.wasm', import.meta.url)));
const channels: MessageChannel[] = [];

/** A task worker whose run answers with its inputs' bytes as stdout (stdin, then each file): what crossed. */
class EchoWorker {
  private readonly page: MessagePort;
  constructor() {
    const channel = new MessageChannel();
    channels.push(channel);
    this.page = channel.port1;
    serveRuns({ run: echo }, channel.port2 as unknown as Worker);
    channel.port1.start();
    channel.port2.start();
  }
  addEventListener(type: string, listener: (event: MessageEvent) => void) {
    this.page.addEventListener(type as 'message', listener);
  }
  postMessage(message: unknown, transfer: Transferable[] = []) {
    this.page.postMessage(message, transfer as never);
  }
  terminate() {
    this.page.close();
  }
}

function echo(job: WorkerJob): WorkerOutcome {
  const parts = [job.stdin, ...job.files.map((f) => f.data)];
  const stdout = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  parts.reduce((at, p) => (stdout.set(p, at), at + p.length), 0);
  return { ...failedOutcome('trap', '', 0), exitCode: 0, error: null, stdout, digests: null };
}

afterEach(() => {
  vi.unstubAllGlobals();
  channels.splice(0).forEach((c) => (c.port1.close(), c.port2.close()));
});

describe('a worker slot', () => {
  it("hands the job's inputs to the worker without copying them, each buffer once, and keeps moduleBytes", async () => {
    vi.stubGlobal('Worker', EchoWorker);
    const shared = new Uint8Array([1, 2, 3, 4, 5, 6]); // two files in one buffer: named once in the transfer, or the post fails
    const stdin = new Uint8Array([9]);
    const moduleBytes = new Uint8Array([0, 0x61, 0x73, 0x6d]);
    const job: WorkerJob = {
      taskId: 't', engine: 'wasi-preview1', module, moduleBytes, args: [], env: [], stdin, preopens: ['/'],
      files: [{ path: '/a', data: shared.subarray(0, 2) }, { path: '/b', data: shared.subarray(2) }, { path: '/c', data: new Uint8Array([7, 8]) }],
      limits: { memoryBytes: 2 ** 24, outputBytes: 1024 }, cpu: 1, deterministic: false,
    };
    const files = job.files.map((f) => f.data);
    const outcome = await new WorkerSlot().run(job, 10_000);
    expect([...outcome.stdout]).toEqual([9, 1, 2, 3, 4, 5, 6, 7, 8]);
    // Transferred: the page's buffers are detached, so the bytes were not copied on the way.
    expect([stdin, ...files].map((data) => data.buffer.byteLength)).toEqual([0, 0, 0, 0]);
    expect(moduleBytes.byteLength).toBe(4); // the page keeps it for the module's next tasks
  });
});
