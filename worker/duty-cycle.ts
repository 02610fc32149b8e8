/**
 * Keeps a run near its CPU share by napping at syscalls: after `share * SLICE_MS` of work it
 * sleeps `(1 - share) * SLICE_MS`. The nap is Atomics.wait on worker-local shared memory, which
 * blocks the thread without spinning (a shared Memory works without cross-origin isolation).
 */
const SLICE_MS = 100;

export class DutyCycle {
  private sliceStart = performance.now();
  private readonly napCell = new Int32Array(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer, 0, 1);

  constructor(private readonly share: number) {}

  tick(): void {
    const now = performance.now();
    const busy = now - this.sliceStart;
    if (busy < this.share * SLICE_MS) return;
    // Nap in proportion to the work actually done, so long gaps between syscalls still average out.
    const napMs = (busy * (1 - this.share)) / this.share;
    Atomics.wait(this.napCell, 0, 0, napMs);
    this.sliceStart = performance.now();
  }
}
