/**
 * Keeps a run to its CPU share, and holds it while paused, at each yield of the instrumented
 * module and each WASI call: after `share * SLICE_MS` of work it naps `(1 - share) / share` times
 * the work done, blocking the thread without spinning (worker/sleep.ts); paused, it waits on the
 * control block until the page resumes it. It also keeps the run's figures for the page.
 */
import { sleepMs } from './sleep.ts';
import { ThrottleBlock, type RunProgress, type Throttle } from '../src/protocol/throttle.ts';

/** One duty cycle: short enough that a 25% task never computes more than 25 ms in a row. */
const SLICE_MS = 100;

export class DutyCycle {
  private sliceBusy = 0;
  private lastTick = performance.now();
  readonly progress: RunProgress = { work: 0, busyMs: 0, napMs: 0, pausedMs: 0 };

  /** @param control the page's control block, or, where the page cannot share memory with its workers, a fixed throttle. */
  constructor(private readonly control: ThrottleBlock | Throttle) {}

  tick(work: number): void {
    const now = performance.now();
    const busy = now - this.lastTick;
    this.progress.busyMs += busy;
    this.progress.work = work;
    this.sliceBusy += busy;
    const block = this.control instanceof ThrottleBlock ? this.control : null;
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
}
