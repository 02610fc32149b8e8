/**
 * Keeps a run to its CPU share, and holds it while paused, at each yield of the instrumented
 * module and each WASI call: after `share * SLICE_MS` of work it naps `(1 - share) / share` times
 * the work done, blocking the thread without spinning (worker/sleep.ts); paused, it waits on the
 * control block until the page resumes it. It also keeps the run's figures for the page.
 */
import { sleepMs } from './sleep.ts';
import { coreSpeedCheck } from './core-speed.ts';
import { ThrottleBlock, type RunProgress, type Throttle } from '../src/protocol/throttle.ts';

/** One duty cycle: short enough that a 25% task never computes more than 25 ms in a row. */
const SLICE_MS = 100;
/**
 * An interval between yields at under half the pace of the steady one before it, and at least this
 * long, had the thread waiting for a core (another program's turn, some milliseconds): not steady.
 */
const PREEMPTED_MIN_MS = 0.5;
/** So many such intervals in a row are the task's own new pace (another phase of the program), not waits. */
const PACE_CHANGE_INTERVALS = 8;
/**
 * How often the core's speed is checked while computing (worker/core-speed.ts): a few ms of a
 * fixed unit every 2 s, about 0.2% of the core. Heat builds over tens of seconds.
 */
export const SPEED_CHECK_EVERY_MS = 2000;

export class DutyCycle {
  private sliceBusy = 0;
  private lastTick = performance.now();
  private lastWork = 0;
  /** Work per ms of the last steady interval; 0 until there is one. */
  private steadyPace = 0;
  private slowIntervals = 0;
  private lastSpeedCheck = performance.now();
  readonly progress: RunProgress = { work: 0, busyMs: 0, napMs: 0, pausedMs: 0, steadyWork: 0, steadyBusyMs: 0, speedChecks: 0, speedCheckMs: 0 };

  /**
   * @param control the page's control block, or, where the page cannot share memory with its workers, a fixed throttle.
   * @param checkSpeed times the core's fixed unit of work, ms (worker/core-speed.ts).
   */
  constructor(
    private readonly control: ThrottleBlock | Throttle,
    private readonly checkSpeed: () => number = coreSpeedCheck,
  ) {}

  tick(work: number): void {
    const now = performance.now();
    const busy = now - this.lastTick;
    this.progress.busyMs += busy;
    this.progress.work = work;
    this.countSteady(work - this.lastWork, busy);
    this.lastWork = work;
    this.sliceBusy += busy;
    const block = this.control instanceof ThrottleBlock ? this.control : null;
    // Right after computing, before any nap or pause: the core is at its working speed now. Only
    // where the page can read the result (a control block): elsewhere it would be CPU for nothing.
    if (block && now - this.lastSpeedCheck >= SPEED_CHECK_EVERY_MS && !block.get().paused) this.recordSpeedCheck();
    if (block) this.progress.pausedMs += block.waitWhilePaused();
    const share = block ? block.get().cpu : (this.control as Throttle).cpu;
    if (share < 1 && this.sliceBusy >= share * SLICE_MS) {
      // Nap in proportion to the work actually done, so long gaps between yields still average out.
      const napStart = performance.now();
      sleepMs((this.sliceBusy * (1 - share)) / share);
      this.progress.napMs += performance.now() - napStart;
      this.sliceBusy = 0;
    } else if (share >= 1) {
      this.sliceBusy = 0;
    }
    block?.report(this.progress);
    this.lastTick = performance.now();
  }

  /** Checks the core's speed; the check is Dewgrid's CPU too, so it counts as busy and against the share. */
  private recordSpeedCheck(): void {
    const start = performance.now();
    const unitMs = this.checkSpeed();
    const spent = performance.now() - start;
    if (unitMs > 0 && Number.isFinite(unitMs)) {
      this.progress.speedChecks += 1;
      this.progress.speedCheckMs += unitMs;
    }
    this.progress.busyMs += spent;
    this.sliceBusy += spent;
    this.lastSpeedCheck = performance.now();
  }

  /** Adds an interval to the steady figures unless it was slowed by a wait for the core. */
  private countSteady(work: number, busy: number): void {
    const pace = busy > 0 ? work / busy : 0;
    if (busy >= PREEMPTED_MIN_MS && pace < this.steadyPace * 0.5 && ++this.slowIntervals < PACE_CHANGE_INTERVALS) return;
    this.slowIntervals = 0;
    this.progress.steadyWork += work;
    this.progress.steadyBusyMs += busy;
    if (busy >= PREEMPTED_MIN_MS / 2 && work > 0) this.steadyPace = pace;
  }
}
