/**
 * The governor: signals and policies in, one decision out (docs/scheduling.md). It keeps the
 * policies' states (hysteresis, dwell, the step ladder) and the windows of the running tasks' own
 * accounting it needs to tell Dewgrid's load from the device's. It starts nothing and owns no
 * timer: the controller asks it again once a second and on every change of a signal.
 */
import type { RunProgress } from '../protocol/throttle.ts';
import type { Settings } from './policies/settings.ts';
import type { Signals } from './signals.ts';
import { batteryPolicy, type BatteryState } from './policies/battery.ts';
import { inUsePolicy, visibilityPolicy } from './policies/page.ts';
import { heatPolicy, INITIAL_HEAT, type HeatState } from './policies/heat.ts';
import { INITIAL_LADDER, ladderPolicy, type LadderState, type Pull } from './policies/ladder.ts';
import { OTHERS_BUSY, OTHERS_VERY_BUSY, othersFromPressure, othersFromWaits, type LoadMethod } from './policies/load.ts';
import { decide, type Decision } from './policies/governor.ts';

export type { Decision };

/** A run under way: its id (the lease's) and the worker's accounting so far (null where the page cannot read it). */
export interface RunReading {
  run: string;
  progress: RunProgress | null;
}

/** What the settings panel's details show of how load is judged, and the latest figures. */
export interface LoadDetails {
  method: LoadMethod;
  /** Whether the browser gives Compute Pressure records at all (while visible and focused). */
  pressureObserved: boolean;
  /** Dewgrid's share of the device's CPU over the last window (0 to 1). */
  ownShare: number;
  /** The least share other programs used, by the signal in force (0 to 1): the larger of the two below. */
  othersShare: number;
  /** By Compute Pressure less Dewgrid's own share (0 where there is no current record). */
  othersByPressure: number;
  /** By the workers' waits for a core. */
  othersByWaits: number;
  /** The core's speed on the check's fixed unit, as a share of the best at this limit (heat), or null before a check. */
  coreSpeed: number | null;
}

export interface GovernorContext {
  settings: Settings;
  signals: Signals;
  runs: readonly RunReading[];
  /** The device's logical cores. */
  cores: number;
  /** The host's rule on a hidden page (the embed's partner), not the donor's. */
  hostHiddenRule?: boolean;
  /** Whose limit the settings' CPU share is, for the words. */
  limitName?: string;
}

/** Windows shorter than this (an evaluation on a signal, between ticks) reuse the last load figures. */
const MIN_WINDOW_MS = 800;
/** A pressure record describes the second before it arrived: Dewgrid's own share is the most of the windows this long back. */
const OWN_SHARE_MEMORY_MS = 3500;

interface Window {
  at: number;
  ownShare: number;
  waited: number | null;
}

export class Governor {
  private battery: BatteryState = { paused: false, since: 0 };
  private heat: HeatState = INITIAL_HEAT;
  private ladder: LadderState = INITIAL_LADDER;
  private decision: Decision;
  /** Each run's accounting at the last window's end. */
  private lastReadings = new Map<string, RunProgress | null>();
  private lastWindowAt: number | null = null;
  private windows: Window[] = [];
  private others = { byPressure: 0, byWaits: 0 };

  constructor(settings: Pick<Settings, 'cpu'>) {
    this.decision = decide(settings, []);
  }

  current(): Decision {
    return { ...this.decision };
  }

  details(signals: Signals): LoadDetails {
    const method: LoadMethod = signals.pressure ? (signals.pressure.ownContributionEstimate !== null ? 'estimate' : 'accounting') : 'waits';
    const { byPressure, byWaits } = this.others;
    return { method, pressureObserved: signals.pressureObserved, ownShare: this.windows.at(-1)?.ownShare ?? 0, othersShare: Math.max(byPressure, byWaits), othersByPressure: byPressure, othersByWaits: byWaits, coreSpeed: this.heat.relativeSpeed };
  }

  /** Decides again; `now` is epoch ms. */
  evaluate(now: number, context: GovernorContext): Decision {
    const { settings, signals } = context;
    const battery = batteryPolicy(signals.battery, settings, this.battery, now);
    this.battery = battery.state;
    const pull = this.device(now, context);
    const ladder = ladderPolicy(pull, settings, this.ladder, now);
    this.ladder = ladder.state;
    this.decision = decide(
      settings,
      [battery.verdict, ladder.verdict, visibilityPolicy(signals.hidden, settings, context.hostHiddenRule), inUsePolicy(signals.lastInputAt, settings, now)],
      context.limitName,
    );
    return this.current();
  }

  /** What heat and other programs ask of the ladder now, from a new window of the runs' accounting. */
  private device(now: number, context: GovernorContext): Pull {
    const window = this.measure(now, context);
    if (window) {
      this.windows = [...this.windows.filter((w) => now - w.at < OWN_SHARE_MEMORY_MS), window];
    }
    const latest = this.windows.at(-1);
    const ownMax = Math.max(0, ...this.windows.map((w) => w.ownShare));
    const pressure = context.signals.pressure;
    // Pressure sees programs on the cores Dewgrid leaves free too; waits, only those on its own,
    // which a step down relieves: only the first can pause, or go below half.
    const byPressure = pressure ? othersFromPressure(pressure, ownMax) : 0;
    const byWaits = latest?.waited != null ? othersFromWaits(latest.ownShare, latest.waited) : 0;
    this.others = { byPressure, byWaits };
    const back = context.settings.backOffForOtherPrograms;
    if (back && byPressure >= OTHERS_VERY_BUSY) return { kind: 'pause', reason: 'other programs are busy' };
    if (this.heat.hot) return { kind: 'down', reason: 'device hot (slowing down)' };
    if (back && byPressure >= OTHERS_BUSY) return { kind: 'down', reason: 'other programs are busy' };
    // Waits alone: down to half the limit at most. Below that Dewgrid's threads no longer crowd a
    // core each (the scheduler favours a thread that naps), and two Dewgrid pages on one machine
    // share it at half each rather than starving each other.
    if (back && byWaits >= OTHERS_BUSY) return { kind: 'down', reason: 'other programs are busy', lowest: 0.5 };
    return { kind: 'none' };
  }

  /**
   * A window of Dewgrid's own computing since the last one: its share of the device, the share of
   * its computing time spent waiting for a core, and the core speed checks in it (for heat). Null when
   * the last window ended too recently to say anything new.
   */
  private measure(now: number, context: GovernorContext): Window | null {
    const last = this.lastWindowAt;
    if (last !== null && now - last < MIN_WINDOW_MS) return null;
    const readings = new Map(context.runs.map((r) => [r.run, r.progress]));
    this.lastWindowAt = now;
    const previous = this.lastReadings;
    this.lastReadings = readings;
    if (last === null) return null;
    const windowMs = now - last;
    const level = Math.round(this.decision.cpu * 1000);
    let busy = 0;
    let steadyBusy = 0;
    let measured = false;
    let checks = 0;
    let checkMs = 0;
    // Dewgrid's tasks computing in this window: those whose accounting moved, and those it cannot read.
    const together = [...readings].filter(([run, progress]) => (progress ? progress.busyMs > (previous.get(run)?.busyMs ?? Infinity) : this.decision.state !== 'paused')).length;
    for (const [run, progress] of readings) {
      const before = previous.get(run);
      if (!progress || !before) {
        // Unmeasurable here (a page that cannot share memory with its workers): busy workers times their duty.
        if (!progress && this.decision.state !== 'paused') busy += this.decision.cpu * windowMs;
        continue;
      }
      measured = true;
      const dBusy = Math.max(0, progress.busyMs - before.busyMs);
      const dSteadyBusy = Math.max(0, progress.steadyBusyMs - before.steadyBusyMs);
      busy += dBusy;
      steadyBusy += Math.min(dBusy, dSteadyBusy);
      checks += Math.max(0, progress.speedChecks - before.speedChecks);
      checkMs += Math.max(0, progress.speedCheckMs - before.speedCheckMs);
    }
    this.heat = heatPolicy(together > 0 ? { level, together, checks, checkMs } : null, this.heat);
    const ownShare = Math.min(1, busy / windowMs / Math.max(1, context.cores));
    const waited = measured && busy > 0 ? Math.max(0, 1 - steadyBusy / busy) : null;
    return { at: now, ownShare, waited };
  }
}
