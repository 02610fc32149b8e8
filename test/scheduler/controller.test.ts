// The controller (src/scheduler/controller.ts) wires the parts; these tests drive the whole client
// in Node with a fake clock, a fake server and fake worker slots: nothing waits on a real timer.
import { describe, expect, it } from 'vitest';
import { Controller, type Status } from '../../src/scheduler/controller.ts';
import type { Signals } from '../../src/scheduler/signals.ts';
import type { Prepared } from '../../src/scheduler/prepare.ts';
import { FakeClock, until } from '../helpers/fake-clock.ts';
import { FakePreparer, FakeServer, FakeSlot, lease, MemoryStore, outcome, testIdentity } from '../helpers/scheduler-fakes.ts';

async function setUp(options: { workers?: number; newSlot?: () => FakeSlot } = {}) {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const preparer = new FakePreparer();
  const slots: FakeSlot[] = [];
  const signals: Signals = { battery: null, pressure: null, pressureObserved: false, hidden: false, lastInputAt: null, saveData: false };
  const controller = new Controller({
    server,
    store,
    keys: { version: () => 1, refresh: async () => false, refreshUnlessFresh: async () => false },
    identity: await testIdentity(),
    preparer,
    project: 'test',
    maxWorkers: options.workers ?? 2,
    newSlot:
      options.newSlot ??
      (() => {
        const slot = new FakeSlot();
        slots.push(slot);
        return slot;
      }),
    cores: 2,
    clock,
    signals: () => signals,
    engines: () => ['wasi-preview1'],
  });
  const heard: { at: number; status: Status }[] = [];
  controller.on('status', (status) => heard.push({ at: clock.now(), status }));
  await controller.restore();
  return { clock, server, store, preparer, slots, signals, controller, heard };
}

describe('Controller', () => {
  it('start: leases work, runs it on a slot, posts the signed result, and counts it', async () => {
    const { clock, server, slots, controller } = await setUp({ workers: 1 });
    controller.setLimits({ workers: 1 });
    server.available.push(lease('t1', clock.now() + 90_000));
    controller.start();
    await clock.advance(0);
    expect(controller.status().counts).toMatchObject({ running: 1, queued: 0 });
    slots[0]!.finish(outcome('done'));
    await until(() => server.results.length > 0);
    expect(server.results.map((r) => r.taskId)).toEqual(['t1']);
    expect(controller.status().counts).toMatchObject({ running: 0, done: 1, unsent: 0 });
  });

  it('a prepare that outlives the lease: renewed all along, one lease, no replayed-task refusal (issue #16)', async () => {
    const { clock, server, preparer, slots, controller } = await setUp({ workers: 1 });
    controller.setLimits({ workers: 1 });
    const held = lease('big', clock.now() + 80_000); // wall time + a minute
    server.available.push(held);
    // Fetching and compiling a large module takes five minutes, its bytes arriving all along.
    let ready!: (prepared: Prepared) => void;
    let readied!: (bytes: number) => void;
    preparer.outcomes.set('big', (onProgress) => new Promise((resolve) => ((ready = resolve), (readied = onProgress!))));
    controller.start();
    for (let s = 1; s <= 300; s++) {
      await clock.advance(1000);
      readied?.(s * 100_000);
    }
    const renewals = server.callsOf('renew').filter((c) => (c.body as { leaseId: string }).leaseId === held.leaseId);
    expect(renewals.length).toBeGreaterThanOrEqual(5);
    expect(renewals.every((c, i) => i === 0 || c.at - renewals[i - 1]!.at <= 60_000)).toBe(true);
    expect(renewals.map((c) => (c.body as { phase: string }).phase)).toEqual(renewals.map(() => 'preparing'));
    ready({ kind: 'ready', manifest: held.task.manifest, module: {} as WebAssembly.Module, moduleBytes: null, stdin: new Uint8Array(0), files: [], fetchMs: 300_000, compileMs: 1 });
    await clock.advance(0);
    slots[0]!.finish(outcome());
    await until(() => server.results.length > 0);
    expect(server.refusals).toEqual([]);
    expect(server.results.map((r) => r.leaseId)).toEqual([held.leaseId]);
  });

  it('tells the page of changes at most once a second, and at once of the donor\'s own actions', async () => {
    const { clock, server, controller, heard } = await setUp();
    server.available.push(...['a', 'b', 'c', 'd', 'e', 'f'].map((t) => lease(t, clock.now() + 600_000)));
    heard.length = 0;
    controller.start(); // the donor's own action: heard at once
    expect(heard).toHaveLength(1);
    await clock.advance(10_000);
    const gaps = heard.slice(1).map((h, i) => h.at - heard[i]!.at);
    expect(gaps.length).toBeGreaterThan(0);
    expect(gaps.every((gap) => gap >= 1000)).toBe(true);
    const before = heard.length;
    controller.setLimits({ cpu: 0.5 });
    expect(heard.length).toBe(before + 1);
  });

  it('keeps its pace on the injected clock alone: results go out and work comes in with no other timer', async () => {
    const { clock, server, slots, controller } = await setUp({ workers: 1 });
    controller.setLimits({ workers: 1 });
    server.online = false;
    controller.start();
    await clock.advance(10_000);
    server.online = true;
    server.available.push(lease('t1', clock.now() + 600_000));
    await clock.advance(3_000); // the idle poll
    expect(controller.status().counts.running).toBe(1);
    server.online = false;
    slots[0]!.finish(outcome());
    await until(() => controller.status().counts.unsent === 1);
    await clock.advance(5_000);
    expect(controller.status().counts.unsent).toBe(1);
    server.online = true;
    await clock.advance(15_000); // the outbox's backoff
    expect(controller.status().counts.unsent).toBe(0);
  });

  it('the governor looks again every second on the clock: the donor\'s use of the page ends with no event', async () => {
    const { clock, signals, controller } = await setUp();
    controller.start();
    signals.lastInputAt = clock.now();
    controller.signalsChanged();
    expect(controller.status().activity.reason).toBe('Running at 50%: you are using this page.');
    await clock.advance(6_000);
    expect(controller.status().activity.reason).toBe('Running at full speed.');
  });

  it('a held lease whose task needs no more results (410 on renewal while it prepares) is still checked, then let go without running', async () => {
    const { clock, server, store, slots, controller, preparer } = await setUp({ workers: 1 });
    controller.setLimits({ workers: 1 });
    server.available.push(lease('a', clock.now() + 600_000), lease('b', clock.now() + 90_000));
    // b's preparation goes on a while, its bytes arriving; its renewal hears that it is needed no more.
    let ready!: (prepared: Prepared) => void;
    let readied!: (bytes: number) => void;
    preparer.outcomes.set('b', (onProgress) => new Promise((resolve) => ((ready = resolve), (readied = onProgress!))));
    controller.start();
    await clock.advance(0);
    expect(controller.status().counts.queued).toBe(1);
    slots[0]!.finish(outcome());
    await until(() => readied !== undefined);
    server.renewStatus = 410; // b finished elsewhere (or its key was revoked) meanwhile
    readied(1000);
    await clock.advance(31_000);
    ready({ kind: 'ready', manifest: lease('b', 0).task.manifest, module: {} as WebAssembly.Module, moduleBytes: null, stdin: new Uint8Array(0), files: [], fetchMs: 1, compileMs: 1 });
    await until(() => controller.recentLog().some((e) => /^Dropped test b: the project no longer needs it/.test(e.text)));
    expect(preparer.prepared).toEqual(['a', 'b']); // checked: a task of a revoked key would be refused and reported
    expect(slots[0]!.jobs.map((j) => j.taskId)).toEqual(['a']); // not run
    expect([...store.heldLeases.values()]).toEqual([]);
    expect(controller.status().counts).toMatchObject({ queued: 0, running: 0, done: 1 });
  });

  it('a device whose workers cannot start answers each task as its own failure, then stops taking work', async () => {
    const { clock, server, controller } = await setUp({
      workers: 1,
      newSlot: () => {
        throw new DOMException("Failed to construct 'Worker': refused by the page's policy", 'SecurityError');
      },
    });
    controller.setLimits({ workers: 1 });
    server.available.push(...['a', 'b', 'c', 'd', 'e'].map((t) => lease(t, clock.now() + 600_000)));
    controller.start();
    await until(() => server.results.length === 3);
    await clock.advance(1000);
    expect(server.results.map((r) => [r.taskId, r.error?.code])).toEqual([['a', 'device'], ['b', 'device'], ['c', 'device']]);
    expect(server.results[0]!.error!.message).toMatch(/^this device could not run it: SecurityError: Failed to construct 'Worker'/);
    expect(controller.status()).toMatchObject({ running: false, counts: { done: 0, failed: 3 } });
    expect(controller.recentLog().some((e) => /could not run 3 tasks in a row; it stops taking work/.test(e.text))).toBe(true);
  });

  it('stopped, it renews no lease: a donor who does not come back keeps no task from other devices', async () => {
    const { clock, server, slots, controller } = await setUp({ workers: 1 });
    controller.setLimits({ workers: 1 });
    server.available.push(lease('a', clock.now() + 90_000), lease('b', clock.now() + 90_000));
    controller.start();
    await clock.advance(0);
    controller.stop();
    await until(() => !slots[0]!.busy);
    const before = server.callsOf('renew').length;
    await clock.advance(120_000);
    expect(server.callsOf('renew').length).toBe(before);
    expect(controller.status().counts.queued).toBe(2); // kept on the device, to run first when started again
  });
});
