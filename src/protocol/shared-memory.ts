/**
 * Memory the page can share with its workers, found by trying, not inferred from
 * `crossOriginIsolated`. Isolation is what the HTML standard asks before a page may share memory,
 * but it does not promise the means: WebKitGTK 2.50 reports `crossOriginIsolated === true` on an
 * isolated page and has no `SharedArrayBuffer` global, and the buffer of a shared
 * `WebAssembly.Memory`, which it does make, cannot be posted to a worker there (DataCloneError).
 * (With `JSC_useSharedArrayBuffer=1`, as in Safari's isolated pages, it has both.)
 *
 * So: a buffer from the `SharedArrayBuffer` constructor where there is one, else a shared
 * `WebAssembly.Memory`'s; and either counts only once it has crossed a MessageChannel, the way a
 * worker will receive it. Asked once; the answer holds for the page's life.
 */

/** What the probe reads; a test passes its own. */
export interface SharedMemoryScope {
  SharedArrayBuffer?: SharedArrayBufferConstructor;
  WebAssembly?: typeof WebAssembly;
  MessageChannel?: typeof MessageChannel;
}

const WASM_PAGE_BYTES = 65536;

/** A shared buffer of at least `bytes`, or null where this scope cannot make one. */
function makeShared(bytes: number, scope: SharedMemoryScope): SharedArrayBuffer | null {
  if (typeof scope.SharedArrayBuffer === 'function') return new scope.SharedArrayBuffer(bytes);
  try {
    const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
    const memory = new scope.WebAssembly!.Memory({ initial: pages, maximum: pages, shared: true });
    return memory.buffer as unknown as SharedArrayBuffer;
  } catch {
    return null; // no shared memory at all (no threads proposal, or refused outside isolation)
  }
}

/** Whether a shared buffer made in `scope` can be posted to a worker: the one test that counts. */
export function probeSharedMemory(scope: SharedMemoryScope): boolean {
  const buffer = makeShared(8, scope);
  if (!buffer || typeof scope.MessageChannel !== 'function') return false;
  const channel = new scope.MessageChannel();
  try {
    channel.port1.postMessage(buffer);
    return true;
  } catch {
    return false; // DataCloneError: this page may make shared memory but not share it
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
}

let verdict: boolean | undefined;

/** Whether this page can share memory with its workers (probed on first call, then remembered). */
export function canShareMemory(): boolean {
  verdict ??= probeSharedMemory(globalThis as SharedMemoryScope);
  return verdict;
}

/**
 * A zeroed buffer of at least `bytes` that can be shared with workers.
 * @throws TypeError where this page cannot share memory (check canShareMemory() first)
 */
export function sharedBuffer(bytes: number): SharedArrayBuffer {
  const buffer = canShareMemory() ? makeShared(bytes, globalThis as SharedMemoryScope) : null;
  if (!buffer) throw new TypeError('this page cannot share memory with its workers (see canShareMemory)');
  return buffer;
}
