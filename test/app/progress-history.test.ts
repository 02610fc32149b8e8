// The dashboard chart's history (src/app/progress-history.ts): rates from the difference of two
// samples of the controller's totals, CPU as a share of all cores, five minutes kept.
import { describe, expect, it } from 'vitest';
import { HISTORY_MS, ProgressHistory } from '../../src/app/progress-history.ts';

function history(cores: number) {
  const totals = { work: 0, busyMs: 0 };
  let now = 1_000_000;
  const h = new ProgressHistory(() => ({ computed: { ...totals } }), cores, () => now);
  return {
    h,
    /** `ms` pass during which the tasks compute `work` probes in `busyMs` of computing time. */
    advance(ms: number, work: number, busyMs: number) {
      now += ms;
      totals.work += work;
      totals.busyMs += busyMs;
      h.sample();
    },
  };
}

describe('ProgressHistory', () => {
  it('turns totals into work per second and a share of all cores over each interval', () => {
    const { h, advance } = history(4);
    h.sample(); // the first reading only sets the start
    expect(h.current()).toEqual([]);
    advance(1000, 5000, 2000); // two cores' worth of computing in a second, on four
    advance(2000, 1000, 0); // a throttled page's longer interval
    advance(1000, 0, 9000); // more computing than the cores have: clamped
    expect(h.current().map(({ durationMs, workPerSecond, cpuShare }) => ({ durationMs, workPerSecond, cpuShare }))).toEqual([
      { durationMs: 1000, workPerSecond: 5000, cpuShare: 0.5 },
      { durationMs: 2000, workPerSecond: 500, cpuShare: 0 },
      { durationMs: 1000, workPerSecond: 0, cpuShare: 1 },
    ]);
  });

  it('keeps the last five minutes and tells its subscribers each new sample', () => {
    const { h, advance } = history(1);
    const seen: number[] = [];
    const unsubscribe = h.subscribe((samples) => seen.push(samples.length));
    h.sample();
    for (let i = 0; i < 400; i++) advance(1000, 10, 500);
    expect(h.current()).toHaveLength(HISTORY_MS / 1000);
    expect(h.current()[h.current().length - 1]!.at - h.current()[0]!.at).toBe(HISTORY_MS - 1000);
    expect(seen).toHaveLength(400);
    unsubscribe();
    advance(1000, 10, 500);
    expect(seen).toHaveLength(400);
  });
});
