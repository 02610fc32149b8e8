/**
 * Blocks the thread for `ms`: Atomics.wait on a cell of worker-local shared memory, never a busy
 * loop. A shared WebAssembly.Memory can be made without cross-origin isolation (only sending one
 * to another agent needs it), so this works on every page. Atomics.wait is not allowed on a
 * browser's main thread: it runs in workers there (and in Node for tests).
 */
let cell: Int32Array | null = null;

export function sleepMs(ms: number): void {
  cell ??= new Int32Array(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer, 0, 1);
  Atomics.wait(cell, 0, 0, ms);
}
