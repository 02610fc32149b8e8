/**
 * Heat, as Dewgrid sees it directly: the core running the same fixed unit of work more slowly
 * (worker/core-speed.ts, checked by every busy worker every 2 s). A warm core is clocked down, so
 * the same work takes longer. Four windows with checks in a row at under 75% of the best speed seen
 * at the same CPU limit, with as many of Dewgrid's tasks computing at once, is "device hot
 * (slowing down)".
 *
 * Why not the task's own pace (probes per busy ms), as before: a program changes pace by itself
 * from one phase to the next, by far more than 25% (a fractal tile from points that escape at
 * once to points that never do), and that read as heat with only Dewgrid on the machine. Why the
 * same limit: a core that computes a quarter of the time may be clocked lower for it. Why the same
 * number of tasks: a second task beside the first slows both, heat or not (logical cores that are
 * SMT siblings share one core's execution units; all share caches and memory). The Compute Pressure
 * API is no heat signal in Chromium: its states there are utilisation only (load.ts).
 */

/** The speed checks of one window, summed over the busy workers. */
export interface SpeedWindow {
  /** The CPU share the tasks ran at, per mille: speeds are compared at the same limit only. */
  level: number;
  /** How many of Dewgrid's tasks computed in the window: speeds are compared at the same number only. */
  together: number;
  /** Speed checks in the window, and their total time, ms (each the time of one unit of work). */
  checks: number;
  checkMs: number;
}

export interface HeatState {
  /** The best speed (units per ms) and how many windows of checks were seen, per level and number of tasks. */
  best: ReadonlyMap<string, { speed: number; windows: number }>;
  /** Windows with checks in a row at under SLOW of the best. */
  slowWindows: number;
  hot: boolean;
  /** The latest checks' speed as a share of the best at their level and number of tasks, or null before any. */
  relativeSpeed: number | null;
}

export const INITIAL_HEAT: HeatState = { best: new Map(), slowWindows: 0, hot: false, relativeSpeed: null };

const SLOW = 0.75;
const WINDOWS = 4;
/**
 * Windows with checks at a level and number of tasks before it is judged: the first checks of a
 * worker run before the JavaScript engine has optimised the unit.
 */
const WARM_UP_WINDOWS = 2;

/**
 * @param window this window's checks, or null when no task computed in it (paused, idle)
 * @returns the state; `state.hot` says whether the device is hot (slowing down) by now
 */
export function heatPolicy(window: SpeedWindow | null, previous: HeatState): HeatState {
  // Nothing computing: no evidence either way, and nothing to act on.
  if (!window || window.together === 0) return { ...previous, slowWindows: 0, hot: false };
  // Computing, but no check fell in this window (they come every 2 s): the verdict holds.
  if (!(window.checks > 0) || !(window.checkMs > 0)) return previous;
  const key = `${window.level}x${window.together}`;
  const speed = window.checks / window.checkMs;
  const before = previous.best.get(key) ?? { speed: 0, windows: 0 };
  const slow = before.windows >= WARM_UP_WINDOWS && speed < before.speed * SLOW;
  const best = new Map(previous.best);
  best.set(key, { speed: Math.max(before.speed, speed), windows: before.windows + 1 });
  const slowWindows = slow ? previous.slowWindows + 1 : 0;
  return { best, slowWindows, hot: slowWindows >= WINDOWS, relativeSpeed: speed / Math.max(before.speed, speed) };
}
