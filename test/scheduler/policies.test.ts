// Each scheduling policy is a pure function: tables of inputs and what it must answer, with the
// hysteresis edges (a minimum with a margin above it, a dwell time before any pause lifts).
import { describe, expect, it } from 'vitest';
import { batteryPolicy, type BatteryReading, type BatteryState } from '../../src/scheduler/policies/battery.ts';
import { heatPolicy, INITIAL_HEAT, INITIAL_SLOWDOWN, slowdownPolicy, type HeatState, type Pressure } from '../../src/scheduler/policies/heat.ts';
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

describe('heatPolicy', () => {
  const settings = { dwellSeconds: 10 };
  const at = (applied: Pressure, cooler: HeatState['cooler'] = null): HeatState => ({ applied, cooler });
  const table: { name: string; reading: Pressure | null; previous: HeatState; now: number; applied: Pressure; factor: number; reason: string | null }[] = [
    { name: 'no Compute Pressure API: no objection', reading: null, previous: INITIAL_HEAT, now: 0, applied: 'nominal', factor: 1, reason: null },
    { name: 'fair lowers to three quarters', reading: 'fair', previous: INITIAL_HEAT, now: 0, applied: 'fair', factor: 0.75, reason: 'device warm' },
    { name: 'serious halves', reading: 'serious', previous: INITIAL_HEAT, now: 0, applied: 'serious', factor: 0.5, reason: 'device hot' },
    { name: 'critical pauses', reading: 'critical', previous: at('fair'), now: 0, applied: 'critical', factor: 0, reason: 'device very hot' },
    { name: 'hysteresis: cooler, not yet held for the dwell, stays hot', reading: 'nominal', previous: at('critical', { state: 'nominal', since: 0 }), now: 9_999, applied: 'critical', factor: 0, reason: 'device very hot' },
    { name: 'hysteresis: cooler held for the dwell, applies', reading: 'nominal', previous: at('critical', { state: 'nominal', since: 0 }), now: 10_000, applied: 'nominal', factor: 1, reason: null },
    { name: 'hysteresis: a different cooler state restarts the dwell', reading: 'fair', previous: at('critical', { state: 'nominal', since: 0 }), now: 10_000, applied: 'critical', factor: 0, reason: 'device very hot' },
  ];
  for (const row of table) {
    it(row.name, () => {
      const { state, verdict } = heatPolicy(row.reading, settings, row.previous, row.now);
      expect(state.applied).toBe(row.applied);
      expect(verdict).toEqual({ factor: row.factor, reason: row.reason });
    });
  }

  it('slowdown: three samples in a row 20% below the best back off; recovery lifts it', () => {
    let state = INITIAL_SLOWDOWN;
    const factors: number[] = [];
    for (const rate of [100, 100, 79, 79, 79, 85, 81, 100]) {
      const step = slowdownPolicy(rate, state);
      state = step.state;
      factors.push(step.verdict.factor);
    }
    expect(factors).toEqual([1, 1, 1, 1, 0.75, 1, 1, 1]);
  });
});

describe('page policies', () => {
  it('visibility: hidden slows to half, or pauses, as chosen', () => {
    expect(visibilityPolicy(false, { whenHidden: 'pause' })).toEqual({ factor: 1, reason: null });
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
    expect(() => updatedSettings(DEFAULT_SETTINGS, { whenHidden: 'sleep' as 'pause' }, 4)).toThrow(/whenHidden must be "slow" or "pause", got sleep/);
  });
});
