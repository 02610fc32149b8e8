// The lease keeper (src/scheduler/lease-keeper.ts): a lease is renewed while its task prepares or
// runs and shows progress (issue #13: renewal needs progress; issue #16: a long prepare must not
// outlive its lease), looked at every third of its remaining time (5 s to 60 s), offline quietly;
// a lease waiting in the queue is not renewed; the server's "finished elsewhere" (410) lets it go,
// and a lease the server no longer renews (409) is kept running but renewed no more.
import { describe, expect, it } from 'vitest';
import { LeaseKeeper, LeaseProgress } from '../../src/scheduler/lease-keeper.ts';
import type { RenewalClaim } from '../../src/protocol/device-signing.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeServer, lease, MemoryStore } from '../helpers/scheduler-fakes.ts';

function setUp() {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const progress = new LeaseProgress();
  const finished: string[] = [];
  const keeper = new LeaseKeeper(server, store, clock, 'dev', progress, (l) => finished.push(l.leaseId));
  const renewals = () => server.callsOf('renew').map((c) => ({ at: c.at, ...(c.body as RenewalClaim) }));
  return { clock, server, store, progress, keeper, finished, renewals };
}

describe('LeaseKeeper', () => {
  it('renews a lease while its task prepares, showing the bytes readied, every third of its remaining time, and records each new expiry', async () => {
    const { clock, store, progress, keeper, renewals } = setUp();
    const held = lease('t1', clock.now() + 90_000); // a third of that: 30 s
    await store.addLeases([held]);
    keeper.hold(held);
    progress.preparing(held.leaseId, 1000);
    await clock.advance(29_999);
    expect(renewals()).toHaveLength(0);
    await clock.advance(1);
    expect(renewals()).toMatchObject([{ leaseId: held.leaseId, taskId: 't1', deviceId: 'dev', phase: 'preparing', progress: 1000 }]);
    expect(held.expiresAt).toBe(clock.now() + 120_000);
    expect((await store.leases())[0]!.expiresAt).toBe(held.expiresAt);
    // Now 120 s remain: a third is 40 s, and more bytes are ready by then.
    progress.preparing(held.leaseId, 5000);
    await clock.advance(40_000);
    expect(renewals().map((r) => [r.at - renewals()[0]!.at, r.phase, r.progress])).toEqual([
      [0, 'preparing', 1000],
      [40_000, 'preparing', 5000],
    ]);
  });

  it('shows the run\'s work counter once it runs; skips a turn where nothing moved; never renews a lease that waits', async () => {
    const { clock, progress, keeper, renewals } = setUp();
    const waiting = lease('waits', clock.now() + 90_000);
    const running = lease('runs', clock.now() + 90_000);
    keeper.hold(waiting);
    keeper.hold(running);
    let work = 0;
    progress.running(running.leaseId, () => work);
    await clock.advance(30_000); // the phase itself is news: renewed with 0
    work = 5_000_000.7;
    await clock.advance(40_000);
    await clock.advance(40_000); // the counter did not move: no renewal
    expect(renewals().map((r) => [r.taskId, r.phase, r.progress])).toEqual([
      ['runs', 'running', 0],
      ['runs', 'running', 5_000_000],
    ]);
    expect(waiting.expiresAt).toBeLessThan(clock.now()); // lapsed, unrenewed: a waiting lease shows nothing
  });

  it('a lease is looked at every minute when long, every 5 s when short', async () => {
    const { clock, progress, keeper, renewals } = setUp();
    const long = lease('long', clock.now() + 3600_000);
    const short = lease('short', clock.now() + 6_000);
    let n = 0;
    for (const l of [long, short]) {
      keeper.hold(l);
      progress.running(l.leaseId, () => ++n);
    }
    await clock.advance(60_000);
    const of = (taskId: string) => renewals().filter((r) => r.taskId === taskId);
    expect(of('long')).toHaveLength(1);
    expect(of('short')[0]!.at - (clock.now() - 60_000)).toBe(5_000);
  });

  it('offline: renewal fails quietly and is tried again', async () => {
    const { clock, server, progress, keeper, renewals } = setUp();
    const held = lease('t1', clock.now() + 30_000);
    keeper.hold(held);
    let n = 0;
    progress.running(held.leaseId, () => ++n);
    server.online = false;
    await clock.advance(10_000);
    server.online = true;
    await clock.advance(10_000);
    expect(renewals().length).toBeGreaterThanOrEqual(2);
    expect(held.expiresAt).toBeGreaterThan(clock.now());
  });

  it('released, it is renewed no more; a task finished elsewhere (410) is let go and said; one the server renews no more (409) is only not renewed', async () => {
    const { clock, server, progress, keeper, finished, renewals } = setUp();
    const [a, b] = [lease('a', clock.now() + 30_000), lease('b', clock.now() + 30_000)];
    for (const l of [a, b]) {
      keeper.hold(l);
      progress.running(l.leaseId, () => clock.now());
    }
    keeper.release(a.leaseId);
    server.renewStatus = 410;
    await clock.advance(60_000);
    expect(renewals().map((r) => r.taskId)).toEqual(['b']);
    expect(finished).toEqual([b.leaseId]);
    expect(keeper.size).toBe(0);

    const c = lease('c', clock.now() + 30_000);
    keeper.hold(c);
    progress.running(c.leaseId, () => clock.now());
    server.renewStatus = 409; // expired, answered, or at the end of its life
    await clock.advance(60_000);
    expect(renewals().filter((r) => r.taskId === 'c')).toHaveLength(1);
    expect(finished).toEqual([b.leaseId]);
    expect(keeper.size).toBe(0);
  });
});
