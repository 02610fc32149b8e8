/**
 * Other programs' load, told apart from Dewgrid's own (docs/scheduling.md, "Own load"). Two
 * signals, each a lower bound on the share of the device's CPU that programs other than Dewgrid use:
 *
 * - Compute Pressure. Chromium's `cpu` state is the whole device's utilisation bucketed (nominal
 *   up to 0.6, fair to 0.75, serious to 0.9, critical above; for a few minutes at a time the
 *   bounds move to 0.5/0.8/0.85 against fingerprinting, and a state is held until utilisation drops
 *   3 points below its bound), so a state only says the utilisation is at least its floor below.
 *   Dewgrid's own share is taken off that floor: the browser's `ownContributionEstimate` where it
 *   gives one (the share of the utilisation this page's process caused), else the workers' own
 *   accounting (their computing time over the window, over all cores; the most of the last few
 *   windows, as a record describes the second before it arrived). A state is "other programs are
 *   busy" only by what is left.
 * - Waits. A task's worker that was taken off its core between two yields shows it as an interval
 *   far slower than its steady pace (worker/duty-cycle.ts); the share of its computing time lost
 *   so, times Dewgrid's busy share, is CPU other programs held on Dewgrid's own cores. This needs
 *   no API and works while the page is hidden.
 */
export type Pressure = 'nominal' | 'fair' | 'serious' | 'critical';

export interface PressureReading {
  state: Pressure;
  /** The browser's estimate of this page's share of the utilisation (0 to 1), or null where it gives none. */
  ownContributionEstimate: number | null;
}

/** The least whole-device utilisation each state can stand for in Chromium (randomised bounds and hysteresis included). */
export const PRESSURE_FLOOR: Record<Pressure, number> = { nominal: 0, fair: 0.47, serious: 0.72, critical: 0.82 };

/** Others at this share of the device, or more: Dewgrid steps down. */
export const OTHERS_BUSY = 0.25;
/** Others at this share of the device, or more, by Compute Pressure: Dewgrid pauses (waits only step it down: a step down relieves them). */
export const OTHERS_VERY_BUSY = 0.5;

/** How load is being judged, for the settings panel's details. */
export type LoadMethod = 'estimate' | 'accounting' | 'waits';

/**
 * The least share of the device other programs use, by the pressure state.
 * @param ownShare Dewgrid's own share of the device over the time the record covers (the most of the last few windows)
 */
export function othersFromPressure(reading: PressureReading, ownShare: number): number {
  const floor = PRESSURE_FLOOR[reading.state];
  const own = reading.ownContributionEstimate;
  if (own !== null && own >= 0 && own <= 1) return floor * (1 - own);
  return Math.max(0, floor - ownShare);
}

/**
 * The least share of the device other programs held on Dewgrid's cores, by the waits.
 * @param busyShare Dewgrid's computing time over the window, as a share of all the device's cores
 * @param waited the share of that computing time the workers spent waiting for a core
 */
export function othersFromWaits(busyShare: number, waited: number): number {
  return Math.max(0, waited) * busyShare;
}
