// The result outbox (src/scheduler/result-outbox.ts): each result signed with the device's key over
// its outputs' hashes, kept before it is posted, posted again on a backoff (1, 2, 5, 15 s, then
// every minute) while the server cannot be reached, at once when the network is back, dropped on
// the server's ruling (a 4xx); all on the injected clock.
import { describe, expect, it } from 'vitest';
import * as ed from '@noble/ed25519';
import { MAX_SERVER_ERRORS, ResultOutbox } from '../../src/scheduler/result-outbox.ts';
import { ActivityLog } from '../../src/scheduler/activity-log.ts';
import { outputDigests, resultSigningBytes } from '../../src/protocol/results.ts';
import { fromBase64 } from '../../src/protocol/bytes.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeServer, HttpError, lease, manifest, MemoryStore, outcome, testIdentity } from '../helpers/scheduler-fakes.ts';

async function setUp() {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const identity = await testIdentity();
  const log = new ActivityLog(() => clock.now());
  let delivered = 0;
  const outbox = new ResultOutbox(store, server, identity, clock, log.say, () => undefined, () => delivered++);
  return { clock, server, store, identity, log, outbox, delivered: () => delivered };
}

describe('ResultOutbox', () => {
  it('signs over the outputs\' hashes, keeps the result (dropping its lease), and posts it', async () => {
    const { clock, server, store, identity, outbox, delivered } = await setUp();
    const held = lease('t1', clock.now() + 60_000);
    await store.addLeases([held]);
    const run = outcome('hello');
    await outbox.add({ lease: held, manifest: held.task.manifest, outcome: run, fetchMs: 1.23, compileMs: 4.56 });
    expect(store.heldLeases.size).toBe(0);
    await clock.advance(0);
    const posted = server.results[0]!;
    expect(posted).toMatchObject({ leaseId: held.leaseId, taskId: 't1', deviceId: identity.deviceId, exitCode: 0, timings: { fetchMs: 1.2, compileMs: 4.6, runMs: 1000 } });
    const { signature, stdout: _stdout, stderr: _stderr, files: _files, encoding: _encoding, ...claim } = posted;
    const bytes = resultSigningBytes({ ...claim, outputs: await outputDigests(run) });
    expect(await ed.verifyAsync(fromBase64(signature), bytes, identity.publicKey)).toBe(true);
    expect(outbox.unsent).toBe(0);
    expect(delivered()).toBe(1);
  });

  it('keeps a small output as its bytes, in a buffer of its own, and a large one as the worker\'s Blob', async () => {
    const { clock, store, outbox } = await setUp();
    const held = lease('t1', clock.now() + 60_000);
    await store.addLeases([held]);
    const run = outcome('small');
    const big = new Uint8Array(1000);
    big.set(new TextEncoder().encode('in a larger buffer'), 100);
    run.stderr = big.subarray(100, 118); // a view: IndexedDB would keep all 1000 bytes of its buffer
    const blob = new Blob(['as the worker made it']);
    run.files = [{ path: '/out/x', data: new Uint8Array(3) }];
    run.blobs = { stdout: null, stderr: null, files: [blob] };
    await outbox.add({ lease: held, manifest: held.task.manifest, outcome: run, fetchMs: 1, compileMs: 1 });
    const kept = store.outboxEntries.get(held.leaseId)!.submission;
    expect(kept.stdout).toEqual(new TextEncoder().encode('small'));
    expect(kept.stderr).toBeInstanceOf(Uint8Array);
    expect((kept.stderr as Uint8Array).buffer.byteLength).toBe(18);
    expect(new TextDecoder().decode(kept.stderr as Uint8Array)).toBe('in a larger buffer');
    expect(kept.files[0]!.data).toBe(blob);
  });

  it('offline: posts again after 1, 2, 5 and 15 s, then every minute; at once when the network is back', async () => {
    const { clock, server, outbox } = await setUp();
    server.online = false;
    const held = lease('t1', clock.now() + 60_000);
    const start = clock.now();
    await outbox.add({ lease: held, manifest: manifest('t1'), outcome: outcome(), fetchMs: 0, compileMs: 0 });
    await clock.advance(150_000);
    const attempts = server.callsOf('result').map((c) => c.at - start);
    expect(attempts.slice(0, 7)).toEqual([0, 1000, 3000, 8000, 23000, 83000, 143000]);
    expect(outbox.unsent).toBe(1);
    server.online = true;
    await outbox.flush(true);
    expect(outbox.unsent).toBe(0);
    expect(server.results).toHaveLength(1);
  });

  it('held (consent withdrawn in the embed): posts nothing, not what waited, not what finishes later, not on its timer, until released', async () => {
    const { clock, server, outbox } = await setUp();
    server.online = false;
    await outbox.add({ lease: lease('t1', clock.now() + 60_000), manifest: manifest('t1'), outcome: outcome(), fetchMs: 0, compileMs: 0 });
    const tried = server.callsOf('result').length;
    server.online = true;
    outbox.hold();
    await outbox.add({ lease: lease('t2', clock.now() + 60_000), manifest: manifest('t2'), outcome: outcome(), fetchMs: 0, compileMs: 0 });
    await outbox.flush(true);
    await clock.advance(120_000);
    expect(server.callsOf('result')).toHaveLength(tried);
    expect(outbox.unsent).toBe(2);
    outbox.release();
    await clock.advance(0);
    await outbox.flush();
    expect(server.results.map((r) => r.taskId).sort()).toEqual(['t1', 't2']);
    expect(outbox.unsent).toBe(0);
  });

  it('a result the server rules on (a 4xx) leaves the outbox, and the log says so', async () => {
    const { clock, server, outbox, log } = await setUp();
    server.submitResult = async () => {
      throw new HttpError('/api/results: 409 this lease already has a different result', 409);
    };
    await outbox.add({ lease: lease('t1', clock.now() + 60_000), manifest: manifest('t1'), outcome: outcome(), fetchMs: 0, compileMs: 0 });
    await clock.advance(0);
    expect(outbox.unsent).toBe(0);
    expect(log.recent()[0]!.text).toMatch(/The server did not take the result of t1: .*409/);
  });

  it(`gives a result up after ${MAX_SERVER_ERRORS} 5xx answers and says so in the log; a 503 now and then, or no network, never counts toward it (issue #13.9)`, async () => {
    const { clock, server, store, outbox, log } = await setUp();
    let answer: 'offline' | 500 | 503 | 'ok' = 'offline';
    server.submitResult = async () => {
      if (answer === 'offline') throw new TypeError('Failed to fetch');
      if (answer !== 'ok') throw new HttpError(`/api/results: ${answer} internal error`, answer);
      return 'accepted';
    };
    // A long time offline: kept.
    await outbox.add({ lease: lease('t1', clock.now() + 60_000), manifest: manifest('t1'), outcome: outcome(), fetchMs: 0, compileMs: 0 });
    await clock.advance(30 * 60_000);
    expect(outbox.unsent).toBe(1);
    // The server failing on it: given up at the fifth 5xx, and said.
    answer = 500;
    for (let i = 0; i < MAX_SERVER_ERRORS - 1; i++) {
      await outbox.flush(true);
      expect(outbox.unsent, `after ${i + 1} 5xx`).toBe(1);
    }
    await outbox.flush(true);
    expect(outbox.unsent).toBe(0);
    expect(store.outboxEntries.size).toBe(0);
    expect(log.recent()[0]!.text).toMatch(new RegExp(`The server failed on the result of t1 ${MAX_SERVER_ERRORS} times \\(.*500 internal error\\): it is given up`));
  });

  it('posts what an earlier session left, on restore', async () => {
    const { clock, server, store, outbox } = await setUp();
    await store.finish({ leaseId: 'l1', taskId: 't1', deviceId: 'd', exitCode: 0, stdout: '', stderr: '', files: [], truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 0, compileMs: 0, runMs: 0 }, work: 1, signature: 'c2ln' });
    await outbox.restore();
    await clock.advance(0);
    expect(server.results.map((r) => r.leaseId)).toEqual(['l1']);
  });
});
