// The store's contract, on whichever engine this run of the file uses (the `node` project: SQLite;
// the `postgres` project: PostgreSQL; test/helpers/engine.ts). What the API tests cannot see from
// outside: the migration ladder, all-or-nothing publishing, what concurrent transactions may and
// may not do, and several stores (servers) on one database.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { canonicalJson, type SignedTask } from '../../src/protocol/index.ts';
import { openStore, StoreError, type OpenStoreOptions, type Store } from '../../server/store/index.ts';
import { freshStore, TEST_ENGINE } from '../helpers/engine.ts';
import { LOCK_WAIT_MS } from '../../server/store/postgres.ts';
import { writeKey, type SigningKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';
import { creditFor } from '../../src/protocol/index.ts';
import * as rules from '../../server/store/rules.ts';

/** Every task here has the 8-byte module and a 10 s wall time (test/helpers/tasks.ts): its leases' first term. */
const firstTerm = (marginMs = rules.LEASE_MARGIN_MS) => rules.leaseTerms({ wallTimeMs: 10_000, prepareBytes: 8 }, 0, marginMs).expiresAt;

const LADDER = { sqlite: 8, postgres: 3 }[TEST_ENGINE];

let dataDir: string;
let key: SigningKey;
let options: OpenStoreOptions;
let clock: number;
const stores: Store[] = [];

/** A store on this test's database; every one opened is closed after the test. */
async function open(extra: Partial<OpenStoreOptions> = {}): Promise<Store> {
  const store = await openStore({ ...options, ...extra });
  stores.push(store);
  return store;
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-store-'));
  key = await writeKey(dataDir);
  clock = Date.now();
  options = { dataDir, ...(await freshStore()), now: () => clock };
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  rmSync(dataDir, { recursive: true, force: true });
});

async function batch(batchId: string, count: number, redundancy = 1): Promise<{ batchId: string; name: string; digest: string; adaptive: boolean; tasks: SignedTask[] }> {
  const { tasks } = await publishRequest(key, batchId, count, { redundancy });
  return { batchId, name: batchId, digest: createHash('sha256').update(canonicalJson(tasks)).digest('hex'), adaptive: false, tasks };
}

async function answer(store: Store, device: TestDevice, lease: { leaseId: string; envelope: string }, stdout = 'ok') {
  const task = JSON.parse(lease.envelope) as SignedTask;
  const submission = await device.sign({ ...resultFor({ leaseId: lease.leaseId, task }, device.deviceId, stdout), work: 2_000_000 });
  const bodyHash = createHash('sha256').update(canonicalJson(submission)).digest('hex');
  return store.submitResult({ submission, bodyHash, outputDigest: createHash('sha256').update(stdout).digest('hex'), sizes: sizesOf(stdout) });
}

const sizesOf = (stdout: string) => ({ stdout: Buffer.byteLength(stdout), stderr: 0, files: 0 });

/** Two devices that earned trust the honest way: TRUST_AFTER_VALID results each, corroborated by the other. */
async function trustedPair(store: Store): Promise<[TestDevice, TestDevice]> {
  const pair: [TestDevice, TestDevice] = [await registered(store), await registered(store)];
  await store.publishBatch(await batch('earn', rules.TRUST_AFTER_VALID, 2));
  while (((await store.deviceCredit(pair[0].deviceId))?.consecutiveValid ?? 0) < rules.TRUST_AFTER_VALID) {
    const mine = (await store.lease(pair[0].deviceId, ['wasi-preview1'], 4)).leases;
    const theirs = (await store.lease(pair[1].deviceId, ['wasi-preview1'], mine.length)).leases;
    for (const [i, lease] of mine.entries()) {
      await answer(store, pair[0], lease, `r${i}`);
      await answer(store, pair[1], theirs[i]!, `r${i}`);
    }
  }
  return pair;
}

async function registered(store: Store): Promise<TestDevice> {
  const device = await TestDevice.create();
  await store.registerDevice(device.deviceId, device.publicKey);
  return device;
}

describe(`the store on ${TEST_ENGINE}`, () => {
  it('migrates an empty database to the end of its ladder, once; stores opened together migrate it once', async () => {
    options = { ...options, ...(await freshStore({ empty: true })) };
    // Opened at once, as servers starting together would be: each must come up, none may run the ladder twice.
    const opened = await Promise.all(Array.from({ length: TEST_ENGINE === 'postgres' ? 4 : 1 }, () => open()));
    for (const store of opened) expect(await store.info()).toMatchObject({ engine: TEST_ENGINE, schemaVersion: LADDER });
    await Promise.all(stores.splice(0).map((s) => s.close()));
    const again = await open();
    expect((await again.info()).schemaVersion).toBe(LADDER);
    expect(await again.batchIds()).toEqual([]);
  });

  it('publishes a batch all or nothing, and the same batch again is "exists"', async () => {
    const store = await open();
    const first = await batch('a', 3);
    expect(await store.publishBatch(first)).toBe('created');
    expect(await store.publishBatch(first)).toBe('exists');
    await expect(store.publishBatch({ ...first, digest: 'other' })).rejects.toMatchObject({ status: 409, message: 'batch a already exists with other tasks' });
    // A batch one of whose tasks another batch holds: refused whole.
    const clash = await batch('b', 2);
    clash.tasks.push((await batch('a', 1)).tasks[0]!);
    await expect(store.publishBatch(clash)).rejects.toBeInstanceOf(StoreError);
    expect(await store.batchIds()).toEqual(['a']);
    expect((await store.tasks('a')).map((t) => t.taskId)).toEqual(['a-0', 'a-1', 'a-2']);
  });

  it('keeps blobs by hash: written once, read back, reported missing until then', async () => {
    const store = await open();
    const bytes = new TextEncoder().encode('module bytes');
    const hash = createHash('sha256').update(bytes).digest('hex');
    expect(await store.missingBlobs([hash, hash])).toEqual([hash]);
    expect(await store.blob(hash)).toBeNull();
    await store.writeBlobs(new Map([[hash, bytes]]));
    await store.writeBlobs(new Map([[hash, new TextEncoder().encode('other bytes')]])); // content-addressed: kept as first written
    expect(new Uint8Array((await store.blob(hash))!)).toEqual(bytes);
    expect(await store.missingBlobs([hash])).toEqual([]);
  });

  it('stores keysets newest first and refuses one stored against a version that is no longer current', async () => {
    const store = await open();
    expect(await store.keyset()).toBeNull();
    expect(await store.replaceKeyset({ version: 1, body: '{"v":1}' }, 0, [])).toBe(0);
    expect(await store.replaceKeyset({ version: 2, body: '{"v":2}' }, 1, [])).toBe(0);
    await expect(store.replaceKeyset({ version: 3, body: '{"v":3}' }, 1, [])).rejects.toMatchObject({ status: 409 });
    expect(await store.keyset()).toEqual({ version: 2, body: '{"v":2}' });
  });

  it('refuses another key for a known device id, and records the same keyset refusal once', async () => {
    const store = await open();
    const device = await registered(store);
    await expect(store.registerDevice(device.deviceId, (await TestDevice.create()).publicKey)).rejects.toMatchObject({ status: 403 });
    expect(await store.devicePublicKey(device.deviceId)).toBe(device.publicKey);
    // (The route has checked the signature: the store takes it as it is.)
    const report = { kind: 'keyset' as const, deviceId: device.deviceId, version: 3, reason: 'keyset-rollback' as const, detail: 'older', signature: '' };
    expect(await Promise.all([store.recordKeysetRefusal(report), store.recordKeysetRefusal(report)])).toEqual(expect.arrayContaining(['recorded', 'duplicate']));
    expect(await store.keysetRefusals()).toHaveLength(1);
  });

  it("takes time from its clock: leases last the time to prepare and run the task plus the margin", async () => {
    const store = await open({ leaseMarginMs: 5000 });
    await store.publishBatch(await batch('t', 1));
    const device = await registered(store);
    const { leases, keysetVersion } = await store.lease(device.deviceId, ['wasi-preview1'], 4);
    expect(keysetVersion).toBe(0);
    expect(leases.map((l) => l.expiresAt)).toEqual([clock + firstTerm(5000)]);
  });

  it("takes the database's clock without one (PostgreSQL), or the process's (SQLite)", async () => {
    const store = await open({ now: undefined });
    await store.publishBatch(await batch('t', 1));
    const device = await registered(store);
    const before = Date.now();
    const { leases } = await store.lease(device.deviceId, ['wasi-preview1'], 1);
    // One machine here: the database's clock is this process's, to within the call.
    expect(leases[0]!.expiresAt - firstTerm()).toBeGreaterThanOrEqual(before - 50);
    expect(leases[0]!.expiresAt - firstTerm()).toBeLessThanOrEqual(Date.now() + 50);
  });

  it('leases every task once under concurrent requests, on one store and on several sharing the database', async () => {
    // Several stores on one database are several servers: PostgreSQL only (SQLite is one process's file).
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open(), await open()] : [await open()];
    const tasks = 24;
    await servers[0]!.publishBatch(await batch('c', tasks));
    const devices = await Promise.all(Array.from({ length: tasks }, () => registered(servers[0]!)));
    // Every device asks at once, each of a server in turn: each must get a task (none waits on or
    // is refused a task another transaction holds), and no task may go to two.
    const got = await Promise.all(devices.map((d, i) => servers[i % servers.length]!.lease(d.deviceId, ['wasi-preview1'], 1)));
    const taskIds = got.map(({ leases }) => (leases[0] ? (JSON.parse(leases[0].envelope) as SignedTask).manifest.taskId : null));
    expect(taskIds.filter((id) => id === null)).toEqual([]);
    expect(new Set(taskIds).size).toBe(tasks);
    expect((await servers[0]!.lease((await registered(servers[0]!)).deviceId, ['wasi-preview1'], 1)).leases).toEqual([]);
  });

  it('judges a task once when its R results arrive at once on different servers, crediting each once', async () => {
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open()] : [await open()];
    const count = 8;
    await servers[0]!.publishBatch(await batch('q', count, 2));
    const pairs = [];
    for (let i = 0; i < count; i++) {
      const [a, b] = [await registered(servers[0]!), await registered(servers[0]!)];
      const [la] = (await servers[0]!.lease(a.deviceId, ['wasi-preview1'], 1)).leases;
      const [lb] = (await servers[0]!.lease(b.deviceId, ['wasi-preview1'], 1)).leases;
      expect(JSON.parse(la!.envelope).manifest.taskId).toBe(JSON.parse(lb!.envelope).manifest.taskId);
      pairs.push({ a, b, la: la!, lb: lb! });
    }
    // Both results of every task at once, each pair split across the servers, and each posted twice (a retry).
    const posted = await Promise.all(
      pairs.flatMap(({ a, b, la, lb }) => [
        answer(servers[0]!, a, la, 'same'),
        answer(servers[servers.length - 1]!, b, lb, 'same'),
        answer(servers[servers.length - 1]!, a, la, 'same'),
      ]),
    );
    expect(posted.filter((s) => s === 'accepted')).toHaveLength(2 * count);
    const tasks = await servers[0]!.tasks('q');
    for (const task of tasks) {
      expect(task.state, task.taskId).toBe('done');
      expect(task.quorum.results.map((r) => r.validation), task.taskId).toEqual(['valid', 'valid']);
    }
    for (const { a, b } of pairs) {
      for (const device of [a, b]) expect(await servers[0]!.deviceCredit(device.deviceId)).toMatchObject({ validated: creditFor(2_000_000), results: { valid: 1, pending: 0 } });
    }
  });

  it("judges every report when a task's reports arrive at once: new devices' errors hold it for trusted devices, a trusted device's joins them and fails it", async () => {
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open(), await open()] : [await open()];
    const count = rules.NEW_DEVICE_LEASES;
    const error = async (store: Store, device: TestDevice, lease: { leaseId: string; envelope: string }) => {
      const task = JSON.parse(lease.envelope) as SignedTask;
      const submission = await device.sign(resultFor({ leaseId: lease.leaseId, task }, device.deviceId, '', { code: 'trap', message: 'unreachable' }));
      return store.submitResult({ submission, bodyHash: createHash('sha256').update(canonicalJson(submission)).digest('hex'), outputDigest: null, sizes: sizesOf('') });
    };
    const trusted = await trustedPair(servers[0]!);
    await servers[0]!.publishBatch(await batch('errs', count));
    // Three new devices lease every task in turn, each lease lapsing before the next (a lapsed lease may still be answered while the task is queued).
    const devices = [await registered(servers[0]!), await registered(servers[0]!), await registered(servers[0]!)];
    const leases: { leaseId: string; envelope: string }[][] = [];
    for (const device of devices) {
      leases.push((await servers[0]!.lease(device.deviceId, ['wasi-preview1'], count)).leases);
      clock += firstTerm() + 1;
    }
    expect(leases.map((l) => l.length)).toEqual([count, count, count]);
    // All three errors of every task at once, each on another server: every one is judged, none fails a task.
    await Promise.all(devices.flatMap((device, d) => leases[d]!.map((lease) => error(servers[d % servers.length]!, device, lease))));
    for (const task of await servers[0]!.tasks('errs')) expect(task.state, task.taskId).toBe('queued');
    expect((await servers[0]!.batchStatus('errs'))!.reports).toEqual({ errors: 3 * count, refusals: 0, deviceFailures: 0, fromNewDevices: 3 * count, awaitingTrust: count });
    expect((await servers[0]!.lease((await registered(servers[0]!)).deviceId, ['wasi-preview1'], count)).leases).toEqual([]);
    // A trusted device's errors, all at once across the servers: at the cap, it joins the new devices' majority, and every task fails.
    const [device] = trusted;
    const theirs = (await servers[0]!.lease(device.deviceId, ['wasi-preview1'], count)).leases;
    expect(theirs).toHaveLength(count);
    await Promise.all(theirs.map((lease, i) => error(servers[i % servers.length]!, device, lease)));
    for (const task of await servers[0]!.tasks('errs')) expect(task.state, task.taskId).toBe('failed');
  });

  it("holds a device to its lease allowance when it asks several servers at once", async () => {
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open(), await open()] : [await open()];
    await servers[0]!.publishBatch(await batch('many', 30));
    const device = await registered(servers[0]!);
    const got = await Promise.all(Array.from({ length: 6 }, (_, i) => servers[i % servers.length]!.lease(device.deviceId, ['wasi-preview1'], 4)));
    expect(got.reduce((sum, g) => sum + g.leases.length, 0)).toBe(rules.NEW_DEVICE_LEASES);
  });

  it.runIf(TEST_ENGINE === 'postgres')('answers 503 soon, rather than waiting, where a server frozen mid-lease holds the locks a request needs', async () => {
    // Test/server/cluster.test.ts freezes a server (SIGSTOP) inside a lease transaction for 10 s:
    // its task's row lock and its device's lease lock are held until it wakes. A request that waited
    // for them would hold a connection of its server meanwhile, and its client, timing out, would
    // try the next server and wait there too, until every pool was waiting.
    const servers = [await open(), await open()];
    await servers[0]!.publishBatch(await batch('frozen', 2, 2));
    const [holder, leasing, other] = [await registered(servers[0]!), await registered(servers[0]!), await registered(servers[0]!)];
    const [held] = (await servers[0]!.lease(holder.deviceId, ['wasi-preview1'], 1)).leases;
    const heldTask = (JSON.parse(held!.envelope) as SignedTask).manifest.taskId;
    // The frozen lease transaction, for device `leasing`, stopped after taking what a lease takes:
    // the device's lease lock (leaseContext) and the row of the task it is handing out, the one
    // `holder` holds the other replica of (leaseCandidates, FOR UPDATE).
    const frozen = new pg.Client({ connectionString: options.databaseUrl });
    await frozen.connect();
    try {
      await frozen.query('BEGIN');
      await frozen.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`dewgrid-device-leases:${leasing.deviceId}`]);
      await frozen.query('SELECT 1 FROM tasks WHERE task_id = $1 FOR UPDATE', [heldTask]);
      /** How `promise` settles, or 'still waiting' after the bound. */
      const within = <T>(promise: Promise<T>) =>
        Promise.race([
          promise.then((value) => ({ value }), (error: { status?: number }) => ({ status: error.status })),
          new Promise((resolve) => setTimeout(() => resolve('still waiting'), LOCK_WAIT_MS + 3000)),
        ]);
      // The result on the frozen lease's task, and the same device's next lease on another server: a 503, soon.
      const started = Date.now();
      expect(await within(answer(servers[1]!, holder, held!))).toEqual({ status: 503 });
      expect(await within(servers[1]!.lease(leasing.deviceId, ['wasi-preview1'], 1))).toEqual({ status: 503 });
      expect(Date.now() - started).toBeLessThan(2 * LOCK_WAIT_MS + 3000);
      // Another device leases meanwhile, passing the locked task over (SKIP LOCKED).
      const got = (await servers[1]!.lease(other.deviceId, ['wasi-preview1'], 2)).leases;
      expect(got.map((l) => (JSON.parse(l.envelope) as SignedTask).manifest.taskId)).toEqual(['frozen-1']);
    } finally {
      await frozen.query('ROLLBACK'); // the frozen server died: its transaction is rolled back
      await frozen.end();
    }
    // Once it is gone, what was refused goes through.
    expect(await answer(servers[1]!, holder, held!)).toBe('accepted');
    expect((await servers[1]!.lease(leasing.deviceId, ['wasi-preview1'], 1)).leases).toHaveLength(1);
  });

  it('keeps one keyset refusal per device and version under concurrent reports, and at most the bound in all', async () => {
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open()] : [await open()];
    const devices = await Promise.all(Array.from({ length: 12 }, () => registered(servers[0]!)));
    const report = (d: TestDevice, detail: string) => ({ kind: 'keyset' as const, deviceId: d.deviceId, version: 5, reason: 'keyset-rollback' as const, detail, signature: '' });
    const outcomes = await Promise.allSettled(devices.flatMap((d, i) => [servers[i % servers.length]!.recordKeysetRefusal(report(d, 'a')), servers[(i + 1) % servers.length]!.recordKeysetRefusal(report(d, 'b'))]));
    // Of each device's two different reports on one version, one is recorded and the other a conflict.
    expect(outcomes.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<string>).value)).toEqual(Array(12).fill('recorded'));
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason.status)).toEqual(Array(12).fill(409));
    expect(await servers[0]!.keysetRefusals()).toHaveLength(12);
  });

  it('logs every task event as its change commits, cancels a batch, sweeps expired tasks, and reads tasks by id', async () => {
    const store = await open();
    await store.publishBatch(await batch('ev', 4));
    await store.publishBatch({ ...(await batch('old', 1)), tasks: (await publishRequest(key, 'old', 1, { expiresAt: clock + 1000 })).tasks });
    const device = await registered(store);
    const leases = (await store.lease(device.deviceId, ['wasi-preview1'], 2)).leases;
    expect(leases).toHaveLength(2);
    expect(await answer(store, device, leases[0]!)).toBe('accepted');
    // The second answered with exit code 1: agreed on, but the program did not succeed.
    const task = JSON.parse(leases[1]!.envelope) as SignedTask;
    const failed = await device.sign({ ...resultFor({ leaseId: leases[1]!.leaseId, task }, device.deviceId, 'no'), exitCode: 1 });
    expect(await store.submitResult({ submission: failed, bodyHash: createHash('sha256').update(canonicalJson(failed)).digest('hex'), outputDigest: 'exit1', sizes: sizesOf('no') })).toBe('accepted');
    expect(await store.cancelBatch('ev')).toBe(2);
    expect(await store.cancelBatch('ev')).toBe(0);
    expect(await store.cancelBatch('nope')).toBeNull();
    clock += 2000;
    expect(await store.sweepExpired()).toBe(1);
    expect(await store.sweepExpired()).toBe(0);

    const events = await store.taskEvents('ev', 0, 100);
    expect(events.map((e) => [e.taskId, e.state])).toEqual([
      ['ev-0', 'running'], ['ev-1', 'running'], ['ev-0', 'done'], ['ev-1', 'done'], ['ev-2', 'cancelled'], ['ev-3', 'cancelled'],
    ].map(([id, state]) => [id === 'ev-0' || id === 'ev-1' ? (JSON.parse(leases[id === 'ev-0' ? 0 : 1]!.envelope) as SignedTask).manifest.taskId : id, state]));
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
    expect((await store.taskEvents('ev', events[3]!.seq, 100)).map((e) => e.seq)).toEqual(events.slice(4).map((e) => e.seq));
    expect((await store.taskEvents('old', 0, 100)).map((e) => e.state)).toEqual(['expired']);

    expect((await store.batchStatus('ev'))!.counts).toMatchObject({ done: 1, 'exit-nonzero': 1, cancelled: 2, queued: 0, running: 0 });
    const some = await store.tasks('ev', [task.manifest.taskId, 'ev-3']);
    expect(some.map((t) => [t.taskId, t.state])).toEqual([[task.manifest.taskId, 'exit-nonzero'], ['ev-3', 'cancelled']].sort(([a], [b]) => (a! < b! ? -1 : 1)));
    expect(some.find((t) => t.taskId === task.manifest.taskId)!.canonical!.exitCode).toBe(1);
  });

  it('numbers events so that a reader never meets a smaller number than one it has seen, with servers writing at once', async () => {
    const servers = TEST_ENGINE === 'postgres' ? [await open(), await open(), await open()] : [await open()];
    const count = 30;
    await servers[0]!.publishBatch(await batch('order', count));
    const devices = await Promise.all(Array.from({ length: count }, () => registered(servers[0]!)));
    // A reader follows the log while every device leases and answers at once, on the servers in turn.
    const seen: number[] = [];
    let writing = true;
    const reader = (async () => {
      let after = 0;
      for (;;) {
        const last = !writing;
        for (const e of await servers[1 % servers.length]!.taskEvents('order', after, 1000)) {
          seen.push(e.seq);
          after = e.seq;
        }
        if (last) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await Promise.all(
      devices.map(async (d, i) => {
        const server = servers[i % servers.length]!;
        const [lease] = (await server.lease(d.deviceId, ['wasi-preview1'], 1)).leases;
        await answer(server, d, lease!);
      }),
    );
    writing = false;
    await reader;
    const all = (await servers[0]!.taskEvents('order', 0, 1000)).map((e) => e.seq);
    expect(all).toHaveLength(2 * count); // a lease and a done for each
    expect(seen).toEqual(all); // everything, once, in order: nothing numbered after the reader passed it
  });

  it('rolls a refused request back whole: a result for another device\'s lease changes nothing', async () => {
    const store = await open();
    await store.publishBatch(await batch('r', 1));
    const [owner, thief] = [await registered(store), await registered(store)];
    const [lease] = (await store.lease(owner.deviceId, ['wasi-preview1'], 1)).leases;
    await expect(answer(store, thief, lease!)).rejects.toMatchObject({ status: 403 });
    expect((await store.tasks('r'))[0]).toMatchObject({ state: 'running', results: 0, quorum: { results: [] } });
    expect(await answer(store, owner, lease!)).toBe('accepted');
  });
});
