/**
 * The throttle control block: a small SharedArrayBuffer the page and a task's worker share, so the
 * page can change a running task's CPU share or pause it, and read its progress, without messages
 * (a worker inside a synchronous Wasm run cannot receive any). The worker looks at it at every
 * yield of the instrumented module and every WASI call (docs/scheduling.md).
 *
 * Sharing memory between agents needs a cross-origin isolated page, and a browser that then lets
 * it share (src/protocol/shared-memory.ts: WebKitGTK is isolated and cannot). Where the page cannot
 * share, it passes no block: the share given at the start holds for the run, and a pause cuts the
 * run short (it is kept and runs again first, from its checkpoint where it keeps one).
 */
import { sharedBuffer } from './shared-memory.ts';

// ---- The yield hook's contract between an instrumented module and the worker that runs it ----

/** The rewrite's version (worker/instrument.ts), bumped whenever it changes: cached instrumented bytes are keyed by it. */
export const INSTRUMENTER_VERSION = 6;
/**
 * The host function the probes call when the budget is spent: `(left: i32) -> i32`, given what is
 * left of the budget (zero or less: a loop's batch may overshoot), answering the next allowance (> 0).
 */
export const YIELD_IMPORT = { module: 'dewgrid', name: 'yield' } as const;
/** The counter global, exported so the host can read what is left of the allowance at the end. */
export const BUDGET_EXPORT = '__dewgrid_budget';

/**
 * The work a run did, in probes executed, from what the allowances handed out before the last one
 * paid for (each allowance less what was left of it when the module yielded), the last one handed
 * out, and what is left of it.
 */
export function workDone(allowancesUsedUp: number, lastAllowance: number, left: number): number {
  return allowancesUsedUp + (lastAllowance - left);
}

/** What an instrumented module's counter starts with (worker/instrument.ts); its first yield tunes the next. */
export const INITIAL_ALLOWANCE = 10_000;

/** How a running task may use its core: a share of it, or none until resumed. */
export interface Throttle {
  /** 0.1 to 1. */
  cpu: number;
  paused: boolean;
}

/** Cumulative figures of one run. */
export interface RunProgress {
  /** Probes the instrumented module executed (its work measure); 0 for modules not instrumented. */
  work: number;
  /** Time spent computing, ms. */
  busyMs: number;
  /** Time spent napping to keep to the CPU share, ms. */
  napMs: number;
  /** Time spent paused, ms. */
  pausedMs: number;
  /**
   * The part of `work` and `busyMs` done between yields the thread was not taken off its core in:
   * an interval much slower than the one before it (under half its pace, and 0.5 ms or longer) had
   * the thread waiting for a core another program held. Their ratio is the task's pace on a core
   * of its own; busyMs less steadyBusyMs, over busyMs, is the share of its time other programs
   * took (docs/scheduling.md, "Own load").
   */
  steadyWork: number;
  steadyBusyMs: number;
  /**
   * Checks of the core's speed (worker/core-speed.ts: one fixed unit of work, fastest of three
   * timings), and their total time, ms. Their ratio rises only when the core itself slows (heat),
   * not when the program changes pace.
   */
  speedChecks: number;
  speedCheckMs: number;
}

// Int32 cells: what the page sets.
const PAUSED = 0;
const CPU_PERMILLE = 1;
// Float64 cells (from byte 16): what the worker reports.
const WORK = 2;
const BUSY = 3;
const NAP = 4;
const PAUSED_MS = 5;
/** performance.timeOrigin + now() in the worker when it stopped for the latest pause: for measuring pause latency. */
const PAUSED_AT = 6;
const STEADY_WORK = 7;
const STEADY_BUSY = 8;
const SPEED_CHECKS = 9;
const SPEED_CHECK_MS = 10;
const BYTES = 11 * 8;

export class ThrottleBlock {
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer = sharedBuffer(BYTES)) {
    this.ints = new Int32Array(buffer, 0, 4);
    this.floats = new Float64Array(buffer, 0, BYTES / 8);
  }

  /** Page side: takes effect at the task's next yield. */
  set(throttle: Throttle): void {
    Atomics.store(this.ints, CPU_PERMILLE, Math.round(Math.min(1, Math.max(0.1, throttle.cpu)) * 1000));
    const paused = throttle.paused ? 1 : 0;
    if (Atomics.exchange(this.ints, PAUSED, paused) !== paused && !paused) Atomics.notify(this.ints, PAUSED);
  }

  get(): Throttle {
    return { cpu: Atomics.load(this.ints, CPU_PERMILLE) / 1000, paused: Atomics.load(this.ints, PAUSED) === 1 };
  }

  /** Worker side: blocks while paused (Atomics.wait, no spinning); returns the ms it waited. */
  waitWhilePaused(): number {
    if (Atomics.load(this.ints, PAUSED) === 0) return 0;
    const started = performance.now();
    this.floats[PAUSED_AT] = performance.timeOrigin + started;
    while (Atomics.load(this.ints, PAUSED) === 1) Atomics.wait(this.ints, PAUSED, 1, 1000);
    return performance.now() - started;
  }

  report(progress: RunProgress): void {
    this.floats[WORK] = progress.work;
    this.floats[BUSY] = progress.busyMs;
    this.floats[NAP] = progress.napMs;
    this.floats[PAUSED_MS] = progress.pausedMs;
    this.floats[STEADY_WORK] = progress.steadyWork;
    this.floats[STEADY_BUSY] = progress.steadyBusyMs;
    this.floats[SPEED_CHECKS] = progress.speedChecks;
    this.floats[SPEED_CHECK_MS] = progress.speedCheckMs;
  }

  progress(): RunProgress {
    const f = this.floats;
    return { work: f[WORK]!, busyMs: f[BUSY]!, napMs: f[NAP]!, pausedMs: f[PAUSED_MS]!, steadyWork: f[STEADY_WORK]!, steadyBusyMs: f[STEADY_BUSY]!, speedChecks: f[SPEED_CHECKS]!, speedCheckMs: f[SPEED_CHECK_MS]! };
  }

  /** When the worker last stopped for a pause (epoch ms, fractional), 0 if never. */
  pausedAt(): number {
    return this.floats[PAUSED_AT]!;
  }
}
