/**
 * Heat, as Dewgrid sees it directly: a task's steady pace (probes per millisecond on a core of its
 * own, from the worker's accounting; waits for a core left out: that is other programs' load, see
 * load.ts) falling at the same CPU limit. A warm core runs slower, so the same work takes longer.
 * Three windows in a row more than 20% below the best pace that run showed at that limit, with as
 * many of Dewgrid's tasks computing at once, is "device hot (slowing down)". (A second task
 * starting beside the first slows both, heat or not: logical cores that are SMT siblings share one
 * core's execution units, and all cores share caches and memory. On the 2-core test machine
 * that was more than 20%, which read as heat before paces were compared this way.) The Compute
 * Pressure API is not a heat signal in Chromium: its states there are utilisation only.
 */
export interface PaceWindow {
  /** The run (a lease id): another program has another pace. */
  run: string;
  /** The CPU share it ran at, per mille: the pace is compared at the same limit only. */
  level: number;
  /** How many of Dewgrid's tasks computed in the window: the pace is compared at the same number only. */
  together: number;
  steadyWork: number;
  steadyBusyMs: number;
}

export interface HeatState {
  /** Best pace and how many windows were seen, per run and level. */
  best: ReadonlyMap<string, { pace: number; windows: number }>;
  slowWindows: number;
}

export const INITIAL_HEAT: HeatState = { best: new Map(), slowWindows: 0 };

const SLOW = 0.8;
const WINDOWS = 3;
/** Windows with less steady computing than this say too little. */
const MIN_STEADY_MS = 200;
/** A run's first windows (Wasm tiers up from a baseline compiler to an optimising one) only set its best. */
const WARM_UP_WINDOWS = 3;

/** @returns the state, and whether the device is hot (slowing down) by now */
export function heatPolicy(windows: readonly PaceWindow[], previous: HeatState): { state: HeatState; hot: boolean } {
  const best = new Map<string, { pace: number; windows: number }>();
  let slow = false;
  let measured = false;
  for (const w of windows) {
    const key = `${w.run}@${w.level}x${w.together}`;
    const before = previous.best.get(key) ?? { pace: 0, windows: 0 };
    if (w.steadyBusyMs < MIN_STEADY_MS || !(w.steadyWork > 0)) {
      best.set(key, before);
      continue;
    }
    measured = true;
    const pace = w.steadyWork / w.steadyBusyMs;
    if (before.windows >= WARM_UP_WINDOWS && pace < before.pace * SLOW) slow = true;
    best.set(key, { pace: Math.max(before.pace, pace), windows: before.windows + 1 });
  }
  // Keep what is known of runs at other limits (a probe back up compares with it), drop ended runs'.
  const running = new Set(windows.map((w) => w.run));
  for (const [key, value] of previous.best) if (!best.has(key) && running.has(key.slice(0, key.lastIndexOf('@')))) best.set(key, value);
  const slowWindows = !measured ? previous.slowWindows : slow ? previous.slowWindows + 1 : 0;
  // Nothing measured (paused, idle): no evidence either way, and nothing to act on.
  return { state: { best, slowWindows }, hot: measured && slowWindows >= WINDOWS };
}
