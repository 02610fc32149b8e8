// Each scheduling policy is a pure function: tables of inputs and what it must answer, with the
// hysteresis edges (a minimum with a margin above it, a dwell time before any pause lifts).
import { describe, expect, it } from 'vitest';
import { batteryPolicy, type BatteryReading, type BatteryState } from '../../src/scheduler/policies/battery.ts';
import { heatPolicy, INITIAL_HEAT, type HeatState, type SpeedWindow } from '../../src/scheduler/policies/heat.ts';
import { othersFromPressure, othersFromWaits, PRESSURE_FLOOR, type PressureReading } from '../../src/scheduler/policies/load.ts';
import { INITIAL_LADDER, ladderPolicy, type Pull } from '../../src/scheduler/policies/ladder.ts';
import { fetchAllowance, inUsePolicy, IN_USE_BACKOFF_MS, visibilityPolicy } from '../../src/scheduler/policies/page.ts';
import { decide } from '../../src/scheduler/policies/governor.ts';
import { DEFAULT_SETTINGS, updatedSettings } from '../../src/scheduler/policies/settings.ts';

const running: BatteryState = { paused: false, since: 0 };
const pausedAt = (since: number): BatteryState => ({ paused: true, since });
const onBattery = (level: number): BatteryReading => ({ charging: false, level });
const charging = (level: number): BatteryReading => ({ charging: true, level });

describe('batteryPolicy', () => {
  const dwellSeconds = 30;
  const allowed = { runOnBattery: true, minBatteryLevel: 0.3, dwellSeconds };
  const chargingOnly = { runOnBattery: false, minBatteryLevel: 0.3, dwellSeconds };
  const table: { name: string; reading: BatteryReading; settings: typeof allowed; previous: BatteryState; now: number; paused: boolean; reason?: RegExp }[] = [
    { name: 'no Battery API: no objection', reading: null, settings: chargingOnly, previous: running, now: 0, paused: false },
    { name: 'charging: runs', reading: charging(0.05), settings: chargingOnly, previous: running, now: 0, paused: false },
    { name: 'on battery, only while charging: pauses at once', reading: onBattery(0.95), settings: chargingOnly, previous: running, now: 0, paused: true, reason: /on battery at 95% \(you chose to compute only while charging\)/ },
    { name: 'on battery, allowed, above the minimum: runs', reading: onBattery(0.5), settings: allowed, previous: running, now: 0, paused: false },
    { name: 'edge: exactly at the minimum still runs', reading: onBattery(0.3), settings: allowed, previous: running, now: 0, paused: false },
    { name: 'edge: just below the minimum pauses', reading: onBattery(0.29), settings: allowed, previous: running, now: 0, paused: true, reason: /on battery at 29%, below your minimum of 30%/ },
    { name: 'hysteresis: paused, back at the minimum, stays paused', reading: onBattery(0.3), settings: allowed, previous: pausedAt(0), now: 600_000, paused: true, reason: /waiting to reach 40%/ },
    { name: 'hysteresis: paused, just under minimum + 10, stays paused', reading: onBattery(0.39), settings: allowed, previous: pausedAt(0), now: 600_000, paused: true },
    { name: 'hysteresis: paused, at minimum + 10 and dwelt, resumes', reading: onBattery(0.4), settings: allowed, previous: pausedAt(0), now: 30_000, paused: false },
    { name: 'dwell: paused, back on the charger too soon, stays paused', reading: charging(0.5), settings: chargingOnly, previous: pausedAt(0), now: 29_999, paused: true, reason: /back on the charger at 50%, resuming shortly/ },
    { name: 'dwell: paused, on the charger after the dwell, resumes', reading: charging(0.5), settings: chargingOnly, previous: pausedAt(0), now: 30_000, paused: false },
  ];
  for (const row of table) {
    it(row.name, () => {
      const { state, verdict } = batteryPolicy(row.reading, row.settings, row.previous, row.now);
      expect(state.paused).toBe(row.paused);
      expect(verdict.factor).toBe(row.paused ? 0 : 1);
      if (row.reason) expect(verdict.reason).toMatch(row.reason);
      if (!row.paused) expect(verdict.reason).toBeNull();
    });
  }

  it('keeps the time a pause began while it lasts', () => {
    const first = batteryPolicy(onBattery(0.2), allowed, running, 1000);
    const later = batteryPolicy(onBattery(0.2), allowed, first.state, 5000);
    expect(later.state).toEqual({ paused: true, since: 1000 });
  });
});

describe('other programs\' load', () => {
  // A state says only that the device's utilisation is at least its floor; Dewgrid's own share comes off it.
  const table: { name: string; reading: PressureReading; own: number; others: number }[] = [
    { name: 'critical, Dewgrid using every core: nothing left for others', reading: { state: 'critical', ownContributionEstimate: null }, own: 1, others: 0 },
    { name: 'critical, Dewgrid at one core of two: others at least 0.32', reading: { state: 'critical', ownContributionEstimate: null }, own: 0.5, others: 0.32 },
    { name: 'critical, Dewgrid at a quarter of one core of two: others at least 0.695', reading: { state: 'critical', ownContributionEstimate: null }, own: 0.125, others: 0.695 },
    { name: 'fair, Dewgrid at half the device: nothing for others', reading: { state: 'fair', ownContributionEstimate: null }, own: 0.5, others: 0 },
    { name: 'nominal: nothing, whatever Dewgrid does', reading: { state: 'nominal', ownContributionEstimate: null }, own: 0, others: 0 },
    { name: 'the browser\'s own estimate wins where it gives one: serious, 40% of it this page', reading: { state: 'serious', ownContributionEstimate: 0.4 }, own: 1, others: 0.432 },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(othersFromPressure(row.reading, row.own)).toBeCloseTo(row.others, 6);
    });
  }

  it('the floors are Chromium\'s lowest bounds: randomised thresholds and 3 points of hysteresis', () => {
    expect(PRESSURE_FLOOR).toEqual({ nominal: 0, fair: 0.47, serious: 0.72, critical: 0.82 });
  });

  it('waits for a core: the share of busy time lost, times Dewgrid\'s busy share', () => {
    expect(othersFromWaits(1, 1 / 3)).toBeCloseTo(1 / 3, 6); // three busy threads on two cores, one of them another program's
    expect(othersFromWaits(0.5, 0)).toBe(0);
  });
});

describe('heatPolicy (thermal slowdown, by the core speed check)', () => {
  /** A window with one check of the unit at `speed` (1: 1 ms), at a limit (per mille) and number of tasks. */
  const window = (speed: number, level = 1000, together = 1): SpeedWindow => ({ level, together, checks: 1, checkMs: 1 / speed });
  const run = (windows: (SpeedWindow | null)[]) => {
    let state: HeatState = INITIAL_HEAT;
    return windows.map((w) => (state = heatPolicy(w, state)).hot);
  };

  it('four windows in a row under 75% of the best at the same limit: hot; recovery lifts it', () => {
    expect(run([1, 1, 1, 0.7, 0.7, 0.7, 0.7, 0.9, 1].map((s) => window(s)))).toEqual([false, false, false, false, false, false, true, false, false]);
  });

  it('slower by under a quarter is not heat', () => {
    expect(run(Array.from({ length: 20 }, (_, i) => window(i < 3 ? 1 : 0.78))).some((hot) => hot)).toBe(false);
  });

  it('the first windows only set the best (the unit not yet optimised): a slow start is not heat', () => {
    expect(run([0.2, 0.5, 1, 1, 1, 1].map((s) => window(s)))).toEqual([false, false, false, false, false, false]);
  });

  it('compares at the same limit and number of tasks only: a step down, or a second task, starts a new best', () => {
    expect(run([window(1), window(1), window(1), ...Array(6).fill(window(0.6, 750))])).toEqual(Array(9).fill(false));
    expect(run([window(1), window(1), window(1), ...Array(6).fill(window(0.6, 1000, 2))])).toEqual(Array(9).fill(false));
  });

  it('a window without a check (they come every 2 s) keeps the verdict; one with nothing computing ends it', () => {
    const noCheck: SpeedWindow = { level: 1000, together: 1, checks: 0, checkMs: 0 };
    expect(run([window(1), window(1), window(1), window(0.6), noCheck, window(0.6), window(0.6), noCheck, window(0.6), noCheck, null])).toEqual([
      false, false, false, false, false, false, false, false, true, true, false,
    ]);
  });
});

describe('ladderPolicy (step down, probe up)', () => {
  const settings = { dwellSeconds: 30 };
  const down: Pull = { kind: 'down', reason: 'other programs are busy' };
  const none: Pull = { kind: 'none' };
  /** Feeds one pull per second from t = 0; answers the factor after each. */
  const run = (pulls: Pull[], start = INITIAL_LADDER) => {
    let state = start;
    return pulls.map((pull, second) => {
      const step = ladderPolicy(pull, settings, state, second * 1000);
      state = step.state;
      return step.verdict.factor;
    });
  };

  it('a pull that holds two seconds steps down once, then waits for the signals to settle before the next; never below 25%', () => {
    expect(run(Array(12).fill(down))).toEqual([1, 1, 0.75, 0.75, 0.75, 0.75, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(run(Array(60).fill(down)).at(-1)).toBe(0.25);
  });

  it('a strong pull pauses at once, without stepping', () => {
    expect(run([{ kind: 'pause', reason: 'other programs are busy' }, { kind: 'pause', reason: 'other programs are busy' }, { kind: 'pause', reason: 'other programs are busy' }])).toEqual([1, 1, 0]);
  });

  it('probes back up one level per hold (the dwell) once nothing pulls', () => {
    const pulls = [...Array(3).fill(down), ...Array(70).fill(none)];
    const factors = run(pulls);
    expect(factors[2]).toBe(0.75);
    expect(factors.indexOf(1, 3)).toBe(32); // 30 s after the step down
  });

  it('a probe pulled straight back down doubles the hold: the level settles instead of flapping', () => {
    // Down at 2 s; up at 32 s; pulled from 33 s, down again at 37 s (confirmed, and 5 s after the
    // probe: the probe failed); the next probe waits 60 s.
    const pulls = [...Array(3).fill(down), ...Array(30).fill(none), ...Array(5).fill(down), ...Array(70).fill(none)];
    const factors = run(pulls);
    expect(factors.slice(31, 39)).toEqual([0.75, 1, 1, 1, 1, 1, 0.75, 0.75]);
    expect(factors.indexOf(1, 38)).toBe(37 + 60);
  });

  it('says why it holds where it is', () => {
    const step = ladderPolicy(down, settings, { ...INITIAL_LADDER, step: 2, reason: 'device hot (slowing down)', steppedAt: 0, holdMs: 30_000 }, 1000);
    expect(step.verdict).toEqual({ factor: 0.5, reason: 'other programs are busy' });
  });
});

describe('page policies', () => {
  it('visibility: hidden goes on (the default), slows to half, or pauses, as chosen', () => {
    expect(visibilityPolicy(false, { whenHidden: 'pause' })).toEqual({ factor: 1, reason: null });
    expect(visibilityPolicy(true, { whenHidden: 'run' })).toEqual({ factor: 1, reason: null });
    expect(DEFAULT_SETTINGS.whenHidden).toBe('run');
    expect(visibilityPolicy(true, { whenHidden: 'slow' })).toEqual({ factor: 0.5, reason: 'this page is hidden' });
    expect(visibilityPolicy(true, { whenHidden: 'pause' })).toEqual({ factor: 0, reason: 'this page is hidden (you chose to pause then)' });
    // The embed: the partner page's visibility, a rule the donor did not choose.
    expect(visibilityPolicy(true, { whenHidden: 'pause' }, true)).toEqual({ factor: 0, reason: 'the page around this card is hidden' });
  });

  it('in use: half for a few seconds after the last input, if wanted', () => {
    const on = { backOffWhileInUse: true };
    expect(inUsePolicy(null, on, 0).factor).toBe(1);
    expect(inUsePolicy(1000, on, 1000 + IN_USE_BACKOFF_MS - 1)).toEqual({ factor: 0.5, reason: 'you are using this page' });
    expect(inUsePolicy(1000, on, 1000 + IN_USE_BACKOFF_MS).factor).toBe(1);
    expect(inUsePolicy(1000, { backOffWhileInUse: false }, 1000).factor).toBe(1);
  });

  it('data saver: large modules are not fetched, if the donor respects it', () => {
    expect(fetchAllowance(false, { respectDataSaver: true })).toBe(Infinity);
    expect(fetchAllowance(true, { respectDataSaver: true })).toBe(2 ** 20);
    expect(fetchAllowance(true, { respectDataSaver: false })).toBe(Infinity);
  });
});

describe('decide (the governor)', () => {
  const table: { name: string; cpu: number; verdicts: { factor: number; reason: string | null }[]; state: string; decidedCpu: number; reason: string }[] = [
    { name: 'nothing objects: full speed', cpu: 1, verdicts: [{ factor: 1, reason: null }], state: 'running', decidedCpu: 1, reason: 'Running at full speed.' },
    { name: 'nothing objects: the donor\'s own limit', cpu: 0.6, verdicts: [], state: 'running', decidedCpu: 0.6, reason: 'Running at 60%, your limit.' },
    { name: 'the strictest factor wins, and is named', cpu: 1, verdicts: [{ factor: 0.75, reason: 'device warm' }, { factor: 0.5, reason: 'this page is hidden' }], state: 'throttled', decidedCpu: 0.5, reason: 'Running at 50%: this page is hidden.' },
    { name: 'a policy only lowers the donor\'s limit', cpu: 0.4, verdicts: [{ factor: 0.5, reason: 'device hot' }], state: 'throttled', decidedCpu: 0.2, reason: 'Running at 20%: device hot.' },
    { name: 'never below 10%', cpu: 0.1, verdicts: [{ factor: 0.5, reason: 'device hot' }], state: 'throttled', decidedCpu: 0.1, reason: 'Running at 10%: device hot.' },
    { name: 'any pause pauses, and says why', cpu: 1, verdicts: [{ factor: 0.5, reason: 'device hot' }, { factor: 0, reason: 'on battery at 28%' }], state: 'paused', decidedCpu: 1, reason: 'Paused: on battery at 28%.' },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(decide({ cpu: row.cpu }, row.verdicts)).toEqual({ state: row.state, cpu: row.decidedCpu, reason: row.reason });
    });
  }

  it('names whose limit it is when a host site set it', () => {
    expect(decide({ cpu: 0.5 }, [], "this site's limit").reason).toBe("Running at 50%, this site's limit.");
  });
});

describe('settings', () => {
  it('takes valid changes and names the bad value otherwise', () => {
    expect(updatedSettings(DEFAULT_SETTINGS, { cpu: 0.5, whenHidden: 'pause' }, 4)).toMatchObject({ cpu: 0.5, whenHidden: 'pause' });
    expect(() => updatedSettings(DEFAULT_SETTINGS, { cpu: 2 }, 4)).toThrow(/cpu must be a number from 0.1 to 1, got 2/);
    expect(() => updatedSettings(DEFAULT_SETTINGS, { workers: 5 }, 4)).toThrow(/workers must be a whole number from 1 to 4, got 5/);
    expect(() => updatedSettings(DEFAULT_SETTINGS, { minBatteryLevel: 1 }, 4)).toThrow(/minBatteryLevel/);
    expect(() => updatedSettings(DEFAULT_SETTINGS, { whenHidden: 'sleep' as 'pause' }, 4)).toThrow(/whenHidden must be "run", "slow" or "pause", got sleep/);
  });
});
