// The store's domain rules (server/store/rules.ts) as pure functions: the same decisions whichever
// engine holds the rows. The API and store contract suites check them end to end on both engines.
import { describe, expect, it } from 'vitest';
import { creditFor } from '../../src/protocol/index.ts';
import * as rules from '../../server/store/rules.ts';
import { StoreError } from '../../server/store/errors.ts';

let seq = 0;
const result = (deviceId: string, digest: string, work: number | null = 1_000_000, receivedAt = 1000): rules.PendingResult => ({
  leaseId: `L${++seq}`,
  deviceId,
  digest,
  work,
  receivedAt,
  seq,
});
const lease = (overrides: Partial<rules.LeaseFacts> = {}): rules.LeaseFacts => ({
  leaseId: 'L',
  taskId: 'T',
  deviceId: 'D',
  expiresAt: 10_000,
  status: 'live',
  solo: false,
  ...overrides,
});
const refusal = (f: () => unknown, status: number, message: RegExp) => {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).status).toBe(status);
    expect((error as StoreError).message).toMatch(message);
    return;
  }
  throw new Error('expected a StoreError');
};

describe('decideQuorum', () => {
  it('is done when R distinct devices agree; the first of them is canonical; credit is the least work claimed', () => {
    const liar = result('liar', 'bad', 9_000_000, 1);
    const a = result('a', 'good', 5_000_000, 2);
    const b = result('b', 'good', 4_000_000, 3);
    const decision = rules.decideQuorum([b, liar, a], 2, null);
    expect(decision).toEqual({
      outcome: 'done',
      canonicalLeaseId: a.leaseId,
      credit: creditFor(4_000_000),
      verdicts: [
        { leaseId: liar.leaseId, deviceId: 'liar', agrees: false, credit: 0 },
        { leaseId: a.leaseId, deviceId: 'a', agrees: true, credit: creditFor(4_000_000) },
        { leaseId: b.leaseId, deviceId: 'b', agrees: true, credit: creditFor(4_000_000) },
      ],
    });
  });

  it('counts one device once, and asks for enough further results for the largest group to reach R', () => {
    expect(rules.decideQuorum([result('a', 'x'), result('a', 'x')], 2, null)).toEqual({ outcome: 'wait', needed: 2 });
    // Two devices disagree under R = 2: one more result could make a quorum.
    expect(rules.decideQuorum([result('a', 'x'), result('b', 'y')], 2, null)).toEqual({ outcome: 'wait', needed: 3 });
    // Three disagree under R = 3: the largest group has 1, so two more are needed at least.
    expect(rules.decideQuorum([result('a', 'x'), result('b', 'y'), result('c', 'z')], 3, null)).toEqual({ outcome: 'wait', needed: 5 });
  });

  it('is inconclusive once the limit of distinct devices answered without a quorum', () => {
    expect(rules.resultLimit(2)).toBe(5);
    expect(rules.resultLimit(9)).toBe(16);
    const five = ['a', 'b', 'c', 'd', 'e'].map((d) => result(d, `out-${d}`));
    expect(rules.decideQuorum(five, 2, null)).toEqual({ outcome: 'inconclusive' });
  });

  it("takes a trusted device's solo result as a quorum of one; without counted work the credit is 1", () => {
    const solo = result('trusted', 'x', null);
    expect(rules.decideQuorum([solo], 2, 'x')).toMatchObject({ outcome: 'done', canonicalLeaseId: solo.leaseId, credit: 1 });
  });
});

describe('results, renewals and refusals', () => {
  it('admitResult: a retry is a duplicate; a different second answer, a refused lease, a stale lease of a finished task are refused', () => {
    expect(rules.admitResult(lease(), 'h', 'h', { state: 'done' }, 20_000)).toBe('duplicate');
    refusal(() => rules.admitResult(lease(), 'h', 'other', { state: 'queued' }, 0), 409, /already has a different result/);
    refusal(() => rules.admitResult(lease({ status: 'refused' }), null, 'h', { state: 'queued' }, 0), 409, /was refused/);
    refusal(() => rules.admitResult(lease(), null, 'h', null, 0), 404, /no task T/);
    refusal(() => rules.admitResult(lease(), null, 'h', { state: 'done' }, 10_000), 410, /expired .* task T is done/);
    // Late, but the task still needs results: taken.
    expect(rules.admitResult(lease(), null, 'h', { state: 'queued' }, 99_000)).toBe('take');
  });

  it('answerableLease names what is wrong with a lease', () => {
    refusal(() => rules.answerableLease(null, 'L', 'T', 'D'), 404, /no lease L/);
    refusal(() => rules.answerableLease(lease(), 'L', 'T', 'E'), 403, /another device/);
    refusal(() => rules.answerableLease(lease(), 'L', 'U', 'D'), 403, /another task, not U/);
  });

  it('admitRenewal: from now, only for a live lease of a queued task', () => {
    expect(rules.admitRenewal(lease(), { state: 'queued', wallTimeMs: 5000 }, 100, 60_000)).toBe(65_100);
    refusal(() => rules.admitRenewal(lease({ status: 'answered' }), { state: 'queued', wallTimeMs: 1 }, 0, 0), 409, /is answered/);
    refusal(() => rules.admitRenewal(lease(), { state: 'done', wallTimeMs: 1 }, 0, 0), 410, /task T is done/);
  });

  it('admitRefusal: counted against the task only for a live lease, and not for a replay', () => {
    expect(rules.admitRefusal(lease(), 'bad-signature', true)).toBe('duplicate');
    expect(rules.admitRefusal(lease(), 'bad-signature', false)).toBe('count');
    expect(rules.admitRefusal(lease(), 'replayed-task', false)).toBe('release');
    expect(rules.admitRefusal(lease({ status: 'answered' }), 'replayed-task', false)).toBe('record');
    refusal(() => rules.admitRefusal(lease({ status: 'refused' }), 'unknown-key', false), 409, /already refused/);
    expect(rules.refusalDetail('T', 'U', 'bad')).toBe("the lease's envelope named task U: bad");
  });

  it('errors fail a task at the third; refusals refuse it at the third', () => {
    expect(rules.afterError(1)).toEqual({ errors: 2, failed: false });
    expect(rules.afterError(2)).toEqual({ errors: 3, failed: true });
    expect([2, 3].map(rules.isRefusedEnough)).toEqual([false, true]);
  });
});

describe('leases and what readers see', () => {
  it('a solo lease needs an adaptive batch, a trusted device, an untouched task, and no spot check', () => {
    const task = { adaptive: true, results: 0, live: 0 };
    const draws: number[] = [];
    const draw = (value: number) => () => (draws.push(value), value);
    expect(rules.isSoloLease(task, rules.TRUST_AFTER_VALID, draw(0.5))).toBe(true);
    expect(rules.isSoloLease(task, rules.TRUST_AFTER_VALID, draw(0.05))).toBe(false);
    draws.length = 0;
    expect(rules.isSoloLease(task, rules.TRUST_AFTER_VALID - 1, draw(0.5))).toBe(false);
    expect(rules.isSoloLease({ ...task, adaptive: false }, 99, draw(0.5))).toBe(false);
    expect(rules.isSoloLease({ ...task, live: 1 }, 99, draw(0.5))).toBe(false);
    expect(draws).toEqual([]); // no draw is spent where the rest already says no
  });

  it('visibleState: queued past its expiry is expired, queued and leased is running', () => {
    expect(rules.visibleState('queued', { expired: true, leased: true })).toBe('expired');
    expect(rules.visibleState('queued', { expired: false, leased: true })).toBe('running');
    expect(rules.visibleState('done', { expired: true, leased: true })).toBe('done');
  });

  it('inWriteOrder sorts verdicts by device, so concurrent quorums lock devices in one order', () => {
    const v = (deviceId: string, leaseId: string) => ({ deviceId, leaseId, agrees: true, credit: 1 });
    expect(rules.inWriteOrder([v('b', '1'), v('a', '2'), v('a', '1')]).map((x) => x.deviceId + x.leaseId)).toEqual(['a1', 'a2', 'b1']);
  });

  it('deviceCredit rounds credit and fills in the validations a device has none of', () => {
    expect(rules.deviceCredit('D', 10, [{ validation: 'valid', n: 3, credit: 0.1 + 0.2 }, { validation: 'pending', n: 1, credit: 2 }])).toEqual({
      deviceId: 'D',
      validated: 0.3,
      pending: 2,
      results: { valid: 3, invalid: 0, pending: 1, error: 0 },
      consecutiveValid: 10,
      trusted: true,
    });
  });
});
