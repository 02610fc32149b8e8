// Validation on the server (issue #3): a task is done only when R distinct devices agree on its
// output; a liar earns nothing; disagreement draws replicas up to a limit; forged and replayed
// submissions are rejected and change no credit; trusted devices are checked less (adaptive
// replication); a revoked key's tasks are no longer handed out.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, creditFor, generateKeyPair, keyIdOf, signKeyset, toBase64, type DeviceCredit, type Lease, type SignedKeyset, type TaskResultView } from '../../src/protocol/index.ts';
import { keyPath, readKey, ROOT_KEY_NAME, rotateKey, revokeKey } from '../../server/keys.ts';
import { TRUST_AFTER_VALID } from '../../server/store/rules.ts';
import { ownerHeaders, writeKey, type SigningKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';
import { freshStore } from '../helpers/engine.ts';

let dataDir: string;
let server: DewgridServer;
let key: SigningKey;
let clock: number;
/** The key the owner's requests are signed with: the project's, until a test revokes it. */
let ownerKey: SigningKey;
/** What the spot-check draw returns next (adaptive replication). */
let draw: number;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-validation-'));
  key = await writeKey(dataDir);
  ownerKey = key;
  clock = Date.now();
  draw = 0.5;
  server = await createServer({ dataDir, ...(await freshStore()), now: () => clock, random: () => draw });
});

afterEach(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  // As the project owner (device routes ignore the token), with whichever key the test holds now.
  const owner = await ownerHeaders(ownerKey);
  const response = await server.app.inject({ method, url, headers: owner, ...(payload === undefined ? {} : { headers: { ...owner, 'content-type': 'application/json' }, payload: JSON.stringify(payload) }) });
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : null };
}

async function publish(batchId: string, count: number, redundancy: number, adaptive = false) {
  const request = await publishRequest(key, batchId, count, { redundancy });
  if (adaptive) request.batch.adaptive = true;
  const response = await call('POST', API.batches, request);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

async function lease(device: TestDevice, max = 1): Promise<Lease[]> {
  const response = await call('POST', API.work, device.work(max));
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.leases;
}

async function answer(device: TestDevice, l: Lease, stdout: string, work = 5_000_000) {
  return call('POST', API.results, await device.sign({ ...resultFor(l, device.deviceId, stdout), work }));
}

const task = async (batchId: string, index = 0): Promise<TaskResultView> => (await call('GET', API.batchResults(batchId))).body.tasks[index];
const credit = async (device: TestDevice): Promise<DeviceCredit> => (await call('GET', API.device(device.deviceId))).body;

describe('quorum', () => {
  it('R = 2, three devices, one lying: the honest output is canonical, the liar earns nothing, one word never finishes it', async () => {
    await publish('q', 1, 2);
    const [liar, honest1, honest2] = [await TestDevice.create(), await TestDevice.create(), await TestDevice.create()];
    const [a] = await lease(liar);
    const [b] = await lease(honest1);
    expect(await lease(honest2)).toEqual([]); // R leases out at once, no more

    expect((await answer(liar, a!, 'wrong')).body).toEqual({ status: 'accepted' });
    expect((await task('q')).state).toBe('running'); // one device's word: not done
    expect((await answer(honest1, b!, 'right')).body).toEqual({ status: 'accepted' });
    // Two results that disagree: still not done, and one more replica is wanted.
    let t = await task('q');
    expect(t.state).toBe('queued');
    expect(t.quorum).toMatchObject({ needed: 2, limit: 5, agreeing: 1, outputs: 2 });
    expect(t.stdout).toBeNull();
    expect((await credit(liar)).pending).toBeGreaterThan(0);
    expect((await call('GET', API.batch('q'))).body.quorum).toEqual({ awaiting: 1, disputed: 1 });

    const [c] = await lease(honest2);
    expect(c?.task.manifest.taskId).toBe('q-0');
    expect((await answer(honest2, c!, 'right', 4_000_000)).body).toEqual({ status: 'accepted' });
    t = await task('q');
    expect(t).toMatchObject({ state: 'done', stdout: 'right' });
    expect((await call('GET', API.batch('q'))).body.quorum).toEqual({ awaiting: 0, disputed: 0 });
    expect(t.quorum).toMatchObject({ agreeing: 2, outputs: 2 });
    expect(t.quorum.results.map((r) => [r.deviceId, r.validation])).toEqual([
      [liar.deviceId, 'invalid'],
      [honest1.deviceId, 'valid'],
      [honest2.deviceId, 'valid'],
    ]);
    // Credit is the least work an agreeing device claimed (claiming more earns nothing); the liar gets none.
    expect(await credit(liar)).toMatchObject({ validated: 0, pending: 0, results: { valid: 0, invalid: 1, pending: 0, error: 0 }, consecutiveValid: 0 });
    for (const honest of [honest1, honest2]) {
      expect(await credit(honest)).toMatchObject({ validated: creditFor(4_000_000), pending: 0, results: { valid: 1, invalid: 0 }, consecutiveValid: 1 });
    }
    expect(await lease(await TestDevice.create())).toEqual([]);
  });

  it('a late answer to a done task is judged against the canonical one', async () => {
    await publish('late', 1, 2);
    const devices = [await TestDevice.create(), await TestDevice.create(), await TestDevice.create()];
    const [a] = await lease(devices[0]!);
    clock = a!.expiresAt + 1; // a's lease lapses; two others finish the task meanwhile
    const [b] = await lease(devices[1]!);
    const [c] = await lease(devices[2]!);
    await answer(devices[1]!, b!, 'same');
    await answer(devices[2]!, c!, 'same');
    expect((await task('late')).state).toBe('done');
    expect((await answer(devices[0]!, a!, 'same')).status).toBe(410); // expired, and the task needs no more
  });

  it('gives up as inconclusive when results keep disagreeing, and credits no one', async () => {
    await publish('inc', 1, 2);
    const devices: TestDevice[] = [];
    for (let i = 0; i < 5; i++) {
      const device = await TestDevice.create();
      devices.push(device);
      const [l] = await lease(device);
      expect(l, `replica ${i}`).toBeTruthy();
      await answer(device, l!, `answer ${i}`);
    }
    const t = await task('inc');
    expect(t.state).toBe('inconclusive');
    expect(t.quorum.results.map((r) => r.validation)).toEqual(['void', 'void', 'void', 'void', 'void']);
    expect(await lease(await TestDevice.create())).toEqual([]);
    for (const device of devices) expect(await credit(device)).toMatchObject({ validated: 0, pending: 0 });
  });

  it('gives one device a task once, even after its lease lapsed (it may still be working on it), so it counts once', async () => {
    await publish('once', 1, 2);
    const device = await TestDevice.create();
    const [first] = await lease(device);
    clock = first!.expiresAt + 1;
    expect(await lease(device)).toEqual([]);
    await answer(device, first!, 'x');
    expect((await task('once')).state).not.toBe('done');
    expect((await task('once')).quorum.agreeing).toBe(1);
  });
});

describe('forged and replayed results', () => {
  it('are rejected and change no credit: a wrong signature, someone else\'s lease, an unknown device, a replay', async () => {
    await publish('f', 2, 1);
    const [owner, thief] = [await TestDevice.create(), await TestDevice.create()];
    const [l1, l2] = await lease(owner, 2);
    const signed = await owner.sign({ ...resultFor(l1!, owner.deviceId, 'honest'), work: 1_000_000 });
    const before = { owner: await credit(owner), thief: await lease(thief).then(() => credit(thief)) };

    const cases: [string, unknown, number, RegExp][] = [
      // Signed by another key than the device's own.
      ['a signature by another key', await owner.sign({ ...resultFor(l1!, owner.deviceId, 'honest'), work: 1_000_000 }, (await generateKeyPair()).secretKey), 403, /not device .*'s/],
      // The thief posts for the owner's lease, under its own name and signature.
      ["someone else's lease", await thief.sign({ ...resultFor(l1!, thief.deviceId, 'mine'), work: 1_000_000 }), 403, /belongs to another device/],
      // The thief claims the owner's name but cannot sign as the owner.
      ["another device's name", await thief.sign({ ...resultFor(l1!, owner.deviceId, 'mine'), work: 1_000_000 }), 403, /not device .*'s/],
      // The owner's signature, on outputs it did not produce.
      ['altered outputs', { ...signed, stdout: toBase64(new TextEncoder().encode('altered')) }, 403, /not device .*'s/],
      // The owner's signature, with the work claim raised.
      ['an inflated work claim', { ...signed, work: 9_000_000 }, 403, /not device .*'s/],
      ['a device that never registered a key', await (await TestDevice.create()).sign(resultFor(l1!, 'f'.repeat(32), 'x')), 403, /no key on record/],
      ['a malformed signature', { ...signed, signature: toBase64(new Uint8Array(10)) }, 403, /not device .*'s/],
    ];
    for (const [name, body, status, message] of cases) {
      const response = await call('POST', API.results, body);
      expect(response.status, name).toBe(status);
      expect(response.body.message, name).toMatch(message);
      expect((await task('f')).quorum.results, name).toEqual([]);
      expect(await credit(owner), name).toEqual(before.owner);
      expect(await credit(thief), name).toEqual(before.thief);
    }

    expect((await call('POST', API.results, signed)).body).toEqual({ status: 'accepted' });
    const afterFirst = await credit(owner);
    expect(afterFirst.validated).toBe(creditFor(1_000_000));
    // The same result again (a retry, or a replay of it by anyone): nothing changes.
    expect((await call('POST', API.results, signed)).body).toEqual({ status: 'duplicate' });
    // Replayed against the owner's other lease: its signature covers the lease id, so it is refused.
    expect((await call('POST', API.results, { ...signed, leaseId: l2!.leaseId, taskId: l2!.task.manifest.taskId })).status).toBe(403);
    expect(await credit(owner)).toEqual(afterFirst);
    expect((await task('f')).quorum.results).toHaveLength(1);
  });
});

describe('adaptive replication', () => {
  /**
   * Makes a device trusted: TRUST_AFTER_VALID validated results in a row, each agreed with by a
   * second device (a new device holds a few leases at a time: its allowance grows as it delivers).
   */
  async function earnTrust(device: TestDevice): Promise<void> {
    await publish('earn', TRUST_AFTER_VALID, 2);
    const witness = await TestDevice.create();
    while (((await credit(device)).consecutiveValid ?? 0) < TRUST_AFTER_VALID) {
      const mine = await lease(device, TRUST_AFTER_VALID);
      const theirs = await lease(witness, mine.length);
      expect(mine.length, 'leases to earn trust with').toBeGreaterThan(0);
      for (const [i, l] of mine.entries()) {
        expect(theirs[i]?.task.manifest.taskId).toBe(l.task.manifest.taskId);
        await answer(device, l, `r-${l.task.manifest.taskId}`);
        await answer(witness, theirs[i]!, `r-${l.task.manifest.taskId}`);
      }
    }
    expect(await credit(device)).toMatchObject({ consecutiveValid: TRUST_AFTER_VALID, trusted: true });
  }

  it('lets a trusted device finish a task alone, spot-checks it at random, and only on batches that ask for it', async () => {
    const trusted = await TestDevice.create();
    await earnTrust(trusted);

    await publish('plain', 1, 2); // not adaptive: R devices whoever asks
    await publish('adaptive', 2, 2, true);
    draw = 0.5; // above the spot-check rate: no check
    const leases = await lease(trusted, 3);
    expect(leases.map((l) => l.task.manifest.taskId)).toEqual(['plain-0', 'adaptive-0', 'adaptive-1']);
    // The solo task is not given to anyone else while the trusted device holds it.
    const other = await TestDevice.create();
    draw = 0.05;
    expect((await lease(other, 3)).map((l) => l.task.manifest.taskId)).toEqual(['plain-0']);

    await answer(trusted, leases[1]!, 'solo');
    expect(await task('adaptive', 0)).toMatchObject({ state: 'done', stdout: 'solo', quorum: { needed: 1 } });
    await answer(trusted, leases[0]!, 'plain');
    expect((await task('plain')).state).not.toBe('done');

    // A spot check (draw below the rate): the next adaptive task is replicated as usual.
    const [checked] = await lease(trusted);
    expect(checked).toBeUndefined(); // adaptive-1 is held by the trusted device already (solo)
    await publish('checked', 1, 2, true);
    draw = 0.05;
    const [spot] = await lease(trusted);
    await answer(trusted, spot!, 'x');
    expect(await task('checked')).toMatchObject({ state: 'queued', quorum: { needed: 2 } });
    const [second] = await lease(other);
    expect(second?.task.manifest.taskId).toBe('checked-0');
  });

  it('loses trust with one wrong result', async () => {
    const device = await TestDevice.create();
    await earnTrust(device);
    await publish('trap', 1, 2);
    const [mine] = await lease(device);
    const witnesses = [await TestDevice.create(), await TestDevice.create()];
    const [w1] = await lease(witnesses[0]!);
    await answer(device, mine!, 'wrong');
    await answer(witnesses[0]!, w1!, 'right');
    const [w2] = await lease(witnesses[1]!);
    await answer(witnesses[1]!, w2!, 'right');
    expect(await credit(device)).toMatchObject({ consecutiveValid: 0, trusted: false, results: { invalid: 1 } });
  });
});

describe('keysets on the server', () => {
  const keysetNow = async () => (await call('GET', API.keyset)).body as SignedKeyset;

  it('takes only newer keysets signed by a pinned root, and stops handing out tasks of a revoked key', async () => {
    await publish('k', 3, 1);
    const v1 = await keysetNow();
    expect(v1.keyset.version).toBe(1);
    const root = await readKey(keyPath(dataDir, ROOT_KEY_NAME));

    // Not signed by a root the server pins.
    const stranger = await generateKeyPair();
    const forged = await signKeyset({ ...v1.keyset, version: 9 }, { keyId: await keyIdOf(stranger.publicKey), secretKey: stranger.secretKey });
    let response = await call('POST', API.keyset, forged);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/keyset-unknown-root/);
    // Tampered after signing.
    response = await call('POST', API.keyset, { ...v1, keyset: { ...v1.keyset, version: 2 } });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/keyset-bad-signature/);
    // The same again: unchanged.
    expect((await call('POST', API.keyset, v1)).body).toEqual({ status: 'unchanged', version: 1, revokedTasks: 0 });

    const { keyset: v2, key: next } = await rotateKey(dataDir, { graceMs: 3600_000, now: clock });
    expect((await call('POST', API.keyset, v2)).body).toMatchObject({ status: 'updated', version: 2 });
    // An older one now: a rollback, refused.
    response = await call('POST', API.keyset, v1);
    expect(response.status).toBe(409);
    expect(response.body.message).toMatch(/keyset refused \(keyset-rollback\): version 1 is older than version 2/);
    // Another keyset under the same version: refused too.
    const equivocation = await signKeyset({ ...v2.keyset, issuedAt: v2.keyset.issuedAt + 1 }, root);
    expect((await call('POST', API.keyset, equivocation)).status).toBe(409);

    const device = await TestDevice.create();
    const [first] = await lease(device);
    const v3 = await revokeKey(dataDir, key.keyId, { now: clock });
    expect((await call('POST', API.keyset, v3)).body).toEqual({ status: 'updated', version: 3, revokedTasks: 3 }); // the leased one too: its result would be void
    // The revoked key's owner tokens end with it: the owner reads and publishes with the new key.
    response = await call('GET', API.batch('k'));
    expect(response.status).toBe(401);
    expect(response.body.message).toMatch(new RegExp(`the owner token was refused: key ${key.keyId}: revoked at`));
    ownerKey = next;
    expect((await call('POST', API.work, device.work(5))).body).toMatchObject({ leases: [], keysetVersion: 3 });
    expect((await call('GET', API.batch('k'))).body.counts).toMatchObject({ revoked: 3, running: 0, queued: 0 });
    expect((await answer(device, first!, 'late')).body).toEqual({ status: 'accepted' });
    expect((await task('k')).quorum.results.map((r) => r.validation)).toEqual(['void']);
    // Publishing with the revoked key is refused; with the new key it works.
    response = await call('POST', API.batches, await publishRequest(key, 'k2', 1));
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/tasks\.0: refused \(revoked-key\)/);
    expect((await call('POST', API.batches, await publishRequest(next, 'k3', 1))).status).toBe(201);
  });
});
