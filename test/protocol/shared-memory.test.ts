// Shared memory is found by trying (src/protocol/shared-memory.ts), not inferred from
// crossOriginIsolated: a buffer counts only once it has crossed a MessageChannel. The scopes below
// stand for what the browsers showed; the WebKit journeys (test/e2e/engines-webkit.test.ts) run
// the real thing.
import { describe, expect, it } from 'vitest';
import { canShareMemory, probeSharedMemory, sharedBuffer, type SharedMemoryScope } from '../../src/protocol/shared-memory.ts';

/** A MessageChannel that refuses shared buffers, as WebKitGTK 2.50's does without JSC_useSharedArrayBuffer. */
class RefusingChannel extends MessageChannel {
  constructor() {
    super();
    const post = this.port1.postMessage.bind(this.port1);
    this.port1.postMessage = (message: unknown) => {
      if (Object.prototype.toString.call(message) === '[object SharedArrayBuffer]') throw new DOMException('The object can not be cloned.', 'DataCloneError');
      post(message);
    };
  }
}

describe('shared memory', () => {
  it('is there where a SharedArrayBuffer crosses a MessageChannel (Node, isolated Chromium and Firefox)', () => {
    expect(probeSharedMemory({ SharedArrayBuffer, WebAssembly, MessageChannel })).toBe(true);
    expect(canShareMemory()).toBe(true);
    const buffer = sharedBuffer(64);
    expect(buffer.byteLength).toBeGreaterThanOrEqual(64);
    expect(Object.prototype.toString.call(buffer)).toBe('[object SharedArrayBuffer]');
  });

  it("takes a shared WebAssembly.Memory's buffer where there is no SharedArrayBuffer global", () => {
    expect(probeSharedMemory({ WebAssembly, MessageChannel })).toBe(true);
  });

  it('is not there where the buffer can be made but not posted (WebKitGTK: isolated, no global)', () => {
    expect(probeSharedMemory({ WebAssembly, MessageChannel: RefusingChannel })).toBe(false);
  });

  it('is not there where no shared memory can be made at all', () => {
    const noThreads = { Memory: class { constructor() { throw new TypeError('shared memory is not supported'); } } } as unknown as typeof WebAssembly;
    expect(probeSharedMemory({ WebAssembly: noThreads, MessageChannel } satisfies SharedMemoryScope)).toBe(false);
  });
});
