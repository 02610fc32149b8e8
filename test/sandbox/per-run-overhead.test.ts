// What a run costs besides the program (issue #16, docs/benchmarks.md (l)): a small program's
// outputs are hashed without WebCrypto's round trip and cross to the page without Blobs, and the
// shim wraps only the calls the module imports. Each figure is checked for what it must still be:
// the same hashes as node:crypto's, the same bytes, the hook still on every imported call.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sha256HexSync } from '../../src/protocol/sha256-small.ts';
import { EMPTY_SHA256, outputDigests, SMALL_DIGEST_BYTES } from '../../src/protocol/results.ts';
import { OUTPUT_BLOB_MIN_BYTES, type WorkerJob } from '../../src/protocol/worker-api.ts';
import { ThrottleBlock } from '../../src/protocol/throttle.ts';
import { instrument } from '../../worker/instrument.ts';
import { INITIAL_ALLOWANCE, runJob } from '../../worker/run-job.ts';
import { Wasi } from '../../worker/wasi/index.ts';

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const wasm = (path: string) => new WebAssembly.Module(readFileSync(new URL(`../../${path}`, import.meta.url)));

function job(module: WebAssembly.Module, args: string[]): WorkerJob {
  return { taskId: 't', engine: 'wasi-preview1', module, args, env: [], stdin: new Uint8Array(0), files: [], preopens: [], limits: { memoryBytes: 2 ** 28, outputBytes: 2 ** 24 }, cpu: 1, deterministic: false };
}

afterEach(() => vi.restoreAllMocks());

describe('SHA-256 in JavaScript, for small outputs', () => {
  it('gives node:crypto\'s digest at every length around the block and padding edges, and beyond', () => {
    const lengths = [...Array.from({ length: 200 }, (_, i) => i), 447, 448, 511, 512, 4095, 4096, 4097, 70_000];
    for (const n of lengths) {
      const bytes = new Uint8Array(randomBytes(n));
      expect(sha256HexSync(bytes), `${n} bytes`).toBe(sha(bytes));
    }
    expect(sha256HexSync(new Uint8Array(0))).toBe(EMPTY_SHA256);
  });

  it('hashes a view by its own bytes, not its buffer\'s', () => {
    const buffer = new Uint8Array(randomBytes(300));
    const view = buffer.subarray(17, 150);
    expect(sha256HexSync(view)).toBe(sha(view));
  });
});

describe('outputDigests', () => {
  it('hashes empty and small outputs without WebCrypto and without a promise, large ones with it, all as node:crypto does', async () => {
    const digest = vi.spyOn(crypto.subtle, 'digest');
    const small = new Uint8Array(randomBytes(SMALL_DIGEST_BYTES));
    const large = new Uint8Array(randomBytes(SMALL_DIGEST_BYTES + 1));
    const fewAtOnce = outputDigests({ stdout: small, stderr: new Uint8Array(0), files: [{ path: '/out/a', data: small.subarray(0, 10) }] });
    expect(fewAtOnce).not.toBeInstanceOf(Promise); // the worker answers in the same turn
    const few = await fewAtOnce;
    expect(few).toEqual({ stdout: sha(small), stderr: EMPTY_SHA256, files: [{ path: '/out/a', sha256: sha(small.subarray(0, 10)) }] });
    expect(digest).not.toHaveBeenCalled();
    const many = await outputDigests({ stdout: large, stderr: small, files: [{ path: '/out/b', data: large }] });
    expect(many).toEqual({ stdout: sha(large), stderr: sha(small), files: [{ path: '/out/b', sha256: sha(large) }] });
    expect(digest).toHaveBeenCalledTimes(2);
  });
});

describe('a run\'s outcome', () => {
  it('gives a small program\'s outputs as bytes only, no Blobs (making one cost ~0.7 ms in a Chromium worker)', () => {
    const outcome = runJob(job(wasm('bench/fixtures/hello.wasm'), ['hello']));
    expect(outcome.error).toBeNull();
    expect(new TextDecoder().decode(outcome.stdout)).toMatch(/hello/i);
    expect(outcome.blobs).toEqual({ stdout: null, stderr: null, files: [] });
  });

  it('gives an output of OUTPUT_BLOB_MIN_BYTES or more in a Blob too, with the same bytes', async () => {
    // 150 x 150 pixels, 3 bytes each, after a short header: just over 64 KiB of stdout.
    const outcome = runJob(job(wasm('demo/fractal/fractal.wasm'), ['fractal', '150', '150', '0', '0', '150', '150', '50']));
    expect(outcome.error).toBeNull();
    expect(outcome.stdout.length).toBeGreaterThanOrEqual(OUTPUT_BLOB_MIN_BYTES);
    expect(outcome.blobs.stderr).toBeNull();
    expect(new Uint8Array(await outcome.blobs.stdout!.arrayBuffer())).toEqual(outcome.stdout);
  });
});

describe('a run\'s figures (computing, napping, paused)', () => {
  // The fractal instrumented as a donor's page runs it: long enough to tick the duty cycle.
  const fractal = () => new WebAssembly.Module(instrument(new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url))), INITIAL_ALLOWANCE) as Uint8Array<ArrayBuffer>);
  const args = ['fractal', '200', '200', '0', '0', '200', '200', '500'];

  it('come in the outcome for a page without a control block, and only in the block for a page with one', () => {
    const module = fractal();
    const without = runJob(job(module, args));
    expect(without.error).toBeNull();
    expect(without.progress?.busyMs).toBeGreaterThan(0);
    const control = new ThrottleBlock();
    control.set({ cpu: 1, paused: false });
    const withBlock = runJob({ ...job(module, args), control: control.buffer });
    expect(withBlock.error).toBeNull();
    expect(withBlock).not.toHaveProperty('progress');
    expect(control.progress().busyMs).toBeGreaterThan(0);
    expect(control.progress().work).toBeGreaterThan(0);
  });
});

describe('the shim\'s syscall hook', () => {
  const options = { args: ['x'], env: [], stdin: new Uint8Array(0), files: [], preopens: [], maxStdoutBytes: 1024, maxStderrBytes: 1024, maxOutputFileBytes: 1024 };

  it('wraps only the calls named (the module\'s imports), each of them calling the hook', () => {
    let calls = 0;
    const wasi = new Wasi(options, { onSyscall: () => calls++ }, ['fd_write', 'proc_exit', 'not_a_wasi_call']);
    expect(Object.keys(wasi.imports.wasi_snapshot_preview1).sort()).toEqual(['fd_write', 'proc_exit']);
    wasi.imports.wasi_snapshot_preview1.fd_write!(1, 0, 0, 0); // no memory yet: an errno, after the hook
    expect(calls).toBe(1);
  });

  it('wraps every call when no names are given', () => {
    const all = Object.keys(new Wasi(options).imports.wasi_snapshot_preview1).sort();
    expect(Object.keys(new Wasi(options, { onSyscall: () => undefined }).imports.wasi_snapshot_preview1).sort()).toEqual(all);
    expect(all.length).toBeGreaterThan(40);
  });
});
