// The task worker's one call without Comlink (src/protocol/worker-channel.ts), over a MessageChannel
// standing in for the page and the worker: answers by id, errors as rejections, output buffers
// transferred, the checkpoint port handed over.
import { describe, expect, it } from 'vitest';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { serveWorkerApi, workerApiOn, type MessageEndpoint } from '../../src/protocol/worker-channel.ts';
import { failedOutcome, type WorkerApi, type WorkerJob, type WorkerOutcome } from '../../src/protocol/worker-api.ts';

const endpoint = (port: MessagePort) => port as unknown as MessageEndpoint;

function job(taskId: string, checkpoints?: MessagePort): WorkerJob {
  return { taskId, engine: 'wasi-preview1', module: new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), args: [], env: [], stdin: new Uint8Array(0), files: [], preopens: [], limits: { memoryBytes: 2 ** 20, outputBytes: 2 ** 20 }, cpu: 1, deterministic: false, checkpoints: checkpoints as unknown as WorkerJob['checkpoints'] };
}

function ran(text: string): WorkerOutcome {
  return { ...failedOutcome('internal', 'unused', 1), error: null, exitCode: 0, stdout: new TextEncoder().encode(text), stderr: new Uint8Array(0), files: [{ path: '/out/x', data: new Uint8Array([1, 2, 3]) }] };
}

function connect(api: WorkerApi) {
  const { port1, port2 } = new MessageChannel();
  serveWorkerApi(endpoint(port2), api);
  const page = workerApiOn(endpoint(port1));
  port1.start();
  port2.start();
  return { page, close: () => (port1.close(), port2.close()) };
}

describe('the task worker channel', () => {
  it('answers each run with its outcome, the output buffers transferred, not copied', async () => {
    const sent: WorkerOutcome[] = [];
    const { page, close } = connect({ run: async (j) => (sent.push(ran(`out of ${j.taskId}`)), sent.at(-1)!) });
    const outcome = await page.run(job('a'));
    expect(new TextDecoder().decode(outcome.stdout)).toBe('out of a');
    expect(outcome.files).toEqual([{ path: '/out/x', data: new Uint8Array([1, 2, 3]) }]);
    expect(sent[0]!.stdout.byteLength).toBe(0); // detached on the worker's side: moved
    expect(sent[0]!.files[0]!.data.byteLength).toBe(0);
    close();
  });

  it('matches answers to calls by id when they come back out of order', async () => {
    let releaseFirst!: () => void;
    const first = new Promise<void>((resolve) => (releaseFirst = resolve));
    const { page, close } = connect({ run: async (j) => (j.taskId === 'slow' ? await first : undefined, ran(j.taskId)) });
    const slow = page.run(job('slow'));
    const quick = await page.run(job('quick'));
    releaseFirst();
    expect(new TextDecoder().decode(quick.stdout)).toBe('quick');
    expect(new TextDecoder().decode((await slow).stdout)).toBe('slow');
    close();
  });

  it('rejects with the worker\'s error when the run throws', async () => {
    const { page, close } = connect({ run: async () => { throw new TypeError('no module'); } });
    await expect(page.run(job('a'))).rejects.toThrow('TypeError: no module');
    close();
  });

  it('hands the checkpoint port over to the worker', async () => {
    const checkpoints = new MessageChannel();
    const got = new Promise<unknown>((resolve) => checkpoints.port1.once('message', resolve));
    const { page, close } = connect({
      run: async (j) => {
        (j.checkpoints as unknown as MessagePort).postMessage({ path: '/checkpoint/a', size: 1 });
        return ran('done');
      },
    });
    await page.run(job('a', checkpoints.port2));
    expect(await got).toEqual({ path: '/checkpoint/a', size: 1 });
    checkpoints.port1.close();
    close();
  });
});
