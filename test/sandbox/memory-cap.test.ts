// The memory cap written into a module's memory section: programs under the cap run exactly as
// before; a memory bomb stops at the cap with 'memory-limit'; bad modules get a clear message.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { capMemory } from '../../src/scheduler/memory-cap.ts';
import { runJob } from '../../worker/run-job.ts';
import type { WorkerJob } from '../../src/protocol/worker-api.ts';

const read = (path: string) => new Uint8Array(readFileSync(new URL(`../../${path}`, import.meta.url)));
const MiB = 2 ** 20;

function job(module: WebAssembly.Module, args: string[], memoryBytes: number): WorkerJob {
  return { taskId: 't', engine: 'wasi-preview1', module, args, env: [], stdin: new Uint8Array(0), files: [], preopens: ['/out'], limits: { memoryBytes, outputBytes: MiB }, cpu: 1, deterministic: false };
}

function capped(bytes: Uint8Array, cap: number): WebAssembly.Module {
  const result = capMemory(bytes, cap);
  if (!result.ok) throw new Error(result.message);
  return new WebAssembly.Module(result.bytes as Uint8Array<ArrayBuffer>);
}

describe('memory cap', () => {
  it('leaves a program under the cap byte-identical in output', () => {
    const fractal = read('demo/fractal/fractal.wasm');
    const args = ['fractal', '64', '64', '0', '0', '64', '64'];
    const before = runJob(job(new WebAssembly.Module(fractal as Uint8Array<ArrayBuffer>), args, 256 * MiB));
    const after = runJob(job(capped(fractal, 16 * MiB), args, 16 * MiB));
    expect(after.error).toBeNull();
    expect(after.stdout).toEqual(before.stdout);
  });

  it('stops a memory bomb at the cap with memory-limit', () => {
    const outcome = runJob(job(capped(read('test/fixtures/hostile/bomb.wasm'), 32 * MiB), ['bomb'], 32 * MiB));
    expect(outcome.error?.code).toBe('memory-limit');
    expect(outcome.error?.message).toMatch(/memory limit of 33554432 bytes/);
  });

  it('refuses a module that starts above the cap, and one that is not well formed', () => {
    const fractal = read('demo/fractal/fractal.wasm');
    const tooSmall = capMemory(fractal, 64 * 1024);
    expect(tooSmall.ok).toBe(false);
    expect(!tooSmall.ok && tooSmall.message).toMatch(/starts with \d+ bytes of memory; the limit is 65536/);
    const broken = capMemory(read('test/fixtures/hostile/truncated.wasm'), 16 * MiB);
    expect(broken.ok).toBe(false);
    expect(!broken.ok && broken.message).toMatch(/not a well-formed module/);
  });

  it('writes a maximum no larger than the cap', () => {
    const result = capMemory(read('test/fixtures/wasi/wordfreq.wasm'), 8 * MiB);
    expect(result.ok).toBe(true);
    const memory = WebAssembly.Module.exports(new WebAssembly.Module((result as { bytes: Uint8Array<ArrayBuffer> }).bytes)).find((e) => e.kind === 'memory');
    expect(memory?.name).toBe('memory');
    const instance = new WebAssembly.Instance(new WebAssembly.Module((result as { bytes: Uint8Array<ArrayBuffer> }).bytes), {
      wasi_snapshot_preview1: new Proxy({}, { get: () => () => 0 }),
    });
    const mem = instance.exports.memory as WebAssembly.Memory;
    const pages = mem.buffer.byteLength / 65536;
    expect(() => mem.grow(8 * 16 - pages + 1)).toThrow(RangeError); // one page past the cap
    expect(mem.grow(8 * 16 - pages)).toBe(pages); // exactly to the cap
  });
});
