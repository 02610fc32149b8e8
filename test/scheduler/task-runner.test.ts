// The task runner (src/scheduler/task-runner.ts): each lease ends answered, refused, cut short,
// waiting or dropped; a task this device could not run is answered with a signed `device` error
// (issue #12), its lease let go at once, and never counted as done.
import { describe, expect, it } from 'vitest';
import { NOT_NEEDED, TaskRunner } from '../../src/scheduler/task-runner.ts';
import { ResultOutbox } from '../../src/scheduler/result-outbox.ts';
import { ActivityLog } from '../../src/scheduler/activity-log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakePreparer, FakeServer, FakeSlot, lease, MemoryStore, outcome, testIdentity } from '../helpers/scheduler-fakes.ts';

async function setUp() {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const store = new MemoryStore();
  const preparer = new FakePreparer();
  const identity = await testIdentity();
  const log = new ActivityLog(() => clock.now());
  const outbox = new ResultOutbox(store, server, identity, clock, log.say);
  const completed: string[] = [];
  let running = true;
  const runner = new TaskRunner(preparer, outbox, store, server, identity.deviceId, clock, log.say, {
    keysReady: () => Promise.resolve(),
    running: () => running,
    cpu: () => 0.5,
    completed: ({ manifest }) => completed.push(manifest.taskId),
  });
  const held = lease('t1', clock.now() + 600_000);
  await store.addLeases([held]);
  return { clock, server, store, preparer, log, outbox, runner, held, completed, stop: () => (running = false) };
}

/** Starts a run and waits until its job reached the slot; answers how it ended (a promise in a box, so awaiting this does not await the run). */
async function started(runner: TaskRunner, slot: FakeSlot, held: ReturnType<typeof lease>, clock: FakeClock) {
  const end = runner.run(slot, held);
  await clock.advance(0);
  return { end };
}

describe('TaskRunner', () => {
  it('answers a run\'s result: signed into the outbox, posted, counted done', async () => {
    const { clock, server, store, runner, held, completed } = await setUp();
    const slot = new FakeSlot();
    const { end } = await started(runner, slot, held, clock);
    expect(slot.jobs[0]).toMatchObject({ taskId: 't1', cpu: 0.5 });
    slot.finish(outcome('hi', 1234));
    expect(await end).toEqual({ kind: 'answered', ranMs: 1234 });
    await clock.advance(0);
    expect(server.results.map((r) => [r.taskId, r.exitCode, r.error])).toEqual([['t1', 0, null]]);
    expect(store.heldLeases.size).toBe(0);
    expect(runner.tally).toEqual({ done: 1, failed: 0, refused: 0 });
    expect(completed).toEqual(['t1']);
  });

  it('refuses what fails a check, reports it, and lets the lease go', async () => {
    const { server, store, preparer, runner, held, log } = await setUp();
    preparer.outcomes.set('t1', async () => ({ kind: 'refused', reason: 'bad-signature', detail: 'the signature does not verify' }));
    expect(await runner.run(new FakeSlot(), held)).toEqual({ kind: 'refused' });
    expect(server.refusals).toMatchObject([{ kind: 'task', leaseId: held.leaseId, taskId: 't1', reason: 'bad-signature' }]);
    expect(store.heldLeases.size).toBe(0);
    expect(runner.tally.refused).toBe(1);
    expect(log.recent()[0]!.text).toMatch(/^Refused test t1: /);
  });

  it('a worker that cannot start: the project gets a signed `device` failure, the lease goes at once, nothing counts as done', async () => {
    const { clock, server, store, runner, held, log } = await setUp();
    const slot = new FakeSlot();
    const { end } = await started(runner, slot, held, clock);
    slot.fail(new Error("the task's worker failed to start or crashed"));
    expect(await end).toEqual({ kind: 'answered', ranMs: undefined, device: true });
    await clock.advance(0);
    expect(server.results).toHaveLength(1);
    expect(server.results[0]).toMatchObject({ leaseId: held.leaseId, taskId: 't1', exitCode: null, error: { code: 'device' } });
    expect(server.results[0]!.error!.message).toMatch(/^this device could not run it: Error: the task's worker failed to start/);
    expect(store.heldLeases.size).toBe(0);
    expect(runner.tally).toEqual({ done: 0, failed: 1, refused: 0 });
    expect(log.recent()[0]!.text).toMatch(/test t1 failed: device: this device could not run it/);
  });

  it('a preparer that throws (not a refusal, not the network) is the device\'s failure too', async () => {
    const { clock, server, preparer, runner, held } = await setUp();
    preparer.outcomes.set('t1', async () => {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    });
    expect((await runner.run(new FakeSlot(), held)).kind).toBe('answered');
    await clock.advance(0);
    expect(server.results[0]!.error).toMatchObject({ code: 'device', message: expect.stringMatching(/QuotaExceededError/) });
  });

  it('cut short (Stop): the lease is kept to run again', async () => {
    const { clock, store, runner, held } = await setUp();
    const slot = new FakeSlot();
    const { end } = await started(runner, slot, held, clock);
    slot.cancel('stopped by the user');
    expect(await end).toEqual({ kind: 'cut-short' });
    expect(store.heldLeases.has(held.leaseId)).toBe(true);
  });

  it('inputs that cannot be fetched now: the lease waits', async () => {
    const { preparer, runner, held } = await setUp();
    preparer.outcomes.set('t1', async () => {
      throw Object.assign(new Error('the data saver is on, and this task needs 2.0 MB fetched'), { name: 'FetchDeferred' });
    });
    expect(await runner.run(new FakeSlot(), held)).toEqual({ kind: 'waiting', why: 'Waiting to run test t1: the data saver is on, and this task needs 2.0 MB fetched.' });
    preparer.outcomes.set('t1', async () => {
      throw new TypeError('Failed to fetch');
    });
    expect((await runner.run(new FakeSlot(), held)).kind).toBe('waiting');
  });

  it('a run the project no longer needs is dropped, not run again', async () => {
    const { clock, store, runner, held } = await setUp();
    const slot = new FakeSlot();
    const { end } = await started(runner, slot, held, clock);
    slot.cancel(NOT_NEEDED);
    expect(await end).toEqual({ kind: 'dropped' });
    await clock.advance(0);
    expect(store.heldLeases.size).toBe(0);
  });

  it('resumes from the checkpoint the lease kept', async () => {
    const { clock, store, runner, log } = await setUp();
    const keeps = lease('t2', clock.now() + 600_000, { preopens: ['/checkpoint'] });
    await store.addLeases([keeps]);
    await store.saveCheckpoint(keeps.leaseId, { path: '/checkpoint/state', data: new Uint8Array([1, 2, 3]) });
    const slot = new FakeSlot();
    void runner.run(slot, keeps);
    await clock.advance(0);
    expect(slot.jobs[0]!.files).toEqual([{ path: '/checkpoint/state', data: new Uint8Array([1, 2, 3]) }]);
    expect(log.recent()[0]!.text).toBe('Resuming test t2 from its checkpoint.');
  });
});
