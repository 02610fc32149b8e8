/**
 * Keeps a run near its CPU share by napping at syscalls: after `share * SLICE_MS` of work it
 * sleeps `(1 - share) * SLICE_MS`, blocking the thread without spinning (worker/sleep.ts).
 */
import { sleepMs } from './sleep.ts';

const SLICE_MS = 100;

export class DutyCycle {
  private sliceStart = performance.now();

  constructor(private readonly share: number) {}

  tick(): void {
    const now = performance.now();
    const busy = now - this.sliceStart;
    if (busy < this.share * SLICE_MS) return;
    // Nap in proportion to the work actually done, so long gaps between syscalls still average out.
    const napMs = (busy * (1 - this.share)) / this.share;
    sleepMs(napMs);
    this.sliceStart = performance.now();
  }
}
