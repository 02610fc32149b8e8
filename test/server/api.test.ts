// The task server's API: the happy path, leases, redundancy, and every kind of bad input getting
// the right 4xx while changing nothing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, fromBase64, generateKeyPair, keyIdOf, MAX_BLOB_BATCH, MAX_BLOB_BATCH_BYTES, RESULT_BODY_TYPE, resultBodyParts, sha256Hex, signTask, toBase64, type RefusalReason, type ResultSubmission } from '../../src/protocol/index.ts';
import { leaseTerms, LEASE_MARGIN_MS } from '../../server/store/rules.ts';
import { ownerHeaders, writeKey, type SigningKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { manifestFor, publishRequest, resultFor, TINY_MODULE } from '../helpers/tasks.ts';
import { freshStore, TEST_ENGINE } from '../helpers/engine.ts';

let dataDir: string;
/** The store this test runs on: SQLite in dataDir, or a new PostgreSQL database (test/helpers/engine.ts). */
let database: { databaseUrl?: string };
let server: DewgridServer;
let key: SigningKey;
let clock: number;

beforeEach(async () => {
  devices = new Map();
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-api-'));
  key = await writeKey(dataDir);
  clock = Date.now();
  database = await freshStore();
  server = await createServer({ dataDir, ...database, now: () => clock, bodyLimit: 64 * 1024, resultBodyLimit: 64 * 1024, publishBodyLimit: 1024 * 1024 });
});

afterEach(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const response = await server.app.inject({
    method,
    url,
    // As the project owner: the owner's routes need the token; device routes ignore it.
    headers: payload === undefined ? { ...(await ownerHeaders(key)), ...headers } : { 'content-type': 'application/json', ...(await ownerHeaders(key)), ...headers },
    payload: typeof payload === 'string' || payload === undefined ? payload : JSON.stringify(payload),
  });
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : null, headers: response.headers };
}

async function publish(batchId: string, count: number, overrides = {}) {
  const response = await call('POST', API.batches, await publishRequest(key, batchId, count, overrides));
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
}

/** Devices by the names the tests give them, each with its own key (ids are derived from keys). */
let devices: Map<string, TestDevice>;
async function device(name: string): Promise<TestDevice> {
  let d = devices.get(name);
  if (!d) devices.set(name, (d = await TestDevice.create()));
  return d;
}
const id = async (name: string) => (await device(name)).deviceId;

/** A result for the lease, signed by the named device; `change` is applied before signing. */
async function result(l: { leaseId: string; task: { manifest: { taskId: string } } }, name: string, stdout = 'ok', error: { code: 'trap'; message: string } | null = null, change: object = {}) {
  const d = await device(name);
  return d.sign({ ...resultFor(l, d.deviceId, stdout, error), ...change });
}

async function refusalFor(lease: { leaseId: string; task: { manifest: { taskId: string } } }, name: string, reason: RefusalReason = 'module-hash-mismatch', detail = 'expected X, got Y') {
  return (await device(name)).refusal({ kind: 'task', leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: await id(name), reason, detail });
}

async function lease(name: string, max = 1) {
  const response = await call('POST', API.work, (await device(name)).work(max));
  expect(response.status).toBe(200);
  return response.body.leases as { leaseId: string; expiresAt: number; task: { manifest: { taskId: string } } }[];
}

/** Everything observable about a batch, to show a rejected request changed nothing. */
async function snapshot(batchId: string) {
  return { status: (await call('GET', API.batch(batchId))).body, results: (await call('GET', API.batchResults(batchId))).body };
}

describe('happy path', () => {
  it('publish -> lease -> result -> done, with results readable', async () => {
    await publish('b1', 2);
    const [l1, l2] = await lease('dev1', 2);
    expect(l1 && l2).toBeTruthy();
    expect((await call('GET', API.batch('b1'))).body.counts).toMatchObject({ running: 2, queued: 0 });
    expect((await call('POST', API.results, await result(l1!, 'dev1', 'hello'))).body).toEqual({ status: 'accepted' });
    expect((await call('POST', API.results, await result(l2!, 'dev1', 'world'))).body).toEqual({ status: 'accepted' });
    const results = (await call('GET', API.batchResults('b1'))).body;
    expect(results.tasks.map((t: { state: string; stdout: string }) => [t.state, t.stdout])).toEqual([
      ['done', 'hello'],
      ['done', 'world'],
    ]);
    expect(await lease('dev2')).toEqual([]);
  });

  it('takes results as binary bodies (outputs raw after a JSON head), the same result as their JSON form, and names what is wrong with a bad one', async () => {
    await publish('b1', 2);
    const [l1, l2] = await lease('dev1', 2);
    const binary = (submission: ResultSubmission, mangle: (body: Uint8Array) => Uint8Array = (b) => b) => {
      const { stdout, stderr, files, ...rest } = submission;
      const outputs = [fromBase64(stdout), fromBase64(stderr), ...files.map((f) => fromBase64(f.data))];
      const head = { ...rest, stdout: { size: outputs[0]!.length }, stderr: { size: outputs[1]!.length }, files: files.map((f, i) => ({ path: f.path, size: outputs[i + 2]!.length })) };
      const parts = resultBodyParts(head, outputs) as Uint8Array[];
      const body = mangle(Uint8Array.from(parts.flatMap((p) => [...p])));
      return server.app.inject({ method: 'POST', url: API.results, headers: { 'content-type': RESULT_BODY_TYPE }, payload: Buffer.from(body) });
    };
    const first = await result(l1!, 'dev1', 'bytes \u0000\u00ff hello');
    expect(JSON.parse((await binary(first)).body)).toEqual({ status: 'accepted' });
    // The same result again, as JSON: the server already has it.
    expect((await call('POST', API.results, first)).body).toEqual({ status: 'duplicate' });
    const results = (await call('GET', API.batchResults('b1'))).body;
    expect(results.tasks[0].stdout).toBe('bytes \u0000\u00ff hello');

    const second = await result(l2!, 'dev1', 'world');
    for (const [mangle, message] of [
      [(b: Uint8Array) => b.subarray(0, 2), /4-byte length of its head/],
      [(b: Uint8Array) => b.subarray(0, b.length - 1), /add up to more than/],
      [(b: Uint8Array) => Uint8Array.from([...b, 0]), /1 bytes follow the outputs/],
      [(b: Uint8Array) => Uint8Array.from([0, 0, 0, 2, 0x7b, 0x7d]), /an output size that is not a whole number/],
    ] as const) {
      const response = await binary(second, mangle);
      expect(response.statusCode).toBe(400);
      expect(JSON.parse(response.body).message).toMatch(message);
    }
    // A signature over other outputs is refused as before.
    const forged = await binary({ ...second, stdout: toBase64(new TextEncoder().encode('other')) });
    expect(forged.statusCode).toBe(403);
    expect(JSON.parse((await binary(second)).body)).toEqual({ status: 'accepted' });
  });

  it('serves blobs by hash with immutable caching', async () => {
    await publish('b1', 1);
    const hash = await sha256Hex(TINY_MODULE);
    const response = await server.app.inject({ method: 'GET', url: API.blob(hash) });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/wasm');
    expect(response.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(new Uint8Array(response.rawPayload)).toEqual(TINY_MODULE);
  });

  it('serves many blobs in one response, their bytes one after another in the order asked, repeats included', async () => {
    const blobs = [new TextEncoder().encode('first input'), new Uint8Array(70_000).map((_, i) => i % 251), new Uint8Array(0)];
    const hashes = await Promise.all(blobs.map(sha256Hex));
    await server.store.writeBlobs(new Map(blobs.map((bytes, i) => [hashes[i]!, bytes])));
    const asked = [hashes[1]!, hashes[0]!, hashes[2]!, hashes[1]!];
    const response = await server.app.inject({ method: 'POST', url: API.blobBatch, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ hashes: asked }) });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['cache-control']).toBe('no-store');
    expect(new Uint8Array(response.rawPayload)).toEqual(new Uint8Array([...blobs[1]!, ...blobs[0]!, ...blobs[2]!, ...blobs[1]!]));
  });

  it('refuses a blob batch past MAX_BLOB_BATCH_BYTES, naming where it went over, having read no further', async () => {
    const big = [new Uint8Array(MAX_BLOB_BATCH_BYTES / 2 + 1).fill(1), new Uint8Array(MAX_BLOB_BATCH_BYTES / 2).fill(2)];
    const hashes = await Promise.all(big.map(sha256Hex));
    await server.store.writeBlobs(new Map(big.map((bytes, i) => [hashes[i]!, bytes])));
    const asBatch = (hashes: string[]) => server.app.inject({ method: 'POST', url: API.blobBatch, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ hashes }) });
    expect((await asBatch([hashes[1]!, hashes[1]!])).rawPayload.length).toBe(MAX_BLOB_BATCH_BYTES); // exactly the limit
    const over = await call('POST', API.blobBatch, { hashes: [hashes[0]!, hashes[1]!, '0'.repeat(64)] });
    expect(over.status).toBe(400);
    expect(over.body.message).toBe(`the blobs asked for come to more than ${MAX_BLOB_BATCH_BYTES} bytes by body.hashes.1: ask for fewer in one batch`);
  });

  it('reissues a lapsed lease to the next device that asks', async () => {
    await publish('b1', 1);
    const [first] = await lease('dev1');
    expect(await lease('dev2')).toEqual([]); // redundancy 1: leased out
    clock = first!.expiresAt + 1;
    const [second] = await lease('dev2');
    expect(second?.task.manifest.taskId).toBe(first!.task.manifest.taskId);
  });

  it('needs R distinct devices for redundancy R', async () => {
    await publish('b1', 1, { redundancy: 2 });
    const [a] = await lease('dev1');
    expect(await lease('dev1')).toEqual([]); // never the same task twice to one device
    const [b] = await lease('dev2');
    await call('POST', API.results, await result(a!, 'dev1'));
    expect((await call('GET', API.batch('b1'))).body.counts.done).toBe(0);
    await call('POST', API.results, await result(b!, 'dev2'));
    expect((await call('GET', API.batch('b1'))).body.counts.done).toBe(1);
  });

  it('re-issues a task after an error, shows the error, and ends it only on trusted devices\' word (test/server/hostile-donors.test.ts)', async () => {
    await publish('b1', 1);
    for (const device of ['d1', 'd2']) {
      const [l] = await lease(device);
      expect(l, device).toBeTruthy();
      await call('POST', API.results, await result(l!, device, '', { code: 'trap', message: 'unreachable' }));
    }
    const status = (await call('GET', API.batch('b1'))).body;
    expect(status.counts).toMatchObject({ failed: 0, queued: 1 });
    expect(status.reports).toEqual({ errors: 2, refusals: 0, deviceFailures: 0, fromNewDevices: 2, awaitingTrust: 0 });
    expect(status.failures).toMatchObject([
      { taskId: 'b1-0', deviceId: await id('d1'), code: 'trap', message: 'unreachable', newDevice: true },
      { taskId: 'b1-0', deviceId: await id('d2'), code: 'trap', message: 'unreachable', newDevice: true },
    ]);
    const results = (await call('GET', API.batchResults('b1'))).body;
    expect(results.tasks[0].error).toEqual({ code: 'trap', message: 'unreachable' });
    expect(await lease('d3')).toHaveLength(1);
  });

  it('records refusals with their reason and shows them in status', async () => {
    await publish('b1', 1);
    const [l] = await lease('dev1');
    const refusal = await refusalFor(l!, 'dev1');
    expect((await call('POST', API.refusals, refusal)).status).toBe(200);
    const status = (await call('GET', API.batch('b1'))).body;
    expect(status.refusals).toMatchObject([{ taskId: 'b1-0', reason: 'module-hash-mismatch', deviceId: await id('dev1'), newDevice: true }]);
    expect(await lease('dev1')).toEqual([]); // never offered again to the device that refused it
    expect(await lease('dev2')).toHaveLength(1);
  });

  it('marks tasks whose manifest expired', async () => {
    await publish('b1', 1, { expiresAt: clock + 1000 });
    clock += 2000;
    expect(await lease('dev1')).toEqual([]);
    expect((await call('GET', API.batch('b1'))).body.counts.expired).toBe(1);
  });
});

describe('bad input gets the right 4xx and changes nothing', () => {
  it('every case', async () => {
    await publish('b1', 2);
    const [l] = await lease('dev1');
    const other = (await lease('dev2'))[0]!;
    await call('POST', API.results, await result(l!, 'dev1', 'first'));
    const before = await snapshot('b1');

    const cases: [string, () => Promise<{ status: number; body: { error: string; message: string } }>, number, RegExp][] = [
      ['malformed JSON', async () => call('POST', API.work, '{"deviceId": '), 400, /JSON/i],
      ['wrong content type', async () => call('POST', API.work, 'deviceId=x', { 'content-type': 'text/plain' }), 415, /application\/json/],
      ['wrong types', async () => call('POST', API.work, { deviceId: 7, engines: ['wasi-preview1'], max: 1 }), 400, /deviceId/],
      ['unknown engine', async () => call('POST', API.work, { ...(await device('dev1')).work(), engines: ['dos'] }), 400, /engines/],
      ['extra field', async () => call('POST', API.work, { ...(await device('dev1')).work(), admin: true }), 400, /admin/],
      ['a device id that is not its key\'s', async () => call('POST', API.work, { ...(await device('dev1')).work(), deviceId: await id('dev2') }), 400, /not the id of this publicKey/],
      ['a public key of the wrong size', async () => call('POST', API.work, { ...(await device('dev1')).work(), publicKey: toBase64(new Uint8Array(31)) }), 400, /32 bytes/],
      ['oversized body', async () => call('POST', API.results, await result(other, 'dev2', 'ok', null, { stdout: 'A'.repeat(100_000) })), 413, /larger/],
      ['unknown blob hash', async () => call('GET', API.blob('0'.repeat(64))), 404, /no blob/],
      ['malformed blob hash', async () => call('GET', API.blob('xyz')), 400, /SHA-256/],
      ['result for an unknown lease', async () => call('POST', API.results, await result(other, 'dev2', 'ok', null, { leaseId: 'nope' })), 404, /no lease/],
      ['result for another device\'s lease', async () => call('POST', API.results, await result(other, 'dev1')), 403, /another device/],
      ['result naming another task', async () => call('POST', API.results, await result(other, 'dev2', 'ok', null, { taskId: 'b1-0' })), 403, /another task/],
      ['a different result for an answered lease', async () => call('POST', API.results, await result(l!, 'dev1', 'second')), 409, /different result/],
      ['unknown batch', async () => call('GET', API.batch('nope')), 404, /no batch/],
      ['results of an unknown batch', async () => call('GET', API.batchResults('nope')), 404, /no batch/],
      ['an undecodable URL', async () => call('GET', '/api/batches/%E0%A4%A'), 400, /not a valid url/],
      ['an empty JSON body', async () => call('POST', API.work, ''), 400, /empty/],
      ['a __proto__ key', async () => call('POST', API.work, '{"__proto__": {"admin": true}}'), 400, /__proto__/],
      ['a body that is not an object', async () => call('POST', API.work, 'null'), 400, /^body: /],
      ['a bad value deep in a result', async () => call('POST', API.results, await result(other, 'dev2', 'ok', null, { truncated: { stdout: 'no', stderr: false, files: false } })), 400, /^body\.truncated\.stdout: /],
      ['an output file escaping its folder', async () => call('POST', API.results, await result(other, 'dev2', 'ok', null, { files: [{ path: '/out/../../etc/passwd', data: '' }] })), 400, /^body\.files\.0\.path: /],
      ['missing-blobs with a bad hash', async () => call('POST', API.missingBlobs, { hashes: ['ABC'] }), 400, /^body\.hashes\.0: /],
      ['a blob batch with a bad hash', async () => call('POST', API.blobBatch, { hashes: [await sha256Hex(TINY_MODULE), 'ABC'] }), 400, /^body\.hashes\.1: /],
      ['a blob batch of no hashes', async () => call('POST', API.blobBatch, { hashes: [] }), 400, /^body\.hashes: /],
      ['a blob batch of too many hashes', async () => call('POST', API.blobBatch, { hashes: Array(MAX_BLOB_BATCH + 1).fill(await sha256Hex(TINY_MODULE)) }), 400, /^body\.hashes: /],
      ['a blob batch with an extra field', async () => call('POST', API.blobBatch, { hashes: [await sha256Hex(TINY_MODULE)], sizes: [8] }), 400, /sizes/],
      ['a blob batch with a blob the server lacks', async () => call('POST', API.blobBatch, { hashes: [await sha256Hex(TINY_MODULE), '0'.repeat(64)] }), 404, new RegExp(`^no blob ${'0'.repeat(64)} \\(body\\.hashes\\.1\\)$`)],
      ['a refusal for an unknown lease', async () => call('POST', API.refusals, await refusalFor({ ...other, leaseId: 'nope' }, 'dev2')), 404, /no lease/],
      ['a refusal for another device\'s lease', async () => call('POST', API.refusals, await refusalFor(other, 'dev1')), 403, /another device/],
      ['a refusal with an unknown reason', async () => call('POST', API.refusals, { ...await refusalFor(other, 'dev2'), reason: 'boredom' }), 400, /^body\.reason: /],
      ['a refusal signed by another device', async () => call('POST', API.refusals, { ...await refusalFor(other, 'dev2'), signature: (await refusalFor(other, 'dev1')).signature }), 403, /not device .*'s/],
      ['unknown route', async () => call('GET', '/api/nothing'), 404, /no route/],
    ];
    for (const [name, send, status, message] of cases) {
      const response = await send();
      expect(response.status, name).toBe(status);
      expect(response.body.message, name).toMatch(message);
      expect(typeof response.body.error, name).toBe('string');
      expect(await snapshot('b1'), `${name} changed state`).toEqual(before);
    }

    // A refusal for a lease already answered (a replayed lease, say) is recorded, and changes no state.
    expect((await call('POST', API.refusals, await refusalFor(l!, 'dev1', 'replayed-task', 'seen before'))).body).toEqual({ status: 'recorded' });
    const withReport = await snapshot('b1');
    expect(withReport.status.refusals).toMatchObject([{ taskId: 'b1-0', reason: 'replayed-task', deviceId: await id('dev1') }]);
    expect(withReport.status.counts).toEqual(before.status.counts);
    expect(withReport.results.tasks.map((t: { state: string }) => t.state)).toEqual(before.results.tasks.map((t: { state: string }) => t.state));
    const after = withReport;

    // The identical result again is a no-op, so clients may retry freely.
    expect((await call('POST', API.results, await result(l!, 'dev1', 'first'))).body).toEqual({ status: 'duplicate' });
    expect(await snapshot('b1')).toEqual(after);

    // An expired lease whose task another device has since finished: 410, nothing stored.
    clock = other.expiresAt + 1;
    const [reissued] = await lease('dev3');
    expect(reissued?.task.manifest.taskId).toBe(other.task.manifest.taskId);
    expect((await call('POST', API.results, await result(reissued!, 'dev3', 'from dev3'))).status).toBe(200);
    const settled = await snapshot('b1');
    const expired = await call('POST', API.results, await result(other, 'dev2'));
    expect(expired.status).toBe(410);
    expect(expired.body.message).toMatch(/expired .* is done/);
    expect(await snapshot('b1')).toEqual(settled);
  });

  it('takes a late result while the task still needs it, and renews live leases that show progress', async () => {
    await publish('b1', 2);
    const [first, second] = await lease('dev1', 2);
    const dev1 = await device('dev1');
    // Renewal moves the expiry forward from now; it is refused for someone else's lease.
    clock += 30_000;
    const renewed = await call('POST', API.renew, await dev1.renewal(first!, 'running', 1000));
    expect(renewed.status).toBe(200);
    expect(renewed.body.expiresAt).toBe(clock + 10_000 + LEASE_MARGIN_MS);
    const stranger = await call('POST', API.renew, await (await device('dev2')).renewal(first!, 'running', 2000));
    expect(stranger.status).toBe(403);
    // The other lease lapses: it is dead, and no renewal brings it back; its result arrives late
    // but the task still needs it: accepted, counted once.
    clock = second!.expiresAt + 1;
    const revived = await call('POST', API.renew, await dev1.renewal(second!, 'running', 1000));
    expect(revived.status).toBe(409);
    expect(revived.body.message).toMatch(/expired .*not renewed/);
    clock += 10 * 60_000;
    expect((await call('POST', API.results, await result(second!, 'dev1', 'late'))).body).toEqual({ status: 'accepted' });
    expect((await call('POST', API.results, await result(second!, 'dev1', 'late'))).body).toEqual({ status: 'duplicate' });
    const results = (await call('GET', API.batchResults('b1'))).body;
    expect(results.tasks[1]).toMatchObject({ state: 'done', stdout: 'late', results: 1 });
    expect((await call('POST', API.renew, await dev1.renewal(second!, 'running', 2000))).status).toBe(409);
  });

  it('refuses to publish tasks signed by an unknown key, bad blobs, or a clashing batch id', async () => {
    const stranger = await generateKeyPair();
    const strangerKey = { keyId: await keyIdOf(stranger.publicKey), ...stranger };
    const byStranger = await publishRequest(strangerKey, 'b2', 1);
    let response = await call('POST', API.batches, byStranger);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/tasks\.0: refused \(unknown-key\)/);

    const good = await publishRequest(key, 'b3', 1);
    const hash = Object.keys(good.blobs)[0]!;
    response = await call('POST', API.batches, { ...good, blobs: { [hash]: toBase64(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 1])) } });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/hash to/);

    response = await call('POST', API.batches, { ...good, blobs: {} });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/neither sent nor stored/);

    const tampered = structuredClone(good);
    tampered.tasks[0]!.manifest.args = ['evil'];
    response = await call('POST', API.batches, tampered);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/bad-signature/);

    expect((await call('GET', API.batches)).body).toEqual([]);
    expect((await call('POST', API.batches, good)).status).toBe(201);
    expect((await call('POST', API.batches, good)).status).toBe(200); // the same batch again: idempotent
    const clash = await publishRequest(key, 'b3', 2);
    expect((await call('POST', API.batches, clash)).status).toBe(409);

    const other = await signTask(await manifestFor(key, 'b4', 0, { taskId: 'b3-0' }), key.secretKey);
    response = await call('POST', API.batches, { batch: { batchId: 'b4', name: 'x' }, tasks: [other], blobs: {} });
    expect(response.status).toBe(409);
    expect(response.body.message).toMatch(/another batch/);
    expect((await call('GET', API.batches)).body).toHaveLength(1);
  });
});

describe('publishing', () => {
  it('names the field a schema failure is in, and the blob whose size is wrong', async () => {
    const bad = await publishRequest(key, 'b1', 2);
    (bad.tasks[1]!.manifest.limits as { wallTimeMs: number }).wallTimeMs = 0;
    let response = await call('POST', API.batches, bad);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/^body\.tasks\.1\.manifest\.limits\.wallTimeMs: /);

    const wrongSize = await publishRequest(key, 'b1', 1, { module: { sha256: await sha256Hex(TINY_MODULE), size: TINY_MODULE.length + 1 } });
    response = await call('POST', API.batches, wrongSize);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/8 bytes, but the tasks say 9/);

    const expired = await publishRequest(key, 'b1', 1, { expiresAt: clock - 1 });
    response = await call('POST', API.batches, expired);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/tasks\.0: refused \(expired-task\)/);

    const tooBig = await publishRequest(key, 'b1', 1);
    response = await call('POST', API.batches, { ...tooBig, batch: { batchId: 'b1', name: 'x'.repeat(2 * 1024 * 1024) } });
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ error: 'payload-too-large' });

    // Nothing was stored by any of these: no batch, no blob.
    expect((await call('GET', API.batches)).body).toEqual([]);
    const hash = await sha256Hex(TINY_MODULE);
    expect((await call('POST', API.missingBlobs, { hashes: [hash, hash] })).body).toEqual({ missing: [hash] });
  });

  it('stores blobs once (with SQLite under blobs/<2 hex>/<hash>), and reports them present afterwards', async () => {
    const status = await publish('b1', 3);
    expect(status).toMatchObject({ batchId: 'b1', name: 'test', counts: { queued: 3, running: 0, done: 0 }, refusals: [] });
    const hash = await sha256Hex(TINY_MODULE);
    expect(existsSync(join(dataDir, 'blobs', hash.slice(0, 2), hash))).toBe(TEST_ENGINE === 'sqlite'); // PostgreSQL keeps them in the database
    expect((await call('POST', API.missingBlobs, { hashes: [hash, 'f'.repeat(64)] })).body).toEqual({ missing: ['f'.repeat(64)] });
    // A second batch may lean on the stored blob without sending it.
    const second = await publishRequest(key, 'b2', 1);
    expect((await call('POST', API.batches, { ...second, blobs: {} })).status).toBe(201);
  });

  it('serves blob bytes as they are stored, with the hash as ETag; clients do the verifying', async () => {
    const hash = await sha256Hex(TINY_MODULE);
    // Bytes that are not the hash's, stored under it (as a tampered disk or database would hold them).
    await server.store.writeBlobs(new Map([[hash, new TextEncoder().encode('tampered')]]));
    await publish('b1', 1);
    const response = await server.app.inject({ method: 'GET', url: API.blob(hash) });
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe('tampered');
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers.etag).toBe(`"${hash}"`);
  });

  it('keeps its state across a restart', async () => {
    await publish('b1', 2);
    const [l] = await lease('dev1');
    await call('POST', API.results, await result(l!, 'dev1', 'kept'));
    await server.close();
    server = await createServer({ dataDir, ...database, now: () => clock });
    expect((await call('GET', API.batch('b1'))).body.counts).toMatchObject({ done: 1, queued: 1 });
    expect((await call('GET', API.batchResults('b1'))).body.tasks[0].stdout).toBe('kept');
    expect(await server.store.info()).toMatchObject(
      TEST_ENGINE === 'sqlite' ? { engine: 'sqlite', schemaVersion: 8, details: { journalMode: 'wal' } } : { engine: 'postgres', schemaVersion: 3 },
    );
  });
});

describe('leasing', () => {
  it('hands out the oldest batch first, tasks in order, and never more than R at once', async () => {
    await publish('old', 2);
    clock += 1;
    await publish('new', 1, { redundancy: 2 });
    const first = await lease('dev1', 64);
    expect(first.map((l) => l.task.manifest.taskId)).toEqual(['old-0', 'old-1', 'new-0']);
    // The time to prepare its 8-byte module, its wall time, and the margin.
    expect(first[0]!.expiresAt).toBe(leaseTerms({ wallTimeMs: 10_000, prepareBytes: TINY_MODULE.length }, clock, LEASE_MARGIN_MS).expiresAt);
    expect((await lease('dev2', 64)).map((l) => l.task.manifest.taskId)).toEqual(['new-0']);
    expect(await lease('dev3', 64)).toEqual([]); // new-0 has its 2 devices
    expect((await call('GET', API.batch('new'))).body.counts).toMatchObject({ running: 1, queued: 0 });
  });

  it('keeps results whole: non-UTF-8 output as base64, files, exit codes, truncation', async () => {
    await publish('b1', 1);
    const [l] = await lease('dev1');
    const kept = await result(l!, 'dev1', 'ok', null, {
      exitCode: 3,
      stderr: toBase64(new Uint8Array([0xff, 0xfe, 0])),
      files: [{ path: '/out/a.txt', data: toBase64(new TextEncoder().encode('A')) }],
      truncated: { stdout: true, stderr: false, files: false },
    });
    expect((await call('POST', API.results, kept)).body).toEqual({ status: 'accepted' });
    const [task] = (await call('GET', API.batchResults('b1'))).body.tasks;
    expect(task).toMatchObject({
      taskId: 'b1-0',
      state: 'exit-nonzero', // agreed on, but the program did not succeed
      exitCode: 3,
      stdout: 'ok',
      stderr: { base64: toBase64(new Uint8Array([0xff, 0xfe, 0])) },
      files: [{ path: '/out/a.txt', data: 'A' }],
      truncated: { stdout: true, stderr: false, files: false },
      error: null,
      results: 1,
      redundancy: 1,
      args: ['test', '0'],
    });
  });

  it('takes the first of two answers to a reissued task and does not count the second', async () => {
    await publish('b1', 1, { redundancy: 1 });
    const [a] = await lease('dev1');
    clock = a!.expiresAt; // lapsed: reissued to dev2
    const [b] = await lease('dev2');
    // dev1's late result arrives first: the task still needed it.
    expect((await call('POST', API.results, await result(a!, 'dev1', 'first'))).body).toEqual({ status: 'accepted' });
    // dev2's lease is live, so its answer is kept, but it changes nothing.
    expect((await call('POST', API.results, await result(b!, 'dev2', 'second'))).body).toEqual({ status: 'accepted' });
    expect((await call('GET', API.batchResults('b1'))).body.tasks[0]).toMatchObject({ state: 'done', stdout: 'first', results: 1 });
  });
});

describe('refusals', () => {
  it('refusals by new devices re-issue a task up to its replica cap, then hold it for trusted devices; retries of a report change nothing', async () => {
    await publish('b1', 1);
    for (const device of ['d1', 'd2', 'd3']) {
      const [l] = await lease(device);
      expect(l, device).toBeTruthy();
      expect((await call('POST', API.refusals, await refusalFor(l!, device, 'bad-signature', `from ${device}`))).body).toEqual({ status: 'recorded' });
      const before = await snapshot('b1');
      expect((await call('POST', API.refusals, await refusalFor(l!, device, 'bad-signature', `from ${device}`))).body).toEqual({ status: 'duplicate' });
      const other = await call('POST', API.refusals, await refusalFor(l!, device, 'unknown-key'));
      expect(other.status).toBe(409);
      const late = await call('POST', API.results, await result(l!, device));
      expect(late.status).toBe(409);
      expect(await snapshot('b1')).toEqual(before);
    }
    const status = (await call('GET', API.batch('b1'))).body;
    expect(status.counts).toMatchObject({ refused: 0, queued: 1, running: 0 });
    expect(status.reports).toMatchObject({ refusals: 3, fromNewDevices: 3, awaitingTrust: 1 });
    expect(status.refusals.map((r: { deviceId: string; reason: string; at: number }) => [r.deviceId, r.reason, r.at])).toEqual([
      [await id('d1'), 'bad-signature', clock],
      [await id('d2'), 'bad-signature', clock],
      [await id('d3'), 'bad-signature', clock],
    ]);
    expect(await lease('d4')).toEqual([]);
    expect((await call('GET', API.batchResults('b1'))).body.tasks[0].refusals).toHaveLength(3);
  });
});

describe('headers and the site', () => {
  it('sends cross-origin isolation headers everywhere, the keyset and index.html uncached', async () => {
    const staticDir = join(dataDir, 'site');
    mkdirSync(staticDir);
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Dewgrid</title>');
    await server.close();
    server = await createServer({ dataDir, ...database, staticDir, now: () => clock });
    const isolated = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };

    const page = await server.app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>Dewgrid</title>');
    expect(page.headers).toMatchObject({ ...isolated, 'cache-control': 'no-cache' });

    const keyset = await server.app.inject({ method: 'GET', url: API.keyset });
    expect(keyset.statusCode).toBe(200);
    expect(keyset.headers).toMatchObject({ ...isolated, 'cache-control': 'no-cache', etag: '"v1"' });
    expect(JSON.parse(keyset.body).keyset.keys[0]).toMatchObject({ keyId: key.keyId, publicKey: toBase64(key.publicKey) });
    // No trust file is served: the client's roots are compiled into its build.
    expect((await server.app.inject({ method: 'GET', url: '/trust.json' })).statusCode).toBe(404);

    for (const url of [API.batches, '/nothing', API.blob('0'.repeat(64)), '/api/batches/%E0%A4%A']) {
      expect((await server.app.inject({ method: 'GET', url })).headers, url).toMatchObject(isolated);
    }
  });
});

describe('the embed for partner sites', () => {
  async function siteServer(crossOriginIsolated?: boolean) {
    const staticDir = join(dataDir, 'site');
    mkdirSync(join(staticDir, 'embed'), { recursive: true });
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Dewgrid</title>');
    writeFileSync(join(staticDir, 'embed.js'), '(()=>{})();');
    writeFileSync(join(staticDir, 'embed', 'frame.html'), '<!doctype html><title>Card</title>');
    writeFileSync(join(staticDir, 'embed', 'confirm.html'), '<!doctype html><title>Confirm</title>');
    await server.close();
    server = await createServer({ dataDir, ...database, staticDir, now: () => clock, crossOriginIsolated });
  }

  it('serves embed.js to any origin, uncached, without the page isolation', async () => {
    await siteServer();
    const loader = await server.app.inject({ method: 'GET', url: '/embed.js' });
    expect(loader.statusCode).toBe(200);
    expect(loader.headers).toMatchObject({ 'cross-origin-resource-policy': 'cross-origin', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    expect(loader.headers['content-type']).toMatch(/javascript/);
    expect(loader.headers).not.toHaveProperty('cross-origin-embedder-policy');
  });

  it('serves the card frameable by any site, isolated by Document-Isolation-Policy, never COOP or COEP', async () => {
    await siteServer();
    for (const url of ['/embed/frame.html', '/embed/frame.html?partner=https%3A%2F%2Fpartner.example&max-cpu=50']) {
      const frame = await server.app.inject({ method: 'GET', url });
      expect(frame.statusCode, url).toBe(200);
      expect(frame.headers, url).toMatchObject({ 'document-isolation-policy': 'isolate-and-require-corp', 'cache-control': 'no-cache' });
      expect(frame.headers['content-security-policy'], url).toMatch(/(^|; )frame-ancestors \*($|;)/);
      expect(frame.headers['content-security-policy'], url).toMatch(/script-src 'self' 'wasm-unsafe-eval'/);
      for (const name of ['cross-origin-opener-policy', 'cross-origin-embedder-policy', 'x-frame-options']) expect(frame.headers, `${url} ${name}`).not.toHaveProperty(name);
    }
    // The page itself may be framed by no other site: clicks on Start are lured there otherwise.
    const page = await server.app.inject({ method: 'GET', url: '/' });
    expect(page.headers).toMatchObject({ 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'content-security-policy': "frame-ancestors 'self'" });
  });

  it('serves the confirmation window framed by no one, and without COOP, which would cut it off from its card', async () => {
    await siteServer();
    const window = await server.app.inject({ method: 'GET', url: '/embed/confirm.html?nonce=00112233445566778899aabbccddeeff' });
    expect(window.statusCode).toBe(200);
    expect(window.headers).toMatchObject({ 'x-frame-options': 'DENY', 'cache-control': 'no-cache' });
    expect(window.headers['content-security-policy']).toMatch(/(^|; )frame-ancestors 'none'($|;)/);
    expect(window.headers['content-security-policy']).toMatch(/(^|; )script-src 'self'($|;)/);
    for (const name of ['cross-origin-opener-policy', 'cross-origin-embedder-policy', 'document-isolation-policy']) expect(window.headers, name).not.toHaveProperty(name);
  });

  it('leaves the card unisolated where the host sends no isolation headers', async () => {
    await siteServer(false);
    const frame = await server.app.inject({ method: 'GET', url: '/embed/frame.html' });
    expect(frame.statusCode).toBe(200);
    expect(frame.headers).not.toHaveProperty('document-isolation-policy');
    expect(frame.headers['content-security-policy']).toMatch(/frame-ancestors \*/);
  });
});
