// Hostile donors (issue #13, items 1-4 and 9; #12's failure reports; #16's lease budget): each
// test performs an attack the security review found, as it was described, against the server's
// API, and shows it fails, comparing the server's state before and after. Device keys are free:
// the attacker makes as many as it likes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer, type ServerOptions } from '../../server/app.ts';
import {
  API,
  RESULT_BODY_TYPE,
  resultBodyParts,
  toBase64,
  type BatchStatus,
  type DeviceCredit,
  type Lease,
  type ResultSubmission,
  type TaskManifest,
  type TaskResultView,
} from '../../src/protocol/index.ts';
import * as rules from '../../server/store/rules.ts';
import { MAX_KEYSET_REFUSALS } from '../../server/store/index.ts';
import { ownerHeaders, writeKey, type SigningKey } from '../helpers/server.ts';
import { freshStore, TEST_ENGINE } from '../helpers/engine.ts';
import { TestDevice } from '../helpers/device.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';

let dataDir: string;
let server: DewgridServer;
let key: SigningKey;
let clock: number;
/** The store this test runs on: SQLite in dataDir, or a new PostgreSQL database (test/helpers/engine.ts). */
let database: { databaseUrl?: string };

async function start(options: Partial<ServerOptions> = {}) {
  server = await createServer({ dataDir, ...database, now: () => clock, random: () => 0.5, ...options });
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-hostile-'));
  key = await writeKey(dataDir);
  clock = Date.now();
  database = await freshStore();
  await start();
});

afterEach(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A request as its sender makes it: the owner's routes (publishing, reading batches) with the owner's token. */
async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  const owner = url.startsWith(API.batches) || url === API.keysetRefusals ? await ownerHeaders(key) : {};
  const response = await server.app.inject({
    method,
    url,
    headers: { ...owner, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(payload === undefined ? {} : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
  });
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : null, headers: response.headers };
}

async function publish(batchId: string, count: number, overrides: Partial<TaskManifest> = {}, adaptive = false) {
  const request = await publishRequest(key, batchId, count, overrides);
  if (adaptive) request.batch.adaptive = true;
  const response = await call('POST', API.batches, request);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

async function lease(device: TestDevice, max = 1): Promise<Lease[]> {
  const response = await call('POST', API.work, device.work(max));
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.leases;
}

async function answer(device: TestDevice, l: Lease, stdout: string, change: object = {}) {
  return call('POST', API.results, await device.sign({ ...resultFor(l, device.deviceId, stdout), work: 2_000_000, ...change }));
}

async function fail(device: TestDevice, l: Lease, code: 'trap' | 'device' = 'trap', message = 'unreachable') {
  return call('POST', API.results, await device.sign({ ...resultFor(l, device.deviceId, '', { code: code as 'trap', message }), work: null }));
}

async function refuse(device: TestDevice, l: Lease, reason: 'bad-signature' | 'module-hash-mismatch' | 'replayed-task' = 'bad-signature') {
  return call(
    'POST',
    API.refusals,
    await device.refusal({ kind: 'task', leaseId: l.leaseId, taskId: l.task.manifest.taskId, deviceId: device.deviceId, reason, detail: 'says the attacker' }),
  );
}

/** Posts a signed result in the binary form (docs/protocol.md): the outputs raw after a JSON head. */
async function postBinary(submission: ResultSubmission) {
  const { stdout, stderr, files, ...rest } = submission;
  const decode = (text: string) => Buffer.from(text, 'base64'); // (atob takes seconds on the attack's 45 MiB)
  const outputs = [decode(stdout), decode(stderr), ...files.map((f) => decode(f.data))];
  const head = { ...rest, stdout: { size: outputs[0]!.length }, stderr: { size: outputs[1]!.length }, files: files.map((f, i) => ({ path: f.path, size: outputs[i + 2]!.length })) };
  const body = Buffer.concat(resultBodyParts(head, outputs) as Uint8Array[]);
  const response = await server.app.inject({ method: 'POST', url: API.results, headers: { 'content-type': RESULT_BODY_TYPE }, payload: body });
  return { status: response.statusCode, body: JSON.parse(response.body) };
}

const status = async (batchId: string): Promise<BatchStatus> => (await call('GET', API.batch(batchId))).body;
const tasks = async (batchId: string): Promise<TaskResultView[]> => (await call('GET', API.batchResults(batchId))).body.tasks;
const credit = async (device: TestDevice): Promise<DeviceCredit> => (await call('GET', API.device(device.deviceId))).body;
/** What an owner sees of a batch's outcome: its counts, and every task's state, canonical output and results taken. */
const seen = async (batchId: string) => ({
  counts: (await status(batchId)).counts,
  tasks: (await tasks(batchId)).map(({ taskId, state, stdout, results }) => ({ taskId, state, stdout, results })),
});

/**
 * Makes devices trusted the honest way: TRUST_AFTER_VALID results in a row on tasks of redundancy
 * 2, each corroborated by the other device (published as its own batch, finished before the test).
 */
async function trustedPair(): Promise<[TestDevice, TestDevice]> {
  const pair: [TestDevice, TestDevice] = [await TestDevice.create(), await TestDevice.create()];
  await publish('earn', rules.TRUST_AFTER_VALID, { redundancy: 2 });
  while (((await credit(pair[0])).consecutiveValid ?? 0) < rules.TRUST_AFTER_VALID) {
    const mine = await lease(pair[0], 4);
    const theirs = await lease(pair[1], mine.length);
    for (const [i, l] of mine.entries()) {
      await answer(pair[0], l, `r-${l.task.manifest.taskId}`);
      await answer(pair[1], theirs[i]!, `r-${l.task.manifest.taskId}`);
    }
  }
  for (const device of pair) expect(await credit(device)).toMatchObject({ trusted: true });
  return pair;
}

describe('#13.1: refusals and errors from devices that earned nothing do not end a task', () => {
  it('three fresh keys reporting errors do not fail a task an honest device is running; it is re-issued and finished', async () => {
    await publish('b', 1, { redundancy: 2 });
    const honest = [await TestDevice.create(), await TestDevice.create()];
    const [running] = await lease(honest[0]!);
    const before = await seen('b');
    // The attack: three fresh keys, each leasing the task's free replica and reporting an error.
    for (let i = 0; i < 3; i++) {
      const attacker = await TestDevice.create();
      const [l] = await lease(attacker);
      expect(l?.task.manifest.taskId, `attacker ${i} leases it`).toBe('b-0');
      expect((await fail(attacker, l!)).status).toBe(200);
    }
    const after = await seen('b');
    expect(after).toEqual(before); // still running, nothing failed
    expect((await status('b')).reports).toEqual({ errors: 3, refusals: 0, deviceFailures: 0, fromNewDevices: 3, awaitingTrust: 0 });
    // The honest devices finish it.
    const [second] = await lease(honest[1]!);
    await answer(honest[0]!, running!, 'right');
    await answer(honest[1]!, second!, 'right');
    expect((await tasks('b'))[0]).toMatchObject({ state: 'done', stdout: 'right' });
  });

  it('three fresh keys refusing a task do not refuse it; past its replica cap it waits for a device that earned trust, which finishes it', async () => {
    const [trusted] = await trustedPair();
    await publish('b', 1);
    const before = await seen('b');
    for (let i = 0; i < 3; i++) {
      const attacker = await TestDevice.create();
      const [l] = await lease(attacker);
      expect(l, `attacker ${i}`).toBeTruthy();
      expect((await refuse(attacker, l!)).status).toBe(200);
    }
    expect(await seen('b')).toEqual(before);
    const reported = await status('b');
    expect(reported.reports).toEqual({ errors: 0, refusals: 3, deviceFailures: 0, fromNewDevices: 3, awaitingTrust: 1 });
    expect(reported.refusals.map((r) => r.newDevice)).toEqual([true, true, true]);
    // A thousand more keys cannot reach it: past its cap it goes only to trusted devices.
    expect(await lease(await TestDevice.create())).toEqual([]);
    const [l] = await lease(trusted);
    expect(l?.task.manifest.taskId).toBe('b-0');
    await answer(trusted, l!, 'fine');
    expect((await tasks('b'))[0]).toMatchObject({ state: 'done', stdout: 'fine' });
  });

  it('however many fresh keys report, a task neither fails nor stores more than its cap of their reports', async () => {
    await publish('b', 1);
    for (let i = 0; i < 20; i++) {
      const attacker = await TestDevice.create();
      const [l] = await lease(attacker);
      if (l) await (i % 2 ? refuse(attacker, l) : fail(attacker, l));
    }
    const s = await status('b');
    expect(s.counts).toMatchObject({ queued: 1, failed: 0, refused: 0 });
    expect(s.reports.fromNewDevices).toBe(rules.replicaCap(1));
  });

  it('two devices that earned trust do end it; a device failure (`device`) never counts against it', async () => {
    const [a, b] = await trustedPair();
    await publish('b', 1);
    const newcomer = await TestDevice.create();
    const [n] = await lease(newcomer);
    expect((await fail(newcomer, n!, 'device', 'the worker would not start')).status).toBe(200);
    expect((await status('b')).counts).toMatchObject({ queued: 1 });
    const [la] = await lease(a);
    await fail(a, la!);
    expect((await status('b')).counts).toMatchObject({ queued: 1, failed: 0 });
    const [lb] = await lease(b);
    await fail(b, lb!);
    const s = await status('b');
    expect(s.counts).toMatchObject({ failed: 1 });
    expect(s.reports).toEqual({ errors: 2, refusals: 0, deviceFailures: 1, fromNewDevices: 1, awaitingTrust: 0 });
    expect(s.failures.map((f) => [f.code, f.newDevice])).toEqual([
      ['device', true],
      ['trap', false],
      ['trap', false],
    ]);
  });

  it('a keyset refusal must be signed by a registered device, is stored once per device and version, at most MAX_KEYSET_REFUSALS in all, and is rate-limited', async () => {
    const device = await TestDevice.create();
    const report = { kind: 'keyset' as const, deviceId: device.deviceId, version: 7, reason: 'keyset-rollback' as const, detail: 'older than held' };
    const before = (await call('GET', API.keysetRefusals)).body;
    // Unsigned (as the review posted it): refused.
    let response = await call('POST', API.refusals, report);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/^body\.signature: /);
    // Signed by a key the server never registered.
    response = await call('POST', API.refusals, await device.refusal(report));
    expect(response.status).toBe(403);
    expect(response.body.message).toMatch(/no key on record/);
    expect((await call('GET', API.keysetRefusals)).body).toEqual(before);
    // Registered: recorded once; the same again is a duplicate, another report on that version a conflict.
    await lease(device);
    expect((await call('POST', API.refusals, await device.refusal(report))).body).toEqual({ status: 'recorded' });
    expect((await call('POST', API.refusals, await device.refusal(report))).body).toEqual({ status: 'duplicate' });
    expect((await call('POST', API.refusals, await device.refusal({ ...report, detail: 'other' }))).status).toBe(409);
    // One device posting without pause is told to wait.
    const statuses = new Set<number>();
    for (let version = 100; version < 100 + rules.MAX_DEVICE_LEASES * 4; version++) {
      statuses.add((await call('POST', API.refusals, await device.refusal({ ...report, version }))).status);
      if (statuses.has(429)) break;
    }
    expect(statuses).toContain(429);
  });

  it('a flood of keyset refusals from many keys keeps at most MAX_KEYSET_REFUSALS, dropping those of devices without trust first', async () => {
    await server.close();
    await start({ deviceLimits: { newKeysPerAddress: { perSecond: 1, burst: 5000 } } });
    const [trusted] = await trustedPair();
    const kept = { kind: 'keyset' as const, deviceId: trusted.deviceId, version: 2, reason: 'keyset-bad-signature' as const, detail: 'from a trusted device' };
    expect((await call('POST', API.refusals, await trusted.refusal(kept))).body).toEqual({ status: 'recorded' });
    for (let i = 0; i < MAX_KEYSET_REFUSALS + 20; i++) {
      const attacker = await TestDevice.create();
      await call('POST', API.work, attacker.work(1));
      const flood = { kind: 'keyset' as const, deviceId: attacker.deviceId, version: 1, reason: 'keyset-rollback' as const, detail: `flood ${i}` };
      expect((await call('POST', API.refusals, await attacker.refusal(flood))).status).toBe(200);
    }
    const stored = (await call('GET', API.keysetRefusals)).body as { deviceId: string; newDevice: boolean; detail: string }[];
    expect(stored).toHaveLength(MAX_KEYSET_REFUSALS);
    expect(stored.filter((r) => !r.newDevice).map((r) => r.detail)).toEqual(['from a trusted device']);
  }, 180_000);
});

describe('#13.2: leases are bounded by proven throughput, renewed only with progress, and die at expiry', () => {
  it('one new key asking for all 108 demo tiles gets a few; the rest go to others', async () => {
    await publish('tiles', 108, { limits: { memoryBytes: 2 ** 24, wallTimeMs: 60_000, outputBytes: 2 ** 20 } });
    const squatter = await TestDevice.create();
    let held = 0;
    for (let i = 0; i < 4; i++) held += (await lease(squatter, 64)).length;
    expect(held).toBe(rules.NEW_DEVICE_LEASES);
    expect((await status('tiles')).counts).toMatchObject({ running: rules.NEW_DEVICE_LEASES, queued: 108 - rules.NEW_DEVICE_LEASES });
    expect(await lease(await TestDevice.create(), 64)).toHaveLength(rules.NEW_DEVICE_LEASES);
  });

  it('a device that proves its throughput gets more', async () => {
    await publish('b', 40);
    const worker = await TestDevice.create();
    for (const l of await lease(worker, 64)) await answer(worker, l, 'ok');
    const next = await lease(worker, 64);
    expect(next).toHaveLength(rules.leaseAllowance(rules.NEW_DEVICE_LEASES));
    expect(next.length).toBeGreaterThan(rules.NEW_DEVICE_LEASES);
  });

  it('renewing every 30 s without progress keeps nothing: the tasks go to others after the lease time', async () => {
    await publish('b', 1, { limits: { memoryBytes: 2 ** 24, wallTimeMs: 60_000, outputBytes: 2 ** 20 } });
    const squatter = await TestDevice.create();
    const [held] = await lease(squatter);
    const renewal = await squatter.renewal(held!, 'running', 1);
    expect((await call('POST', API.renew, renewal)).status).toBe(200); // the first shows progress (from none)
    for (let i = 0; i < 20; i++) {
      clock += 30_000;
      const again = await call('POST', API.renew, renewal); // the same count again: no progress
      expect(again.status).toBe(409);
      expect(again.body.message).toMatch(/no progress|expired .* not renewed/); // or already expired: dead
    }
    // Ten minutes on, the task is another device's.
    const [taken] = await lease(await TestDevice.create());
    expect(taken?.task.manifest.taskId).toBe('b-0');
  });

  it('a lapsed lease is dead: renewing it brings nothing back', async () => {
    await publish('b', 1);
    const device = await TestDevice.create();
    const [l] = await lease(device);
    clock = l!.expiresAt + 1;
    const before = await seen('b');
    const revived = await call('POST', API.renew, await device.renewal(l!, 'running', 10));
    expect(revived.status).toBe(409);
    expect(revived.body.message).toMatch(/expired .* not renewed/);
    expect(await seen('b')).toEqual(before);
    expect((await status('b')).counts).toMatchObject({ queued: 1, running: 0 });
    expect(await lease(await TestDevice.create())).toHaveLength(1);
  });

  it('renewals with progress end at the lease\'s hard lifetime; progress past what the task allows is refused', async () => {
    const wallTimeMs = 60_000;
    await publish('b', 1, { limits: { memoryBytes: 2 ** 24, wallTimeMs, outputBytes: 2 ** 20 } });
    const device = await TestDevice.create();
    const [l] = await lease(device);
    const tooMuch = await call('POST', API.renew, await device.renewal(l!, 'running', rules.maxWork(wallTimeMs) + 1));
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.body.message).toMatch(/^progress: /);
    const end = rules.leaseTerms({ wallTimeMs, prepareBytes: 8 }, clock, rules.LEASE_MARGIN_MS).endsAt;
    let last = 0;
    for (let progress = 1; ; progress++) {
      clock += 20_000;
      const renewed = await call('POST', API.renew, await device.renewal(l!, 'running', progress * 1000));
      if (renewed.status !== 200) {
        expect(renewed.status).toBe(409);
        expect(renewed.body.message).toMatch(/end of its life/);
        break;
      }
      last = renewed.body.expiresAt;
      expect(last).toBeLessThanOrEqual(end);
    }
    expect(last).toBe(end);
    clock = end + 1;
    expect(await lease(await TestDevice.create())).toHaveLength(1);
  });
});

describe('#13.3: credit and trust only for work', () => {
  it('posting the agreed output after a task is done earns neither credit nor trust', async () => {
    await publish('b', rules.TRUST_AFTER_VALID, { redundancy: 2 });
    const [h1, h2, copier] = [await TestDevice.create(), await TestDevice.create(), await TestDevice.create()];
    for (let i = 0; i < rules.TRUST_AFTER_VALID; i++) {
      // h1 and h2 lease it; h2's lease lapses; the copier leases the free replica; h1 and h2 (late) finish it.
      const [a] = await lease(h1);
      const [b] = await lease(h2);
      clock = b!.expiresAt + 1;
      const [c] = await lease(copier);
      expect(c?.task.manifest.taskId).toBe(a!.task.manifest.taskId);
      await answer(h1, a!, `out-${i}`);
      await answer(h2, b!, `out-${i}`);
      const done = (await tasks('b'))[i]!;
      expect(done.state).toBe('done');
      // The copier reads the agreed output and posts it, signed, on its live lease.
      const before = await credit(copier).catch(() => null);
      expect((await answer(copier, c!, done.stdout as string)).body).toEqual({ status: 'accepted' });
      expect(await credit(copier)).toMatchObject({ validated: 0, consecutiveValid: 0, trusted: false });
      if (before?.deviceId) expect((await credit(copier)).validated).toBe(before.validated);
    }
    expect(await credit(copier)).toMatchObject({ validated: 0, consecutiveValid: 0, trusted: false });
  });

  it('a work claim of 1e308 is refused, naming it, and credits nothing', async () => {
    await publish('b', 1);
    const device = await TestDevice.create();
    const [l] = await lease(device);
    const before = await credit(device);
    const response = await answer(device, l!, 'ok', { work: 1e308 });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/work/);
    // Within the safe integers but beyond what the wall time allows: refused too.
    const beyond = await answer(device, l!, 'ok', { work: rules.maxWork(10_000) + 1 });
    expect(beyond.status).toBe(400);
    expect(beyond.body.message).toMatch(/^work: .* more than task b-0's wall time of 10000 ms allows/);
    expect(await credit(device)).toEqual(before);
    expect((await status('b')).counts).toMatchObject({ running: 1, done: 0 });
  });
});

describe('#13.4: the server enforces the caps it signs', () => {
  it('3 x 15 MiB of outputs for a task capped at 1 MiB, truncated: false, is refused and stores nothing', async () => {
    await server.close();
    await start(); // the default result body limit: a task's outputs at the largest caps
    await publish('b', 1, { limits: { memoryBytes: 2 ** 24, wallTimeMs: 10_000, outputBytes: 2 ** 20 } });
    const device = await TestDevice.create();
    const [l] = await lease(device);
    const big = Buffer.alloc(15 * 2 ** 20, 65).toString('base64');
    // The database's size on disk (SQLite; PostgreSQL's rows are counted by the outcome below).
    const database = () => (TEST_ENGINE === 'sqlite' ? statSync(join(dataDir, 'dewgrid.sqlite')).size + (statSync(join(dataDir, 'dewgrid.sqlite-wal'), { throwIfNoEntry: false })?.size ?? 0) : 0);
    const before = { seen: await seen('b'), bytes: database() };
    const response = await answer(device, l!, '', { stdout: big, stderr: big, files: [{ path: '/out/x', data: big }] });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/^stdout: 15728640 bytes, over task b-0's outputBytes of 1048576/);
    expect(await seen('b')).toEqual(before.seen);
    expect(database() - before.bytes).toBeLessThan(64 * 1024);
    // The same in the binary form: refused alike.
    const binary = await postBinary(await device.sign({ ...resultFor(l!, device.deviceId, ''), work: 1, stdout: big, stderr: big, files: [{ path: '/out/x', data: big }] }));
    expect(binary.status).toBe(400);
    expect(binary.body.message).toMatch(/^stdout: 15728640 bytes, over task b-0's outputBytes/);
    expect(await seen('b')).toEqual(before.seen);
  }, 60_000);

  it('refuses output paths a task could not have made or an owner could not write side by side', async () => {
    await publish('b', 2);
    const device = await TestDevice.create();
    const [l] = await lease(device);
    const before = await seen('b');
    const file = (path: string) => ({ path, data: toBase64(new TextEncoder().encode('x')) });
    const cases: [string, { path: string; data: string }[], RegExp][] = [
      ['the root', [file('/')], /^files\.0\.path: \/ is the root folder/],
      ['a file and a file inside it', [file('/a'), file('/a/b')], /^files\.1\.path: files\.0\.path \/a is a file, so \/a\/b cannot be one/],
      ['a 300-character name', [file(`/out/${'n'.repeat(300)}`)], /^files\.0\.path: a name of 300 bytes is longer than 255/],
      ['the same path twice', [file('/out/a'), file('/out/a')], /^files\.1\.path: \/out\/a is also files\.0\.path/],
      ['a checkpoint', [file('/checkpoint/state')], /^files\.0\.path: files under \/checkpoint/],
    ];
    // A fresh lease per case: a lease takes only a few refused results.
    for (const [name, files, message] of cases) {
      const response = await answer(device, l!, 'ok', { files });
      expect(response.status, name).toBe(400);
      expect(response.body.message, name).toMatch(message);
      expect(await seen('b'), name).toEqual(before);
      if (name === 'a 300-character name') break; // the lease's third refused result: see the next test
    }
    // The binary form, on another lease: the same rules.
    const [other] = await lease(device);
    const binary = await postBinary(await device.sign({ ...resultFor(other!, device.deviceId, 'ok'), work: 1, files: [file('/a'), file('/a/b')] }));
    expect(binary.status).toBe(400);
    expect(binary.body.message).toMatch(/^files\.1\.path: files\.0\.path \/a is a file/);
  });

  it('a lease takes at most 3 refused results, a device 10 in 10 minutes, an address 100, before its bodies are even checked', async () => {
    await publish('b', 12);
    const device = await TestDevice.create();
    const leases: Lease[] = [];
    // A new device holds 4 at a time: let each 4 lapse (a late result is still taken), lease the next.
    for (let round = 0; round < 3; round++) {
      const got = await lease(device, 4);
      leases.push(...got);
      clock = Math.max(...got.map((g) => g.expiresAt)) + 1;
    }
    expect(leases).toHaveLength(12);
    const overCap = { stdout: toBase64(new Uint8Array(2 ** 20 + 1)) };
    for (let i = 0; i < 3; i++) expect((await answer(device, leases[0]!, '', overCap)).status).toBe(400);
    const fourth = await answer(device, leases[0]!, 'ok');
    expect(fourth.status).toBe(409);
    expect(fourth.body.message).toMatch(/had 3 results refused: it takes no more/);
    // Seven more, on other leases: the tenth of the device's refused results in the window.
    for (let i = 1; i <= 7; i++) expect((await answer(device, leases[i]!, '', overCap)).status).toBe(400);
    const waiting = await answer(device, leases[8]!, 'ok');
    expect(waiting.status).toBe(429);
    expect(waiting.headers['retry-after']).toMatch(/^\d+$/);
    expect((await status('b')).counts.done).toBe(0);
    // Ten minutes on, it may try again.
    clock += 10 * 60_000;
    expect((await answer(device, leases[8]!, 'ok')).status).toBe(200);
  });
});

describe('#13.9: malformed results are 400s naming the field, never 500s', () => {
  it('stdout "A", fetchMs 1e999, a lone surrogate in error.message', async () => {
    await publish('b', 1);
    const device = await TestDevice.create();
    const [l] = await lease(device);
    const before = await seen('b');
    const signed = await device.sign({ ...resultFor(l!, device.deviceId, 'ok'), work: 1 });
    const json = JSON.stringify(signed);
    const cases: [string, string, RegExp][] = [
      ['stdout "A"', JSON.stringify({ ...signed, stdout: 'A' }), /^body\.stdout: must be base64 in whole groups of 4/],
      ['fetchMs 1e999', json.replace(/"fetchMs":1/, '"fetchMs":1e999'), /^body\.timings\.fetchMs: must be a finite number/],
      ['a lone surrogate', JSON.stringify({ ...signed, exitCode: null, error: { code: 'trap', message: 'x' } }).replace('"message":"x"', '"message":"\\ud800"'), /^body\.error\.message: must be well-formed Unicode/],
    ];
    for (const [name, body, message] of cases) {
      const response = await call('POST', API.results, body);
      expect(response.status, name).toBe(400);
      expect(response.body.message, name).toMatch(message);
      expect(await seen('b'), name).toEqual(before);
    }
    // The same care in refusals and renewals.
    const refusal = JSON.stringify(await device.refusal({ kind: 'task', leaseId: l!.leaseId, taskId: 'b-0', deviceId: device.deviceId, reason: 'bad-signature', detail: 'x' }));
    expect((await call('POST', API.refusals, refusal.replace('"detail":"x"', '"detail":"\\udc00"'))).body.message).toMatch(/^body\.detail: must be well-formed/);
    const renewal = JSON.stringify(await device.renewal(l!, 'running', 1));
    expect((await call('POST', API.renew, renewal.replace('"progress":1', '"progress":1e999'))).body.message).toMatch(/^body\.progress: /);
  });
});

describe('#12.2: a task a device could not prepare or run', () => {
  it('is reported as a signed `device` failure: not counted against the task, the lease dropped, never leased to that device again, and shown', async () => {
    await publish('b', 1);
    const device = await TestDevice.create();
    const [l] = await lease(device);
    expect((await status('b')).counts).toMatchObject({ running: 1 });
    expect((await fail(device, l!, 'device', 'the worker could not start: Worker is not defined')).body).toEqual({ status: 'accepted' });
    const s = await status('b');
    expect(s.counts).toMatchObject({ running: 0, queued: 1, failed: 0 });
    expect(s.failures).toMatchObject([{ taskId: 'b-0', deviceId: device.deviceId, code: 'device', message: 'the worker could not start: Worker is not defined', newDevice: true }]);
    expect(s.reports).toMatchObject({ deviceFailures: 1, errors: 0 });
    expect(await lease(device)).toEqual([]);
    clock += 30 * 60_000; // half an hour on (the task expires after an hour): still never
    expect(await lease(device)).toEqual([]);
    expect(await lease(await TestDevice.create())).toHaveLength(1);
  });
});

describe('#16.4: a lease covers preparing a large module', () => {
  it('a 30 MB module: the lease has the time to prepare it, renewals while preparing extend it, one lease, no replay', async () => {
    // The server checks a module's hash and size, not its code: 30 MB of bytes stand for the
    // program here (test/e2e/large-module.test.ts prepares a real one in a browser).
    const module = new Uint8Array(30 * 2 ** 20).fill(7);
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(module).digest('hex');
    const request = await publishRequest(key, 'big', 1, { module: { sha256, size: module.length }, limits: { memoryBytes: 2 ** 24, wallTimeMs: 20_000, outputBytes: 2 ** 20 } });
    // Stored as publishing stores it, without sending 40 MB of base64 through the test.
    await server.store.writeBlobs(new Map([[sha256, module]]));
    request.blobs = {};
    expect((await call('POST', API.batches, request)).status).toBe(201);
    const device = await TestDevice.create();
    const issued = clock;
    const [l] = await lease(device);
    const prepareMs = rules.prepareAllowanceMs(module.length);
    expect(prepareMs).toBeGreaterThan(120_000); // at 250 kB/s: two minutes and more for 30 MB
    expect(l!.expiresAt).toBe(issued + prepareMs + 20_000 + rules.LEASE_MARGIN_MS);
    // A prepare slower still (twice the allowance): renewed with the bytes readied so far, it stays
    // this device's; renewals extend it up to its end (twice the time to prepare and run, plus the
    // margin), and say so once it is there.
    const { endsAt } = rules.leaseTerms({ wallTimeMs: 20_000, prepareBytes: module.length }, issued, rules.LEASE_MARGIN_MS);
    let readied = 0;
    let expiresAt = l!.expiresAt;
    while (clock < issued + 2 * prepareMs) {
      clock += 30_000;
      readied += Math.floor(module.length / 10);
      const renewed = await call('POST', API.renew, await device.renewal(l!, 'preparing', readied));
      if (renewed.status === 200) expiresAt = renewed.body.expiresAt;
      else expect(renewed.body.message, JSON.stringify(renewed.body)).toMatch(/end of its life/);
      expect(expiresAt).toBeGreaterThan(clock + 20_000);
      expect(await lease(await TestDevice.create())).toEqual([]); // nobody else is given it meanwhile
      expect(await lease(device)).toEqual([]); // nor the same device again: no lease it would refuse as a replay
    }
    expect(expiresAt).toBe(endsAt);
    clock += 15_000; // it ran
    expect(await lease(await TestDevice.create())).toEqual([]);
    expect((await answer(device, l!, 'ran')).body).toEqual({ status: 'accepted' });
    const [task] = (await call('GET', API.batchResults('big'))).body.tasks;
    expect(task).toMatchObject({ state: 'done', stdout: 'ran', refusals: [] });
    expect((await server.store.tasks('big'))[0]!.leases).toBe(1);
  }, 60_000);
});

describe('the Sybil budget (docs/security.md): what N free keys can still do', () => {
  it('R colluding keys that answer all R replicas first decide the output: a quorum cannot tell keys apart', async () => {
    await publish('b', 1, { redundancy: 2 });
    const [k1, k2, honest] = [await TestDevice.create(), await TestDevice.create(), await TestDevice.create()];
    const [l1] = await lease(k1);
    const [l2] = await lease(k2);
    expect(await lease(honest)).toEqual([]); // both replicas are the attacker's
    await answer(k1, l1!, 'wrong');
    await answer(k2, l2!, 'wrong');
    expect((await tasks('b'))[0]).toMatchObject({ state: 'done', stdout: 'wrong' });
  });

  it('two keys that corroborate each other earn trust, and two trusted keys end a task an honest device could have run', async () => {
    const [k1, k2] = await trustedPair();
    await publish('b', 1);
    for (const k of [k1, k2]) {
      const [l] = await lease(k);
      await fail(k, l!);
    }
    expect((await status('b')).counts).toMatchObject({ failed: 1 });
  });

  it('one address brings 200 new keys at once, then one every 6 s', async () => {
    const register = async () => (await call('POST', API.work, (await TestDevice.create()).work(1))).status;
    for (let i = 0; i < 200; i++) expect(await register(), `key ${i}`).toBe(200);
    const refused = await call('POST', API.work, (await TestDevice.create()).work(1));
    expect(refused.status).toBe(429);
    expect(refused.body.message).toMatch(/^new devices from .*: too many requests; try again in 6 s$/);
    expect(refused.headers['retry-after']).toBe('6');
    clock += 6_000;
    expect(await register()).toBe(200);
    expect(await register()).toBe(429);
  });
});
