/**
 * What the page can tell about the device and the donor, for the policies: battery (Battery
 * Status API), CPU pressure (Compute Pressure API, src/scheduler/policies/load.ts), whether this page is hidden, when the donor
 * last used it, and the data saver. Each is read where the browser has it and left neutral where
 * not; every change calls `onChange`.
 */
import type { BatteryReading } from './policies/battery.ts';
import type { Pressure, PressureReading } from './policies/load.ts';

export interface Signals {
  battery: BatteryReading;
  /**
   * The latest Compute Pressure record while it is current, else null: the browser sends records
   * only to a visible page with focus, so a hidden or unfocused page's last one says nothing of now.
   */
  pressure: PressureReading | null;
  /** Whether this browser gives the page Compute Pressure records at all. */
  pressureObserved: boolean;
  hidden: boolean;
  lastInputAt: number | null;
  saveData: boolean;
}

interface BatteryManager extends EventTarget {
  charging: boolean;
  level: number;
}
interface PressureRecord {
  state: Pressure;
  /** Chromium, behind a flag in later versions: this page's share of the utilisation, 0 to 1. */
  ownContributionEstimate?: number | null;
}
interface PressureObserverLike {
  observe(source: 'cpu', options?: { sampleInterval?: number }): Promise<void>;
  disconnect(): void;
}
type PressureObserverConstructor = new (callback: (records: PressureRecord[]) => void) => PressureObserverLike;
interface NetworkInformationLike extends EventTarget {
  saveData?: boolean;
}

const INPUT_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart'] as const;

export function watchSignals(onChange: () => void): { read(): Signals; stop(): void } {
  const signals: Signals = { battery: null, pressure: null, pressureObserved: false, hidden: document.visibilityState === 'hidden', lastInputAt: null, saveData: false };
  const stops: (() => void)[] = [];
  const listen = (target: EventTarget, type: string, handler: () => void, options?: AddEventListenerOptions) => {
    target.addEventListener(type, handler, options);
    stops.push(() => target.removeEventListener(type, handler, options));
  };

  const getBattery = (navigator as Navigator & { getBattery?: () => Promise<BatteryManager> }).getBattery;
  void getBattery?.call(navigator).then(
    (battery) => {
      const read = () => {
        signals.battery = { charging: battery.charging, level: battery.level };
        onChange();
      };
      read();
      listen(battery, 'chargingchange', read);
      listen(battery, 'levelchange', read);
    },
    () => undefined, // not allowed here (e.g. a permissions policy): no battery signal
  );

  const Observer = (globalThis as { PressureObserver?: PressureObserverConstructor }).PressureObserver;
  if (Observer) {
    const observer = new Observer((records) => {
      const last = records[records.length - 1];
      if (!last) return;
      const own = typeof last.ownContributionEstimate === 'number' && last.ownContributionEstimate >= 0 ? last.ownContributionEstimate : null;
      const changed = last.state !== signals.pressure?.state || own !== signals.pressure?.ownContributionEstimate;
      signals.pressure = { state: last.state, ownContributionEstimate: own };
      if (changed) onChange();
    });
    signals.pressureObserved = true;
    observer.observe('cpu', { sampleInterval: 1000 }).catch(() => {
      signals.pressureObserved = false; // not allowed here (a permissions policy), or no such source on this device
    });
    stops.push(() => observer.disconnect());
    // Records stop while the page is hidden or without focus: the last one is stale from then on.
    const forget = () => {
      signals.pressure = null;
      onChange();
    };
    listen(window, 'blur', forget);
  }

  listen(document, 'visibilitychange', () => {
    signals.hidden = document.visibilityState === 'hidden';
    if (signals.hidden) signals.pressure = null;
    onChange();
  });

  // Only the moment the donor starts using the page matters; the backoff's end is the governor's timer.
  const used = () => {
    const quiet = signals.lastInputAt === null || Date.now() - signals.lastInputAt > 1000;
    signals.lastInputAt = Date.now();
    if (quiet) onChange();
  };
  for (const type of INPUT_EVENTS) listen(document, type, used, { capture: true, passive: true });

  const connection = (navigator as Navigator & { connection?: NetworkInformationLike }).connection;
  if (connection) {
    const read = () => {
      signals.saveData = connection.saveData === true;
      onChange();
    };
    signals.saveData = connection.saveData === true;
    listen(connection, 'change', read);
  }

  return { read: () => ({ ...signals }), stop: () => stops.forEach((stop) => stop()) };
}
