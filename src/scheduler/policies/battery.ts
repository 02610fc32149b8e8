/**
 * Battery: off the charger, compute only if the donor allowed it, and only down to their minimum
 * charge. Hysteresis: below the minimum it stops at once; it starts again only at 10 points above
 * the minimum (or on the charger), and only once the pause has lasted the dwell time.
 */
import type { Settings } from './settings.ts';
import { NO_OBJECTION, type Verdict } from './verdict.ts';

/** The Battery Status API's view, or null where the browser has no such API (then: no objection). */
export type BatteryReading = { charging: boolean; level: number } | null;

export interface BatteryState {
  paused: boolean;
  /** When the current pause began, ms. */
  since: number;
}

export const BATTERY_RESUME_MARGIN = 0.1;

export function batteryPolicy(
  reading: BatteryReading,
  settings: Pick<Settings, 'runOnBattery' | 'minBatteryLevel' | 'dwellSeconds'>,
  previous: BatteryState,
  now: number,
): { state: BatteryState; verdict: Verdict } {
  const percent = reading ? `${Math.round(reading.level * 100)}%` : '';
  let stop: string | null = null;
  let lift = true; // whether, if paused, the condition that paused it is gone
  if (reading && !reading.charging) {
    if (!settings.runOnBattery) {
      stop = `on battery at ${percent} (you chose to compute only while charging)`;
      lift = false;
    } else if (reading.level < settings.minBatteryLevel) {
      stop = `on battery at ${percent}, below your minimum of ${Math.round(settings.minBatteryLevel * 100)}%`;
      lift = false;
    } else if (reading.level < settings.minBatteryLevel + BATTERY_RESUME_MARGIN) {
      // Between the minimum and the margin above it: stay as we were.
      lift = !previous.paused;
      if (previous.paused) stop = `on battery at ${percent}, waiting to reach ${Math.round((settings.minBatteryLevel + BATTERY_RESUME_MARGIN) * 100)}%`;
    }
  }
  if (stop && !previous.paused) return { state: { paused: true, since: now }, verdict: { factor: 0, reason: stop } };
  if (previous.paused) {
    const dwelt = now - previous.since >= settings.dwellSeconds * 1000;
    if (lift && dwelt) return { state: { paused: false, since: now }, verdict: NO_OBJECTION };
    return { state: previous, verdict: { factor: 0, reason: stop ?? (reading ? `back on the charger at ${percent}, resuming shortly` : 'resuming shortly') } };
  }
  return { state: previous, verdict: NO_OBJECTION };
}
