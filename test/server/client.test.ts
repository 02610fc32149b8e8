// Acceptance (issue #15, 2 and 3): the client library publishes 100 tasks from code, each with its
// own args, env, stdin and files as data, and consumes their results as they arrive, following the
// batch's event stream (resumed where it left off after a broken connection); status and cancel.
// On SQLite, and again on PostgreSQL (the postgres project), where events are numbered once committed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { Project, ServerRefusedError, ServerUnreachableError, type TaskResult } from '../../owner/index.ts';
import { API, fromBase64, toBase64, type Lease, type WorkResponse } from '../../src/protocol/index.ts';
import { closedPort, writeKey } from '../helpers/server.ts';
import { freshStore } from '../helpers/engine.ts';
import { TestDevice } from '../helpers/device.ts';
import { TINY_MODULE } from '../helpers/tasks.ts';

let dataDir: string;
let server: DewgridServer;
let url: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-client-'));
  await writeKey(dataDir);
  server = await createServer({ dataDir, ...(await freshStore()) });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const post = async (path: string, body: unknown) =>
  (await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();

/**
 * A device that computes each task from its manifest as the program would (its stdout names the
 * task's args, env, stdin and input files), a few tasks at a time with pauses between: results
 * arrive over a few seconds, not at once. Tells when it posted each result.
 */
async function donate(device: TestDevice, posted: Map<string, number>, options: { perRequest: number; pauseMs: number; exitCode?: (index: number) => number }): Promise<void> {
  for (;;) {
    const { leases } = (await post(API.work, device.work(options.perRequest))) as WorkResponse;
    if (leases.length === 0) return;
    for (const lease of leases as Lease[]) {
      const m = lease.task.manifest;
      const blob = async (sha256: string) => new TextDecoder().decode(new Uint8Array(await (await fetch(url + API.blob(sha256))).arrayBuffer()));
      const stdin = m.stdin ? await blob(m.stdin.sha256) : '';
      const files = await Promise.all(m.files.map(async (f) => `${f.path}=${await blob(f.blob.sha256)}`));
      const stdout = `args=${m.args.join(' ')} env=${m.env.map(([k, v]) => `${k}:${v}`).join(',')} stdin=${stdin} files=${files.join(',')} preopens=${m.preopens.join(',')}`;
      const index = Number(m.taskId.split('-').pop());
      const result = await device.sign({
        leaseId: lease.leaseId,
        taskId: m.taskId,
        deviceId: device.deviceId,
        exitCode: options.exitCode?.(index) ?? 0,
        stdout: toBase64(new TextEncoder().encode(stdout)),
        stderr: '',
        files: [{ path: '/out/square.txt', data: toBase64(new TextEncoder().encode(String(index * index))) }],
        truncated: { stdout: false, stderr: false, files: false },
        error: null,
        timings: { fetchMs: 1, compileMs: 1, runMs: 1 },
      });
      expect(await post(API.results, result)).toEqual({ status: 'accepted' });
      posted.set(m.taskId, Date.now());
    }
    await new Promise((r) => setTimeout(r, options.pauseMs));
  }
}

describe('the client library', () => {
  it('publishes 100 tasks from code and yields each result as it is agreed', async () => {
    const project = await Project.open(dataDir, { server: url });
    const tasks = Array.from({ length: 100 }, (_, i) => ({
      args: [String(i)],
      env: { INDEX: String(i), MODE: i % 2 ? 'odd' : 'even' },
      stdin: `line ${i}\n`,
      files: { '/data/input.txt': new TextEncoder().encode(`input ${i}`) },
      dirs: ['/out'],
    }));
    const progress: string[] = [];
    const batch = await project.publish({ module: TINY_MODULE, name: 'squares', tasks }, { onProgress: (p) => progress.push(p.step) });
    expect(batch.taskIds).toHaveLength(100);
    expect(progress.filter((s) => s === 'signing')).toHaveLength(100);
    expect([...new Set(progress)]).toEqual(['signing', 'blobs', 'uploading', 'verifying']);
    expect((await batch.status()).counts.queued).toBe(100);

    // Consumed while a device computes: each result is yielded soon after it is posted.
    const posted = new Map<string, number>();
    const yielded: { result: TaskResult; at: number }[] = [];
    const consuming = (async () => {
      for await (const result of batch.results()) yielded.push({ result, at: Date.now() });
    })();
    const device = await TestDevice.create();
    await donate(device, posted, { perRequest: 5, pauseMs: 150 });
    await consuming;

    expect(yielded.map((y) => y.result.taskId).sort()).toEqual([...batch.taskIds!].sort());
    // As they arrive, not at the end: the first came before the last was posted, and each soon after its own.
    const lastPosted = Math.max(...posted.values());
    expect(yielded[0]!.at).toBeLessThan(lastPosted);
    const delays = yielded.map((y) => y.at - posted.get(y.result.taskId)!).sort((a, b) => a - b);
    expect(delays[Math.floor(delays.length / 2)], `median delay of ${delays.length}`).toBeLessThan(2000);

    // Each task got its own data, as it was given.
    for (const { result } of yielded) {
      const i = result.index;
      expect(result).toMatchObject({ state: 'done', ok: true, exitCode: 0, args: ['squares', String(i)] });
      expect(result.stdoutText).toBe(`args=squares ${i} env=INDEX:${i},MODE:${i % 2 ? 'odd' : 'even'} stdin=line ${i}\n files=/data/input.txt=input ${i} preopens=/out,/data`);
      expect(result.files.map((f) => [f.path, new TextDecoder().decode(f.data)])).toEqual([['/out/square.txt', String(i * i)]]);
    }
    expect((await batch.status()).counts.done).toBe(100);

    // A batch already finished yields everything at once, then ends; its events resume where asked.
    const again: string[] = [];
    for await (const result of project.batch(batch.id).results()) again.push(result.taskId);
    expect(again.sort()).toEqual([...batch.taskIds!].sort());
    const events = [];
    for await (const event of batch.events()) events.push(event);
    expect(events.at(-1)).toMatchObject({ type: 'end', counts: { done: 100 } });
    const middle = events[100]!.id;
    const rest = [];
    for await (const event of batch.events({ after: middle })) rest.push(event.id);
    expect(rest).toEqual(events.slice(101).map((e) => e.id));
  });

  it('says how a task ended when it did not succeed, cancels, and reads the batch list', async () => {
    const project = await Project.open(dataDir, { server: url });
    const batch = await project.publish({ module: TINY_MODULE, name: 'mixed', batchId: 'mixed', tasks: [{ args: ['a'] }, { args: ['b'] }, { args: ['c'] }] });
    const device = await TestDevice.create();
    // Two of three answered, the second with exit code 2; then the owner cancels the rest.
    const { leases } = (await post(API.work, device.work(2))) as WorkResponse;
    for (const [i, lease] of leases.entries()) {
      const result = await device.sign({
        leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: device.deviceId, exitCode: i === 1 ? 2 : 0,
        stdout: '', stderr: toBase64(new TextEncoder().encode(i === 1 ? 'no such file' : '')), files: [],
        truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 1, runMs: 1 },
      });
      await post(API.results, result);
    }
    const cancelled = await batch.cancel();
    expect(cancelled).toMatchObject({ batchId: 'mixed', cancelled: 1, status: { counts: { done: 1, 'exit-nonzero': 1, cancelled: 1, queued: 0 } } });
    const results = new Map<string, TaskResult>();
    for await (const result of batch.results()) results.set(result.taskId, result);
    expect(results.get('mixed-0')).toMatchObject({ state: 'done', ok: true, agreed: true });
    expect(results.get('mixed-1')).toMatchObject({ state: 'exit-nonzero', ok: false, agreed: true, exitCode: 2, stderrText: 'no such file' });
    expect(results.get('mixed-2')).toMatchObject({ state: 'cancelled', ok: false, agreed: false, exitCode: null });
    // Cancelling again changes nothing; the batch list has it.
    expect((await batch.cancel()).cancelled).toBe(0);
    expect((await project.batches()).map((b) => b.batchId)).toContain('mixed');
  });

  it('names what is wrong: a bad field before anything is sent, an unknown batch, a server that is down', async () => {
    const project = await Project.open(dataDir, { server: url });
    await expect(project.publish({ module: TINY_MODULE, tasks: [{ files: { 'relative.txt': 'x' } }] })).rejects.toThrow(/tasks\.0\.files\.0: guest path "relative\.txt" must be absolute/);
    await expect(project.publish({ module: new Uint8Array([1, 2, 3, 4]), tasks: [{}] })).rejects.toThrow(/module: not a WebAssembly module/);
    await expect(project.publish({ module: TINY_MODULE, tasks: [] })).rejects.toThrow(/tasks: at least one task/);
    const missing = await project.batch('nope').status().catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ServerRefusedError);
    expect(missing).toMatchObject({ status: 404, code: 'not-found', message: '404 no batch nope' });
    const port = await closedPort();
    const down = await Project.open(dataDir, { server: `http://127.0.0.1:${port}` });
    const refused = await down.publish({ module: TINY_MODULE, tasks: [{}] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServerUnreachableError);
    expect((refused as Error).message).toBe(`no server answers at http://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port})`);
  });

  it('opens a project from explicit keys and a server URL', async () => {
    const file = JSON.parse((await import('node:fs')).readFileSync(join(dataDir, 'keys', `${(await Project.open(dataDir, { server: url })).keyId}.json`), 'utf8'));
    const project = await Project.connect({ server: `${url}/`, key: { secretKey: file.secretKey } });
    expect(project.keyId).toBe(file.keyId);
    expect(project.server).toBe(url);
    expect((await project.batches()).length).toBeGreaterThan(0);
    await expect(Project.connect({ server: url, key: { secretKey: fromBase64(file.secretKey).subarray(0, 16) } })).rejects.toThrow(/32 bytes, not 16/);
    await expect(Project.connect({ server: 'localhost:8787', key: { secretKey: file.secretKey } })).rejects.toThrow(/server: an http\(s\) URL/);
  });
});
