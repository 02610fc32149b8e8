// The lease keeper (src/scheduler/lease-keeper.ts): a lease is renewed from the moment it is held,
// every third of its remaining time (5 s to 60 s), offline quietly; the server's "finished
// elsewhere" (410) lets it go.
import { describe, expect, it } from 'vitest';
import { LeaseKeeper } from '../../src/scheduler/lease-keeper.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeServer, lease, MemoryStore } from '../helpers/scheduler-fakes.ts';

function setUp() {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const finished: string[] = [];
  const keeper = new LeaseKeeper(server, store, clock, 'dev', (l) => finished.push(l.leaseId));
  return { clock, server, store, keeper, finished };
}

describe('LeaseKeeper', () => {
  it('renews a held lease every third of its remaining time, at most every minute, and records each new expiry', async () => {
    const { clock, server, store, keeper } = setUp();
    const held = lease('t1', clock.now() + 90_000); // a third of that: 30 s
    await store.addLeases([held]);
    keeper.hold(held);
    await clock.advance(29_999);
    expect(server.callsOf('renew')).toHaveLength(0);
    await clock.advance(1);
    expect(server.callsOf('renew')).toHaveLength(1);
    expect(held.expiresAt).toBe(clock.now() + 120_000);
    expect((await store.leases(clock.now()))[0]!.expiresAt).toBe(held.expiresAt);
    // Now 120 s remain: a third is 40 s.
    await clock.advance(40_000);
    expect(server.callsOf('renew').map((c) => c.at - server.callsOf('renew')[0]!.at)).toEqual([0, 40_000]);
  });

  it('a long lease is renewed every minute; a short one every 5 s', async () => {
    const { clock, server, keeper } = setUp();
    keeper.hold(lease('long', clock.now() + 3600_000));
    keeper.hold(lease('short', clock.now() + 6_000));
    await clock.advance(60_000);
    const of = (taskId: string) => server.callsOf('renew').filter((c) => (c.body as { taskId: string }).taskId === taskId).length;
    expect(of('long')).toBe(1);
    expect(of('short')).toBeGreaterThanOrEqual(1);
    expect(server.calls[0]!.at - (clock.now() - 60_000)).toBe(5_000);
  });

  it('offline: renewal fails quietly and is tried again', async () => {
    const { clock, server, keeper } = setUp();
    const held = lease('t1', clock.now() + 30_000);
    keeper.hold(held);
    server.online = false;
    await clock.advance(10_000);
    server.online = true;
    await clock.advance(10_000);
    expect(server.callsOf('renew').length).toBeGreaterThanOrEqual(2);
    expect(held.expiresAt).toBeGreaterThan(clock.now());
  });

  it('released, it is renewed no more; a task finished elsewhere (410) is let go and said', async () => {
    const { clock, server, keeper, finished } = setUp();
    const a = lease('a', clock.now() + 30_000);
    const b = lease('b', clock.now() + 30_000);
    keeper.hold(a);
    keeper.hold(b);
    keeper.release(a.leaseId);
    server.renewStatus = 410;
    await clock.advance(60_000);
    expect(server.callsOf('renew').map((c) => (c.body as { taskId: string }).taskId)).toEqual(['b']);
    expect(finished).toEqual([b.leaseId]);
    expect(keeper.size).toBe(0);
  });
});
