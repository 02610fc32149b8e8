/** The donor's own rules for when and how hard this device computes. Kept in IndexedDB. */
export interface Settings {
  /** Share of each worker's core a task may use, 0.1 to 1. */
  cpu: number;
  /** Tasks at once, 1 to the processors the browser reports (src/scheduler/processors.ts). */
  workers: number;
  /** Compute while the device runs on its battery. */
  runOnBattery: boolean;
  /** On battery, stop below this charge (0 to 1); start again only 10 points above it. */
  minBatteryLevel: number;
  /**
   * When this page is hidden: go on at the limit (the default: like BOINC, Dewgrid computes while
   * the donor works elsewhere, and steps down when other programs are busy), at half of it, or pause.
   */
  whenHidden: 'run' | 'slow' | 'pause';
  /** Back off for a few seconds while the donor types or moves the pointer on the page. */
  backOffWhileInUse: boolean;
  /** Step down, or pause, while other programs keep the device busy (docs/scheduling.md, "Own load"). */
  backOffForOtherPrograms: boolean;
  /** While charging and there is work: keep the screen on (Screen Wake Lock), dim and mostly black, so a phone donates its nights. */
  keepScreenOnWhileCharging: boolean;
  /** With the browser's data saver on, fetch no large modules. */
  respectDataSaver: boolean;
  /** The least time a pause lasts before the same condition may lift it, seconds: nothing flaps. */
  dwellSeconds: number;
}

export const DEFAULT_SETTINGS: Settings = {
  cpu: 1,
  workers: 1,
  runOnBattery: false,
  minBatteryLevel: 0.3,
  whenHidden: 'run',
  backOffWhileInUse: true,
  backOffForOtherPrograms: true,
  keepScreenOnWhileCharging: false,
  respectDataSaver: true,
  dwellSeconds: 30,
};

/**
 * The settings with `change` applied, or a RangeError naming the bad value (nothing changes then).
 * @param maxWorkers the processors the browser reports
 */
export function updatedSettings(current: Settings, change: Partial<Settings>, maxWorkers: number): Settings {
  const next = { ...current, ...change };
  const bad = (name: string, rule: string) => new RangeError(`${name} must be ${rule}, got ${String((change as Record<string, unknown>)[name])}`);
  if (typeof next.cpu !== 'number' || !(next.cpu >= 0.1 && next.cpu <= 1)) throw bad('cpu', 'a number from 0.1 to 1');
  if (!Number.isInteger(next.workers) || next.workers < 1 || next.workers > maxWorkers) throw bad('workers', `a whole number from 1 to ${maxWorkers}`);
  if (typeof next.runOnBattery !== 'boolean') throw bad('runOnBattery', 'true or false');
  if (typeof next.minBatteryLevel !== 'number' || !(next.minBatteryLevel >= 0 && next.minBatteryLevel <= 0.9)) throw bad('minBatteryLevel', 'a number from 0 to 0.9');
  if (next.whenHidden !== 'run' && next.whenHidden !== 'slow' && next.whenHidden !== 'pause') throw bad('whenHidden', '"run", "slow" or "pause"');
  if (typeof next.backOffWhileInUse !== 'boolean') throw bad('backOffWhileInUse', 'true or false');
  if (typeof next.backOffForOtherPrograms !== 'boolean') throw bad('backOffForOtherPrograms', 'true or false');
  if (typeof next.keepScreenOnWhileCharging !== 'boolean') throw bad('keepScreenOnWhileCharging', 'true or false');
  if (typeof next.respectDataSaver !== 'boolean') throw bad('respectDataSaver', 'true or false');
  if (typeof next.dwellSeconds !== 'number' || !(next.dwellSeconds >= 0 && next.dwellSeconds <= 3600)) throw bad('dwellSeconds', 'a number of seconds from 0 to 3600');
  return next;
}
