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
  endsAt: 100_000,
  status: 'live',
  solo: false,
  phase: null,
  progress: 0,
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
        { leaseId: liar.leaseId, deviceId: 'liar', agrees: false, credit: 0, run: 'reset' },
        { leaseId: a.leaseId, deviceId: 'a', agrees: true, credit: creditFor(4_000_000), run: 'extend' },
        { leaseId: b.leaseId, deviceId: 'b', agrees: true, credit: creditFor(4_000_000), run: 'extend' },
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

  it('extends a run of valid results only where another device corroborated the output: not for R = 1, a solo lease, or a late answer', () => {
    expect(rules.decideQuorum([result('only', 'x')], 1, null)).toMatchObject({ outcome: 'done', verdicts: [{ agrees: true, run: 'keep' }] });
    expect(rules.decideQuorum([result('trusted', 'x')], 2, 'x')).toMatchObject({ outcome: 'done', verdicts: [{ agrees: true, run: 'keep' }] });
    expect(rules.lateVerdict('L', 'late', 'x', { digest: 'x' })).toEqual({ leaseId: 'L', deviceId: 'late', agrees: true, credit: 0, run: 'keep' });
    expect(rules.lateVerdict('L', 'late', 'y', { digest: 'x' })).toEqual({ leaseId: 'L', deviceId: 'late', agrees: false, credit: 0, run: 'reset' });
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

  it('admitRenewal: from now, for a live, unexpired lease of a queued task that shows progress, never past its end', () => {
    const task = { state: 'queued' as const, wallTimeMs: 5000, prepareBytes: 0 };
    const running = { phase: 'running' as const, progress: 10 };
    expect(rules.admitRenewal(lease(), task, running, 100, 60_000)).toBe(65_100);
    // Preparing: the time to prepare is given again too.
    expect(rules.admitRenewal(lease(), { ...task, prepareBytes: 250 }, { phase: 'preparing', progress: 1 }, 100, 0)).toBe(100 + rules.PREPARE_BASE_MS + 1 + 5000);
    expect(rules.admitRenewal(lease({ endsAt: 20_000 }), task, running, 100, 60_000)).toBe(20_000);
    refusal(() => rules.admitRenewal(lease({ endsAt: 10_000 }), task, running, 100, 60_000), 409, /end of its life/);
    refusal(() => rules.admitRenewal(lease({ status: 'answered' }), task, running, 0, 0), 409, /is answered/);
    refusal(() => rules.admitRenewal(lease(), { ...task, state: 'done' }, running, 0, 0), 410, /task T is done/);
    refusal(() => rules.admitRenewal(lease(), task, running, 10_000, 0), 409, /expired .* not renewed/);
    refusal(() => rules.admitRenewal(lease({ phase: 'running', progress: 10 }), task, running, 0, 0), 409, /no progress/);
    refusal(() => rules.admitRenewal(lease({ phase: 'running', progress: 10 }), task, { phase: 'preparing', progress: 99 }, 0, 0), 409, /does not go back/);
    refusal(() => rules.admitRenewal(lease(), task, { phase: 'running', progress: rules.maxWork(5000) + 1 }, 0, 0), 400, /^progress: .*at most/);
    refusal(() => rules.admitRenewal(lease(), { ...task, prepareBytes: 10 }, { phase: 'preparing', progress: 31 }, 0, 0), 400, /^progress: .*at most 30/);
    // A new phase starts its count afresh.
    expect(rules.admitRenewal(lease({ phase: 'preparing', progress: 500 }), task, { phase: 'running', progress: 0 }, 9000, 0)).toBe(14_000);
    // Never shorter than it was.
    expect(rules.admitRenewal(lease(), task, running, 100, 0)).toBe(10_000);
  });

  it('leaseTerms: the first expiry covers preparing (by size) and running (at most a step), the end twice both', () => {
    const big = rules.leaseTerms({ wallTimeMs: 20_000, prepareBytes: 30e6 }, 0, 60_000);
    const prepare = rules.PREPARE_BASE_MS + 30e6 / rules.PREPARE_BYTES_PER_MS;
    expect(big).toEqual({ expiresAt: prepare + 20_000 + 60_000, endsAt: 2 * (prepare + 20_000) + 60_000 });
    expect(rules.leaseTerms({ wallTimeMs: 24 * 3600_000, prepareBytes: 0 }, 0, 0).expiresAt).toBe(rules.PREPARE_BASE_MS + rules.RUN_STEP_MS);
  });

  it('leaseAllowance: few leases for a new device, more as its results are validated, never more than 64', () => {
    expect(rules.leaseAllowance(0)).toBe(rules.NEW_DEVICE_LEASES);
    expect(rules.leaseAllowance(10)).toBe(rules.NEW_DEVICE_LEASES + 5);
    expect(rules.leaseAllowance(10_000)).toBe(rules.MAX_DEVICE_LEASES);
    expect(rules.leasesToGrant(64, { live: 3, validRecently: 0 })).toBe(1);
    expect(rules.leasesToGrant(64, { live: 9, validRecently: 0 })).toBe(0);
    expect(rules.leasesToGrant(2, { live: 0, validRecently: 100 })).toBe(2);
  });

  it('checkClaims: outputs within outputBytes each (files together), work within the wall time', () => {
    const task = { taskId: 'T', outputBytes: 100, wallTimeMs: 1 };
    rules.checkClaims(task, { stdout: 100, stderr: 100, files: 100 }, rules.maxWork(1));
    refusal(() => rules.checkClaims(task, { stdout: 101, stderr: 0, files: 0 }, null), 400, /^stdout: 101 bytes, over task T's outputBytes of 100/);
    refusal(() => rules.checkClaims(task, { stdout: 0, stderr: 0, files: 101 }, null), 400, /^files: 101 bytes in all/);
    refusal(() => rules.checkClaims(task, { stdout: 0, stderr: 0, files: 0 }, 1e308), 400, /^work: 1e\+308 probes is more than/);
  });

  it('admitRefusal: one report per lease; a live lease is released and its refusal judged', () => {
    const report = { reason: 'bad-signature', detail: 'x' };
    expect(rules.admitRefusal(lease(), report, report)).toBe('duplicate');
    expect(rules.admitRefusal(lease(), report, null)).toBe('release');
    expect(rules.admitRefusal(lease({ status: 'answered' }), report, null)).toBe('record');
    refusal(() => rules.admitRefusal(lease({ status: 'answered' }), report, { reason: 'bad-signature', detail: 'y' }), 409, /already refused/);
    refusal(() => rules.admitRefusal(lease({ status: 'refused' }), { reason: 'unknown-key', detail: 'x' }, report), 409, /already refused/);
    expect(rules.refusalDetail('T', 'U', 'bad')).toBe("the lease's envelope named task U: bad");
    expect(rules.refusalKind('replayed-task')).toBe('device');
    expect(rules.refusalKind('bad-signature')).toBe('refusal');
    expect(rules.resultKind({ code: 'device' })).toBe('device');
    expect(rules.resultKind({ code: 'trap' })).toBe('error');
  });

  it('judgeReports: new devices only re-issue a task, up to its cap; trusted devices end it', () => {
    const report = (deviceId: string, kind: rules.ReportKind, trusted = false): rules.Report => ({ deviceId, kind, trusted });
    // Any number of reports from devices without trust: re-issued; at the cap (2R + 1), held for trusted devices.
    expect(rules.judgeReports([report('a', 'error'), report('b', 'error')], 1)).toEqual({ outcome: 'reissue', trustedOnly: false });
    const three = [report('a', 'error'), report('b', 'refusal'), report('c', 'error')];
    expect(rules.judgeReports(three, 1)).toEqual({ outcome: 'reissue', trustedOnly: true });
    expect(rules.judgeReports(Array.from({ length: 50 }, (_, i) => report(`n${i}`, 'error')), 1)).toEqual({ outcome: 'reissue', trustedOnly: true });
    // Device failures never count against the task, but do fill its cap.
    expect(rules.judgeReports([report('a', 'device'), report('b', 'device'), report('c', 'device'), report('t', 'error', true)], 1)).toEqual({ outcome: 'reissue', trustedOnly: true });
    // Two trusted devices end it.
    expect(rules.judgeReports([report('t1', 'error', true), report('t2', 'error', true)], 3)).toEqual({ outcome: 'failed' });
    expect(rules.judgeReports([report('t1', 'refusal', true), report('t2', 'refusal', true)], 3)).toEqual({ outcome: 'refused' });
    expect(rules.judgeReports([report('t1', 'error', true), report('t1', 'error', true)], 3)).toEqual({ outcome: 'reissue', trustedOnly: false });
    // At the cap, one trusted device that agrees with a majority of failure reports ends it...
    expect(rules.judgeReports([...three, report('t', 'error', true)], 1)).toEqual({ outcome: 'failed' });
    // ...but not where results outnumber the failures.
    const results = [report('r1', 'result'), report('r2', 'result'), report('r3', 'result'), report('r4', 'result')];
    expect(rules.judgeReports([...three, ...results, report('t', 'error', true)], 1)).toEqual({ outcome: 'reissue', trustedOnly: true });
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
    const v = (deviceId: string, leaseId: string): rules.Verdict => ({ deviceId, leaseId, agrees: true, credit: 1, run: 'extend' });
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
