// The work supply (src/scheduler/work-supply.ts): leases asked for ahead of need and kept durably,
// renewed while their tasks prepare and run (issue #16: a long prepare outlived its lease), never
// refused as replays of this device's own work, handed out oldest first, lapsed ones last; waits
// on the injected clock only.
import { describe, expect, it } from 'vitest';
import { WorkSupply, IDLE_POLL_MS } from '../../src/scheduler/work-supply.ts';
import { LeaseKeeper, LeaseProgress } from '../../src/scheduler/lease-keeper.ts';
import { ActivityLog } from '../../src/scheduler/activity-log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakePreparer, FakeServer, lease, MemoryStore } from '../helpers/scheduler-fakes.ts';

function setUp() {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const preparer = new FakePreparer();
  const log = new ActivityLog(() => clock.now());
  const progress = new LeaseProgress();
  const keeper = new LeaseKeeper(server, store, clock, 'dev', progress);
  let arrivals = 0;
  const supply = new WorkSupply(server, store, keeper, preparer, clock, log.say, {
    request: () => ({ deviceId: 'dev', publicKey: 'cGs=', engines: ['wasi-preview1'] }),
    onWork: () => arrivals++,
  });
  return { clock, server, store, preparer, log, keeper, progress, supply, arrivals: () => arrivals };
}

describe('WorkSupply', () => {
  it('asks for a buffer of work, keeps it before handing it out, prefetches it, and hands it out oldest first', async () => {
    const { clock, server, store, preparer, supply } = setUp();
    server.available.push(...['t1', 't2', 't3'].map((t) => lease(t, clock.now() + 90_000)));
    supply.fill(1);
    await clock.advance(0);
    expect((server.callsOf('work')[0]!.body as { max: number }).max).toBe(1 + 24); // one running, two minutes of 5 s tasks ahead
    expect([...store.heldLeases.values()].map((l) => l.task.manifest.taskId)).toEqual(['t1', 't2', 't3']);
    expect(preparer.prefetched).toEqual(['t1', 't2', 't3']);
    expect(supply.take()!.task.manifest.taskId).toBe('t1');
    expect(supply.waiting).toBe(2);
  });

  it('keeps the leases it holds, renewed once their tasks prepare (not while they wait), all along a long prepare', async () => {
    const { clock, server, supply, progress } = setUp();
    server.available.push(lease('t1', clock.now() + 90_000), lease('t2', clock.now() + 90_000));
    supply.fill(1);
    await clock.advance(31_000);
    // Neither has been taken to run: neither shows progress, and neither was renewed.
    expect(server.callsOf('renew')).toEqual([]);
    const taken = supply.take()!;
    // A lease taken to prepare for minutes, its bytes arriving, is kept alive all along.
    for (let s = 1; s <= 300; s++) {
      progress.preparing(taken.leaseId, s * 100_000);
      await clock.advance(1000);
    }
    expect(taken.expiresAt).toBeGreaterThan(clock.now());
    // Answered: renewed no more.
    const renewalsOf = () => server.callsOf('renew').filter((c) => (c.body as { leaseId: string }).leaseId === taken.leaseId).length;
    supply.finished(taken, 1000);
    const before = renewalsOf();
    await clock.advance(120_000);
    expect(renewalsOf()).toBe(before);
  });

  it('a lease again for a task it holds is taken over by the held one, not refused and not run twice', async () => {
    const { clock, server, store, supply, log } = setUp();
    const first = lease('t1', clock.now() + 60_000);
    server.available.push(first);
    supply.fill(1);
    await clock.advance(0);
    const taken = supply.take()!; // being prepared, say, while the lease lapses on the server
    const again = lease('t1', clock.now() + 60_000);
    server.available.push(again);
    supply.fill(2);
    await clock.advance(IDLE_POLL_MS);
    expect(taken.leaseId).toBe(again.leaseId); // the run answers under the live lease
    expect([...store.heldLeases.keys()]).toEqual([again.leaseId]);
    expect(supply.waiting).toBe(0);
    expect(log.recent()[0]!.text).toMatch(/leased test t1 to this device again; it carries on under the new lease/);
  });

  it('a lease again for a task whose result waits in the outbox is let go quietly (the result will answer)', async () => {
    const { clock, server, store, supply } = setUp();
    await store.finish({ leaseId: 'old', taskId: 't1', deviceId: 'dev', exitCode: 0, stdout: '', stderr: '', files: [], truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 0, compileMs: 0, runMs: 0 }, work: 1, signature: 'c2ln' }, 0);
    server.available.push(lease('t1', clock.now() + 60_000));
    supply.fill(1);
    await clock.advance(0);
    expect(supply.waiting).toBe(0);
    expect(store.heldLeases.size).toBe(0);
  });

  it('no work: asks again after the idle poll, and says "cannot reach" once per outage', async () => {
    const { clock, server, supply, log, arrivals } = setUp();
    server.online = false;
    supply.fill(1);
    await clock.advance(0);
    for (let i = 0; i < 3; i++) {
      supply.fill(1); // the controller asks on every pump; the idle timer holds it back
      await clock.advance(IDLE_POLL_MS);
    }
    expect(server.callsOf('work').length).toBeGreaterThanOrEqual(3);
    expect(log.recent().filter((e) => /Could not reach the task server/.test(e.text))).toHaveLength(1);
    expect(arrivals()).toBeGreaterThanOrEqual(3);
  });

  it('a lease that lapsed while it waited is still run, after the live ones; one whose envelope says its task expired is handed out for the runner to refuse', async () => {
    const { clock, store, supply } = setUp();
    const lapsing = lease('t1', clock.now() + 1000);
    const live = lease('t2', clock.now() + 60_000);
    const expiring = lease('t3', clock.now() + 1000, { expiresAt: clock.now() + 1500 });
    await store.addLeases([lapsing, live, expiring]);
    supply.restore([lapsing, live, expiring]);
    await clock.advance(2000);
    expect(supply.take()).toBe(live);
    expect(supply.take()).toBe(lapsing); // the server never leases t1 to this device again: this is its one chance here
    // Its envelope is not verified yet (a tampered one may claim anything): the runner's checks refuse it, telling the server.
    expect(supply.take()).toBe(expiring);
    expect(supply.take()).toBeNull();
  });

  it('a deferred lease is tried again after the idle poll, or at once when the network is back; said once', async () => {
    const { clock, supply, log } = setUp();
    const l = lease('t1', clock.now() + 600_000);
    supply.restore([l]);
    supply.defer(supply.take()!, 'Waiting to run test t1: no network.');
    supply.defer(supply.take() ?? l, 'Waiting to run test t1: no network.');
    expect(supply.take()).toBeNull();
    await clock.advance(IDLE_POLL_MS);
    expect(supply.take()).toBe(l);
    supply.defer(l, 'Waiting to run test t1: no network.');
    supply.networkMayBeBack();
    expect(supply.take()).toBe(l);
    expect(log.recent().filter((e) => e.text.startsWith('Waiting to run'))).toHaveLength(1);
  });
});
