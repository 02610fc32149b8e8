// The page's call to a task worker (src/protocol/task-channel.ts), over a MessageChannel as the
// worker's scope: a module the worker holds is not posted again, and every answer is checked.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { serveRuns, taskWorkerClient } from '../../src/protocol/task-channel.ts';
import { failedOutcome, type WorkerJob } from '../../src/protocol/worker-api.ts';

const module = new WebAssembly.Module(readFileSync(new URL('../../bench/fixtures/hello.wasm', import.meta.url)));
const other = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])); // empty: no imports
const job = (m: WebAssembly.Module): WorkerJob => ({ taskId: 't', engine: 'wasi-preview1', module: m, args: [], env: [], stdin: new Uint8Array(0), files: [], preopens: [], limits: { memoryBytes: 2 ** 24, outputBytes: 1024 }, cpu: 1, deterministic: false });
type Port = Parameters<typeof taskWorkerClient>[0];

const channels: MessageChannel[] = [];
afterEach(() => channels.splice(0).forEach((c) => (c.port1.close(), c.port2.close())));

/** A client and a serving side joined by a channel; `seen` gets each request's module as it arrived, and the one run. */
function connect() {
  const channel = new MessageChannel();
  channels.push(channel);
  const seen: { posted: unknown; ran: WebAssembly.Module }[] = [];
  channel.port2.addEventListener('message', (event) => seen.push({ posted: (event.data as { job?: { module?: unknown } }).job?.module, ran: null! }));
  serveRuns({ run: (j) => (seen[seen.length - 1]!.ran = j.module, failedOutcome('trap', 'not run', 0)) }, channel.port2 as unknown as Port);
  channel.port2.start();
  channel.port1.start();
  return { client: taskWorkerClient(channel.port1 as unknown as Port), port: channel.port1, seen };
}

describe('the task worker channel', () => {
  it('posts a module once while the worker holds it, and the worker runs each job with its own', async () => {
    const { client, seen } = connect();
    for (const m of [module, module, other, module]) expect((await client.run(job(m))).error?.message).toBe('not run');
    expect(seen.map((s) => s.posted instanceof WebAssembly.Module)).toEqual([true, false, true, true]);
    // Each job ran with its own module: the held one for the second, hello's again after the empty one.
    expect(seen.map((s) => WebAssembly.Module.imports(s.ran).length > 0)).toEqual([true, true, false, true]);
  });

  it('answers a job without a module, to a worker holding none, with an error', async () => {
    const { port } = connect();
    const answer = new Promise((resolve) => port.addEventListener('message', (event) => resolve(event.data)));
    port.postMessage({ id: 7, job: { ...job(module), module: null } });
    expect(await answer).toEqual({ kind: 'error', id: 7, message: 'the job carries no compiled module, and the worker holds none' });
  });

  it('answers a job that is not one with an error naming the problem, and runs nothing', async () => {
    const { port, seen } = connect();
    const answer = new Promise((resolve) => port.addEventListener('message', (event) => resolve(event.data)));
    port.postMessage({ id: 8, job: { ...job(module), cpu: 5 } });
    expect(await answer).toMatchObject({ kind: 'error', id: 8, message: expect.stringMatching(/^the job is not one a task worker runs \(job\.cpu: /) });
    expect(seen.map((s) => s.ran)).toEqual([null]);
  });

  it("fails the call with the worker's error when its run throws", async () => {
    const channel = new MessageChannel();
    channels.push(channel);
    serveRuns({ run: () => { throw new TypeError('boom'); } }, channel.port2 as unknown as Port);
    channel.port2.start();
    channel.port1.start();
    await expect(taskWorkerClient(channel.port1 as unknown as Port).run(job(module))).rejects.toThrow('TypeError: boom');
  });

  it('fails a call whose answer is not an outcome', async () => {
    const channel = new MessageChannel();
    channels.push(channel);
    channel.port2.addEventListener('message', (event) => channel.port2.postMessage({ kind: 'outcome', id: (event.data as { id: number }).id, outcome: { ...failedOutcome('trap', 'x', 0), stdout: 'not bytes' } }));
    channel.port2.start();
    channel.port1.start();
    await expect(taskWorkerClient(channel.port1 as unknown as Port).run(job(module))).rejects.toThrow(/not an outcome \(outcome\.stdout: must be a Uint8Array\)/);
  });
});
