// The same programs under Dewgrid's shim and under Node's WASI (uvwasi): stdout, stderr, exit
// code and output files must be byte-identical.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Wasi, type WasiOptions, type WasiResult } from '../../worker/wasi/index.ts';
import { runUnderNodeWasi } from '../helpers/node-wasi.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/wasi/${name}`, import.meta.url)));
const text = (s: string) => new TextEncoder().encode(s);

export function runUnderShim(module: WebAssembly.Module, options: WasiOptions): WasiResult {
  const wasi = new Wasi(options);
  return wasi.start(new WebAssembly.Instance(module, wasi.imports as WebAssembly.Imports));
}

function options(partial: Partial<WasiOptions>): WasiOptions {
  return { args: ['prog'], env: [], stdin: new Uint8Array(0), files: [], preopens: [], maxStdoutBytes: 1 << 24, maxStderrBytes: 1 << 24, maxOutputFileBytes: 1 << 24, ...partial };
}

async function compare(wasm: Uint8Array, opts: WasiOptions) {
  const module = await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
  const ours = runUnderShim(module, opts);
  const reference = await runUnderNodeWasi(module, opts);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  // Compare as text first for a readable diff, then as bytes.
  expect(decode(ours.stdout)).toBe(decode(reference.stdout));
  expect(decode(ours.stderr)).toBe(decode(reference.stderr));
  expect(ours.exitCode).toBe(reference.exitCode);
  expect(ours.files.map((f) => [f.path, decode(f.data)])).toEqual(reference.files.map((f) => [f.path, decode(f.data)]));
  expect(ours.stdout).toEqual(reference.stdout);
  expect(ours.files).toEqual(reference.files.map(({ path, data }) => ({ path, data })));
  return ours;
}

describe('shim vs node:wasi', () => {
  it('wordfreq: args, env, stdin, a preopened folder, an output file, stderr and exit code', async () => {
    const result = await compare(
      fixture('wordfreq.wasm'),
      options({
        args: ['wordfreq', '/data', '/out/report.txt'],
        env: [['WORDFREQ_TOP', '3'], ['WORDFREQ_EXIT', '7']],
        stdin: text('the quick brown fox\njumps over the lazy dog\nthe end\n'),
        files: [
          { path: '/data/b.txt', data: text('beta beta gamma\n') },
          { path: '/data/a.txt', data: text("alpha's alpha\nand the beta\n") },
          { path: '/data/bin.dat', data: new Uint8Array([0, 255, 1, 254, 10]) },
        ],
        preopens: ['/data', '/out'],
      }),
    );
    expect(result.exitCode).toBe(7);
    expect(result.files.map((f) => f.path)).toEqual(['/out/report.txt']);
  });

  it('wordfreq with a preopen at /', async () => {
    await compare(
      fixture('wordfreq.wasm'),
      options({ args: ['wordfreq', '/in', '/report.tsv'], files: [{ path: '/in/x.txt', data: text('x y z x\n') }], preopens: ['/'] }),
    );
  });

  it('fsops: mkdir, open flags, seek, pread/pwrite, append, truncate, stat, rename, unlink, rmdir, readdir, errno', async () => {
    const result = await compare(fixture('fsops.wasm'), options({ args: ['fsops', '/work'], files: [{ path: '/work/keep.txt', data: text('kept\n') }], preopens: ['/work'] }));
    expect(new TextDecoder().decode(result.stdout)).toContain('append=[one\ntwo\n]');
  });

  it('clockrand: clocks advance, nanosleep really sleeps, entropy is filled', async () => {
    const started = performance.now();
    const module = await WebAssembly.compile(fixture('clockrand.wasm') as Uint8Array<ArrayBuffer>);
    const ours = runUnderShim(module, options({ args: ['clockrand'] }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(5);
    expect(new TextDecoder().decode(ours.stdout)).toBe(
      'nanosleep returned 0\nmonotonic advanced at least 5 ms: yes\nclock_getres ok: yes\nrealtime after 2020: yes\ngetentropy ok: yes, not all zero: yes\n',
    );
    await compare(fixture('clockrand.wasm'), options({ args: ['clockrand'] }));
  });

  it('the demo fractal tile', async () => {
    const result = await compare(
      new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url))),
      options({ args: ['fractal', '640', '480', '160', '80', '80', '80'] }),
    );
    expect(new TextDecoder().decode(result.stdout.subarray(0, 13))).toBe('P6\n80 80\n255\n');
    expect(result.stdout.length).toBe(13 + 80 * 80 * 3);
  });
});
