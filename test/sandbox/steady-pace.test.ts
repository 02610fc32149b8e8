// The worker's own accounting of waits for a core (worker/duty-cycle.ts): an interval between two
// yields far slower than the steady pace before it was spent waiting while another program held
// the core, and is kept out of the steady figures; a lasting change of pace is the program's own.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DutyCycle } from '../../worker/duty-cycle.ts';
import { ThrottleBlock } from '../../src/protocol/throttle.ts';

afterEach(() => vi.restoreAllMocks());

/** Feeds the duty cycle intervals of [ms, probes] and answers its figures. */
function account(intervals: [number, number][]) {
  let now = 1000;
  vi.spyOn(performance, 'now').mockImplementation(() => now);
  const cycle = new DutyCycle({ cpu: 1, paused: false });
  let work = 0;
  for (const [ms, probes] of intervals) {
    now += ms;
    work += probes;
    cycle.tick(work);
  }
  return cycle.progress;
}

describe('steady pace (waits for a core)', () => {
  it('an interval at a quarter of the pace, a wait of 3 ms in it, is left out of the steady figures', () => {
    const p = account([[1, 100], [1, 100], [4, 100], [1, 100], [1, 100]]);
    expect(p).toMatchObject({ work: 500, busyMs: 8, steadyWork: 400, steadyBusyMs: 4 });
  });

  it('a uniformly slower pace (a warm core) stays steady: heat is not mistaken for others\' load', () => {
    const intervals: [number, number][] = [];
    for (let i = 0; i < 20; i++) intervals.push([1, Math.round(100 * (1 - i * 0.02))]); // slowing 2% a millisecond
    const p = account(intervals);
    expect(p.steadyBusyMs).toBe(p.busyMs);
    expect(p.steadyWork).toBe(p.work);
  });

  it('eight slow intervals in a row are the program\'s own new pace, from then on steady', () => {
    const intervals: [number, number][] = [[1, 100], [1, 100], ...Array.from({ length: 12 }, (): [number, number] => [1, 10])];
    const p = account(intervals);
    // The first seven slow ones are left out; the eighth sets the new pace, and the rest count.
    expect(p.steadyBusyMs).toBe(2 + 5);
    expect(p.steadyWork).toBe(200 + 5 * 10);
  });

  it('short intervals (a system call between probes) say nothing and count as steady', () => {
    const p = account([[1, 100], [0.1, 0], [1, 100], [0.2, 0], [1, 100]]);
    expect(p.steadyBusyMs).toBeCloseTo(p.busyMs, 6);
  });
});

describe('core speed checks (heat)', () => {
  /** Runs a duty cycle whose speed check takes `checkMs` of the clock, ticking every ms for `ms`. */
  function checked(ms: number, throttle: { cpu: number; paused: boolean }, checkMs = 3) {
    const control = new ThrottleBlock();
    control.set(throttle);
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const checks: number[] = [];
    const cycle = new DutyCycle(control, () => {
      now += checkMs;
      checks.push(now);
      return 1;
    });
    for (let t = 0; t < ms; t++) {
      now += 1;
      cycle.tick(t * 100);
    }
    return { progress: cycle.progress, checks };
  }

  it('one every 2 s of computing, counted as Dewgrid\'s busy time but not as the task\'s steady pace', () => {
    const { progress, checks } = checked(10_000, { cpu: 1, paused: false });
    expect(checks.length).toBe(5);
    expect(progress).toMatchObject({ speedChecks: 5, speedCheckMs: 5 });
    expect(progress.busyMs).toBeCloseTo(10_000 + 5 * 3, 6);
    expect(progress.steadyBusyMs).toBeCloseTo(10_000, 6);
  });

  it('none where the page cannot read them (no control block: a fixed throttle)', () => {
    let now = 1000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const cycle = new DutyCycle({ cpu: 1, paused: false }, () => {
      throw new Error('checked without a control block');
    });
    for (let t = 0; t < 10_000; t++) {
      now += 1;
      cycle.tick(t * 100);
    }
    expect(cycle.progress.speedChecks).toBe(0);
  });

  it('the real check: a positive time for the unit, the fastest of three', async () => {
    vi.restoreAllMocks();
    const { coreSpeedCheck } = await import('../../worker/core-speed.ts');
    const ms = coreSpeedCheck();
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThan(1000);
  });
});
