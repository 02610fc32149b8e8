// The governor (src/scheduler/governor.ts): signals and the runs' own accounting in, one decision
// out, second by second. The scenarios of issue #17: Dewgrid's own load never reads as heat or as
// other programs; other programs' load (seen by Compute Pressure beyond Dewgrid's share, or by the
// workers' waits for a core) steps it down or pauses it; a slowing core steps it down; and it
// settles at a level rather than pausing and restarting at full speed.
import { describe, expect, it } from 'vitest';
import { Governor, type RunReading } from '../../src/scheduler/governor.ts';
import { DEFAULT_SETTINGS, type Settings } from '../../src/scheduler/policies/settings.ts';
import type { Signals } from '../../src/scheduler/signals.ts';
import type { Pressure } from '../../src/scheduler/policies/load.ts';
import type { RunProgress } from '../../src/protocol/throttle.ts';
import { accountComputing } from '../helpers/scheduler-fakes.ts';

const CORES = 2;
const quiet: Signals = { battery: { charging: true, level: 1 }, pressure: null, pressureObserved: true, hidden: false, lastInputAt: null, saveData: false };

/**
 * A run's accounting, moved on second by second: its busy share of a core, the part of it spent
 * waiting, its pace, and the core's speed (1: as fast as it gets; the speed check's unit takes
 * 1 / speed ms, and is run every 2 s of computing).
 */
class Run {
  progress: RunProgress = { work: 0, busyMs: 0, napMs: 0, pausedMs: 0, steadyWork: 0, steadyBusyMs: 0, speedChecks: 0, speedCheckMs: 0 };
  constructor(readonly run: string) {}
  second(duty: number, { waited = 0, pace = 100, speed = 1 }: { waited?: number; pace?: number; speed?: number } = {}): void {
    const busyMs = 1000 * duty;
    this.progress = accountComputing(this.progress, { busyMs, waitedMs: busyMs * waited, pace, unitMs: 1 / speed });
  }
  reading(): RunReading {
    return { run: this.run, progress: { ...this.progress } };
  }
}

/**
 * Runs the governor for `seconds`: each second every run computes at the duty the last decision
 * allows (times what `world` says), then the governor decides. Answers the decisions, one per second.
 */
function simulate(options: {
  seconds: number;
  runs: Run[];
  settings?: Partial<Settings>;
  pressure?: (second: number, ownShare: number) => Pressure | null;
  world?: (second: number) => { waited?: number; pace?: number; speed?: number };
  signals?: Partial<Signals>;
}) {
  const settings = { ...DEFAULT_SETTINGS, workers: options.runs.length, ...options.settings };
  const governor = new Governor(settings);
  let decision = governor.current();
  const decisions = [];
  const t0 = 1_000_000;
  for (let second = 0; second < options.seconds; second++) {
    const duty = decision.state === 'paused' ? 0 : decision.cpu;
    for (const run of options.runs) run.second(duty, options.world?.(second));
    const ownShare = (duty * options.runs.length) / CORES;
    const state = options.pressure?.(second, ownShare) ?? null;
    decision = governor.evaluate(t0 + second * 1000, {
      settings,
      signals: { ...quiet, ...options.signals, pressure: state ? { state, ownContributionEstimate: null } : null },
      runs: options.runs.map((r) => r.reading()),
      cores: CORES,
    });
    decisions.push({ ...decision, details: governor.details({ ...quiet, pressure: state ? { state, ownContributionEstimate: null } : null }) });
  }
  return decisions;
}

/** Chromium's bucketing of a utilisation (base thresholds). */
function bucket(utilisation: number): Pressure {
  return utilisation > 0.9 ? 'critical' : utilisation > 0.75 ? 'serious' : utilisation > 0.6 ? 'fair' : 'nominal';
}

describe('Governor', () => {
  it('Dewgrid alone on every core reads "critical", and runs on at full speed: its own load is not heat', () => {
    const decisions = simulate({ seconds: 90, runs: [new Run('a'), new Run('b')], pressure: (_, own) => bucket(own + 0.03) });
    expect(decisions.every((d) => d.state === 'running' && d.cpu === 1)).toBe(true);
    expect(decisions.at(-1)!.reason).toBe('Running at full speed.');
    expect(decisions.at(-1)!.details).toMatchObject({ method: 'accounting', othersShare: 0 });
  });

  it('one worker of two, the rest of the device idle: full speed', () => {
    const decisions = simulate({ seconds: 60, runs: [new Run('a')], pressure: (_, own) => bucket(own + 0.05) });
    expect(decisions.every((d) => d.state === 'running')).toBe(true);
  });

  it('"critical" while Dewgrid runs at a low limit is other programs: it pauses, and says so', () => {
    const decisions = simulate({ seconds: 10, runs: [new Run('a')], settings: { cpu: 0.25 }, pressure: () => 'critical' });
    expect(decisions.at(-1)).toMatchObject({ state: 'paused', reason: 'Paused: other programs are busy.' });
    expect(decisions.findIndex((d) => d.state === 'paused')).toBeLessThanOrEqual(4);
  });

  it('another program on one core of two, seen by pressure: Dewgrid (one worker) steps down and settles, the level shown', () => {
    // The other program holds half the device; Dewgrid's one worker the share it is allowed.
    const decisions = simulate({ seconds: 120, runs: [new Run('a')], pressure: (_, own) => bucket(0.5 + own) });
    const last = decisions.at(-1)!;
    expect(last.state).toBe('throttled');
    expect(last.reason).toMatch(/^Running at (75|50|25)%: other programs are busy\.$/);
    // No pause along the way, and no restart at full speed once stepped down.
    expect(decisions.some((d) => d.state === 'paused')).toBe(false);
  });

  it('another program on Dewgrid\'s own cores, seen by the waits (no pressure API, or a hidden page): steps down', () => {
    // Three busy threads on two cores: each of Dewgrid's two waits a third of its time.
    const decisions = simulate({ seconds: 20, runs: [new Run('a'), new Run('b')], world: () => ({ waited: 1 / 3 }) });
    expect(decisions.at(-1)!.reason).toMatch(/^Running at (75|50)%: other programs are busy\.$/);
    expect(decisions.at(-1)!.details.method).toBe('waits');
  });

  it('waits alone step down to half at most, never pause (two Dewgrid pages on one machine share it, not stall)', () => {
    // Twice as many busy threads as cores: every worker waits half its time, however far it steps down.
    const decisions = simulate({ seconds: 60, runs: [new Run('a'), new Run('b')], world: () => ({ waited: 0.5 }) });
    expect(decisions.some((d) => d.state === 'paused' || d.cpu < 0.5)).toBe(false);
    expect(decisions.at(-1)!.reason).toBe('Running at 50%: other programs are busy.');
  });

  it('a little waiting (the browser\'s own threads) is not other programs', () => {
    const decisions = simulate({ seconds: 30, runs: [new Run('a'), new Run('b')], world: () => ({ waited: 0.05 }) });
    expect(decisions.every((d) => d.state === 'running')).toBe(true);
  });

  it('the donor can turn the back-off for other programs off', () => {
    const decisions = simulate({ seconds: 10, runs: [new Run('a')], settings: { cpu: 0.25, backOffForOtherPrograms: false }, pressure: () => 'critical' });
    expect(decisions.every((d) => d.state === 'running')).toBe(true);
  });

  it('a core that slows down at the same limit is heat: one step down, said as "device hot (slowing down)"', () => {
    const decisions = simulate({ seconds: 20, runs: [new Run('a')], world: (s) => ({ pace: s < 8 ? 100 : 70, speed: s < 8 ? 1 : 0.7 }) });
    const first = decisions.findIndex((d) => d.state !== 'running');
    expect(decisions[first]).toMatchObject({ state: 'throttled', cpu: 0.75, reason: 'Running at 75%: device hot (slowing down).' });
    expect(first).toBeLessThanOrEqual(8 + 6);
  });

  it('a program that changes pace by itself is not heat while the core keeps its speed (the false alarm of issue #17\'s CI run)', () => {
    // A fractal tile: points that escape at once, then points that never do, then a mix, each for seconds.
    const decisions = simulate({ seconds: 60, runs: [new Run('a')], world: (s) => ({ pace: [100, 30, 60, 25][Math.floor(s / 10) % 4]!, speed: 1 }) });
    expect(decisions.map((d) => d.reason)).toEqual(decisions.map(() => 'Running at full speed.'));
  });

  it('a little slower is not hot: a core some 20% below its best (turbo easing off, a noisy neighbour) runs on', () => {
    const decisions = simulate({ seconds: 60, runs: [new Run('a')], world: (s) => ({ speed: s < 8 ? 1 : 0.8 }) });
    expect(decisions.every((d) => d.state === 'running' && d.cpu === 1)).toBe(true);
  });

  it('a second task starting beside the first is not heat: cores that share resources (SMT siblings, caches, memory) run each task slower', () => {
    const governor = new Governor(DEFAULT_SETTINGS);
    const settings = { ...DEFAULT_SETTINGS, workers: 2 };
    const a = new Run('a');
    const b = new Run('b');
    const decisions = [];
    for (let second = 0; second < 30; second++) {
      const together = second >= 8;
      a.second(1, { pace: together ? 65 : 100, speed: together ? 0.65 : 1 });
      if (together) b.second(1, { pace: 65, speed: 0.65 });
      const runs = together ? [a.reading(), b.reading()] : [a.reading()];
      decisions.push(governor.evaluate(1_000_000 + second * 1000, { settings, signals: quiet, runs, cores: CORES }));
    }
    expect(decisions.map((d) => d.reason)).toEqual(decisions.map(() => 'Running at full speed.'));
  });

  it('heat that passes: probes back up after the dwell, to full speed', () => {
    const decisions = simulate({ seconds: 80, runs: [new Run('a')], settings: { dwellSeconds: 20 }, world: (s) => ({ speed: s >= 8 && s < 18 ? 0.7 : 1 }) });
    expect(decisions.some((d) => d.reason === 'Running at 75%: device hot (slowing down).')).toBe(true);
    expect(decisions.at(-1)!.reason).toBe('Running at full speed.');
  });

  it('waits are not heat: a core taken by another program does not slow the steady pace', () => {
    const decisions = simulate({ seconds: 20, runs: [new Run('a'), new Run('b')], settings: { backOffForOtherPrograms: false }, world: () => ({ waited: 0.4 }) });
    expect(decisions.every((d) => d.state === 'running')).toBe(true);
  });

  it('where the workers\' accounting cannot be read (no isolation): busy workers times their duty', () => {
    const governor = new Governor(DEFAULT_SETTINGS);
    const settings = { ...DEFAULT_SETTINGS, workers: 2 };
    const runs = [{ run: 'a', progress: null }, { run: 'b', progress: null }];
    for (let s = 0; s < 10; s++) governor.evaluate(s * 1000, { settings, signals: { ...quiet, pressure: { state: 'critical', ownContributionEstimate: null } }, runs, cores: 2 });
    expect(governor.current().state).toBe('running');
    expect(governor.details({ ...quiet, pressure: { state: 'critical', ownContributionEstimate: null } })).toMatchObject({ ownShare: 1, othersShare: 0 });
  });

  it('the browser\'s ownContributionEstimate, where it gives one, is the method in force', () => {
    const governor = new Governor(DEFAULT_SETTINGS);
    const signals: Signals = { ...quiet, pressure: { state: 'critical', ownContributionEstimate: 0.95 } };
    for (let s = 0; s < 10; s++) governor.evaluate(s * 1000, { settings: DEFAULT_SETTINGS, signals, runs: [], cores: 2 });
    expect(governor.current().state).toBe('running');
    expect(governor.details(signals).method).toBe('estimate');
  });
});
