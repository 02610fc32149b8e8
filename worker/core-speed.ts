/**
 * How fast this thread's core runs now: one fixed unit of integer work (about a millisecond on a
 * 2020s desktop core, a few on a phone's), timed three times in a row, the fastest kept. A task's
 * own pace cannot say this: a program changes pace by itself as it moves from one phase to
 * another (a fractal tile from points that escape at once to points that never do; a synthesis
 * tool from parsing to optimising), which read as heat when heat was judged by it. The unit does
 * the same work every time, so only a slower core makes it slower (heat, or a frequency cap).
 * Waits for a core only lengthen some of the three runs; the fastest is left clean of them.
 */

/** Iterations of the unit: about 1 ms at one iteration per nanosecond. */
const UNIT_ITERATIONS = 1 << 19;
const RUNS = 3;

/** The result feeds a module-level sink, so the optimiser cannot drop the loop as dead code. */
let sink = 0;

function unit(): void {
  let x = sink | 1;
  for (let i = 0; i < UNIT_ITERATIONS; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    x ^= x >>> 13;
  }
  sink = x;
}

/** @returns the fastest of three timings of the unit, ms */
export function coreSpeedCheck(): number {
  let best = Infinity;
  for (let run = 0; run < RUNS; run++) {
    const start = performance.now();
    unit();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}
