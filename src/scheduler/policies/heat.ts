/**
 * Heat, from the Compute Pressure API: "fair" lowers the limit to three quarters, "serious"
 * halves it, "critical" pauses. A hotter state applies at once; a cooler one only after it has
 * held for the dwell time, so the device is not heated again the moment it cools.
 *
 * Where the API is missing, heat shows as thermal slowdown: the same work taking longer. See
 * slowdownPolicy.
 */
import type { Settings } from './settings.ts';
import { NO_OBJECTION, type Verdict } from './verdict.ts';

export type Pressure = 'nominal' | 'fair' | 'serious' | 'critical';
const ORDER: Pressure[] = ['nominal', 'fair', 'serious', 'critical'];
const FACTOR: Record<Pressure, number> = { nominal: 1, fair: 0.75, serious: 0.5, critical: 0 };
const WORDS: Record<Pressure, string | null> = { nominal: null, fair: 'device warm', serious: 'device hot', critical: 'device very hot' };

export interface HeatState {
  /** The state the policy acts on. */
  applied: Pressure;
  /** A cooler state seen, and since when: it applies once it has held for the dwell time. */
  cooler: { state: Pressure; since: number } | null;
}

export const INITIAL_HEAT: HeatState = { applied: 'nominal', cooler: null };

/** @param reading the latest pressure record's state, or null where the API is missing */
export function heatPolicy(reading: Pressure | null, settings: Pick<Settings, 'dwellSeconds'>, previous: HeatState, now: number): { state: HeatState; verdict: Verdict } {
  const observed = reading ?? 'nominal';
  let state: HeatState;
  if (ORDER.indexOf(observed) >= ORDER.indexOf(previous.applied)) {
    state = { applied: observed, cooler: null };
  } else {
    const since = previous.cooler?.state === observed ? previous.cooler.since : now;
    state = now - since >= settings.dwellSeconds * 1000 ? { applied: observed, cooler: null } : { applied: previous.applied, cooler: { state: observed, since } };
  }
  const words = WORDS[state.applied];
  return { state, verdict: words ? { factor: FACTOR[state.applied], reason: words } : NO_OBJECTION };
}

/**
 * Thermal slowdown without the Compute Pressure API: the work counter's rate (probes per ms of
 * computing) against the best this task has shown. Three samples in a row more than 20% below the
 * best back the limit off to three quarters, until the rate recovers.
 */
export interface SlowdownState {
  bestRate: number;
  lowSamples: number;
}

export const INITIAL_SLOWDOWN: SlowdownState = { bestRate: 0, lowSamples: 0 };
const SLOW = 0.8;
const SAMPLES = 3;

/** @param rate work per busy ms over the last sample, or null when nothing ran */
export function slowdownPolicy(rate: number | null, previous: SlowdownState): { state: SlowdownState; verdict: Verdict } {
  if (rate === null || !(rate > 0)) return { state: previous, verdict: previous.lowSamples >= SAMPLES ? slowdownVerdict : NO_OBJECTION };
  const bestRate = Math.max(previous.bestRate, rate);
  const lowSamples = rate < bestRate * SLOW ? previous.lowSamples + 1 : 0;
  return { state: { bestRate, lowSamples }, verdict: lowSamples >= SAMPLES ? slowdownVerdict : NO_OBJECTION };
}

const slowdownVerdict: Verdict = { factor: 0.75, reason: 'device slowing down, likely warm' };
