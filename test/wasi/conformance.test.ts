// The same programs under Dewgrid's shim and under Node's WASI (uvwasi): stdout, stderr, exit
// code and output files must be byte-identical.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Wasi, type WasiOptions, type WasiResult } from '../../worker/wasi/index.ts';
import { runUnderNodeWasi } from '../helpers/node-wasi.ts';
import { compareStdout, conformancePrograms } from '../helpers/conformance.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/wasi/${name}`, import.meta.url)));
const fractalWasm = () => new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

function runUnderShim(module: WebAssembly.Module, options: WasiOptions): WasiResult {
  const wasi = new Wasi(options);
  return wasi.start(new WebAssembly.Instance(module, wasi.imports));
}

function options(partial: Partial<WasiOptions>): WasiOptions {
  return { args: ['prog'], env: [], stdin: new Uint8Array(0), files: [], preopens: [], maxStdoutBytes: 1 << 24, maxStderrBytes: 1 << 24, maxOutputFileBytes: 1 << 24, ...partial };
}

async function compare(wasm: Uint8Array, opts: WasiOptions): Promise<WasiResult> {
  const module = await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
  const ours = runUnderShim(module, opts);
  const reference = await runUnderNodeWasi(module, opts);
  // As text first for a readable diff, then as bytes.
  expect(decode(ours.stdout)).toBe(decode(reference.stdout));
  expect(decode(ours.stderr)).toBe(decode(reference.stderr));
  expect(ours.exitCode).toBe(reference.exitCode);
  expect(ours.files.map((f) => [f.path, decode(f.data)])).toEqual(reference.files.map((f) => [f.path, decode(f.data)]));
  expect(ours.stdout).toEqual(reference.stdout);
  expect(ours.stderr).toEqual(reference.stderr);
  expect(ours.files).toEqual(reference.files);
  expect(ours.truncated).toEqual(reference.truncated);
  return ours;
}

describe('shim vs node:wasi', () => {
  const wordfreqInputs = {
    stdin: text('the quick brown fox\njumps over the lazy dog\nthe end\n'),
    files: [
      { path: '/data/b.txt', data: text('beta beta gamma\n') },
      { path: '/data/a.txt', data: text("alpha's alpha\nand the beta\n") },
      { path: '/data/bin.dat', data: new Uint8Array([0, 255, 1, 254, 10]) },
    ],
    preopens: ['/data', '/out'],
  };

  it('wordfreq: args, env, stdin, a preopened folder, an output file, stderr and exit code', async () => {
    const result = await compare(
      fixture('wordfreq.wasm'),
      options({ args: ['wordfreq', '/data', '/out/report.txt'], env: [['WORDFREQ_TOP', '3'], ['WORDFREQ_EXIT', '7']], ...wordfreqInputs }),
    );
    expect(result.exitCode).toBe(7);
    expect(result.files.map((f) => f.path)).toEqual(['/out/report.txt']);
    // SHA-256 of the empty string's neighbour "beta beta gamma\n", computed in C: checked against WebCrypto.
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', text('beta beta gamma\n')));
    const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    expect(decode(result.stdout)).toContain(`${hex}  /data/b.txt  lines=1 words=3 bytes=16`);
    expect(decode(result.stdout)).toContain('top 3 words:\n     4 the\n');
  });

  it('wordfreq: defaults, exit code 0, stdout and stderr cut at their caps', async () => {
    const result = await compare(
      fixture('wordfreq.wasm'),
      options({ args: ['wordfreq', '/data', '/out/report.txt'], maxStdoutBytes: 100, maxStderrBytes: 10, ...wordfreqInputs }),
    );
    expect(result.exitCode).toBe(0);
    expect(result.stdout.length).toBe(100);
    expect(result.truncated).toEqual({ stdout: true, stderr: true });
  });

  it('wordfreq with a preopen at /', async () => {
    await compare(
      fixture('wordfreq.wasm'),
      options({ args: ['wordfreq', '/in', '/report.tsv'], files: [{ path: '/in/x.txt', data: text('x y z x\n') }], preopens: ['/'] }),
    );
  });

  it('wordfreq: a missing folder is an error on stderr', async () => {
    const result = await compare(fixture('wordfreq.wasm'), options({ args: ['wordfreq', '/nope', '/out/r.txt'], preopens: ['/out'] }));
    expect(result.exitCode).toBe(1);
  });

  it('fsops: mkdir, open flags, seek, pread/pwrite, append, truncate, stat, rename, unlink, rmdir, readdir, errno', async () => {
    const result = await compare(fixture('fsops.wasm'), options({ args: ['fsops', '/work'], files: [{ path: '/work/keep.txt', data: text('kept\n') }], preopens: ['/work'] }));
    const out = decode(result.stdout);
    expect(out).toContain('append=[one\ntwo\n]');
    expect(out).toContain('ls .: keep.txt sub\n');
    expect(result.files.map((f) => f.path)).toEqual(['/work/out.txt', '/work/sub/b.txt']);
  });

  it('errnos: raw preview1 calls on edge cases answer the errno uvwasi answers', async () => {
    const result = await compare(
      fixture('errnos.wasm'),
      options({ args: ['errnos'], files: [{ path: '/p/file.txt', data: text('hello') }, { path: '/p/dir/.keep', data: new Uint8Array(0) }], preopens: ['/p'] }),
    );
    const out = decode(result.stdout);
    expect(out).toMatch(/open \.\.\/file\.txt +76\n/); // NOTCAPABLE
    expect(out).toMatch(/rmdir d2 \(not empty\) +55\n/); // NOTEMPTY
  });

  it('clockrand: clocks advance across a nanosleep, entropy is filled', async () => {
    const module = new WebAssembly.Module(fixture('clockrand.wasm') as Uint8Array<ArrayBuffer>);
    const ours = runUnderShim(module, options({ args: ['clockrand'] }));
    expect(decode(ours.stdout)).toBe(
      'nanosleep returned 0\nmonotonic increased: yes\nmonotonic advanced at least 1 ms: yes\nclock_getres ok: yes\nrealtime after 2020: yes\ngetentropy ok: yes, not all zero: yes\n',
    );
    // Node 20's uvwasi sometimes wakes a 1 ms sleep early, so that one line is not compared with it.
    const reference = await runUnderNodeWasi(module, options({ args: ['clockrand'] }));
    const withoutSleep = (b: Uint8Array) => decode(b).replace(/monotonic advanced at least 1 ms: \w+\n/, '');
    expect(withoutSleep(ours.stdout)).toBe(withoutSleep(reference.stdout));
    expect(ours.exitCode).toBe(reference.exitCode);
  });
});

describe('demo fractal', () => {
  it('renders a tile byte-identical to node:wasi, as a binary PPM', async () => {
    const opts = options({ args: ['fractal', '640', '480', '160', '80', '80', '80'] });
    const result = await compare(fractalWasm(), opts);
    expect(decode(result.stdout.subarray(0, 13))).toBe('P6\n80 80\n255\n');
    expect(result.stdout.length).toBe(13 + 80 * 80 * 3);
    expect(result.stderr.length).toBe(0);
    // Not a flat tile: the view has structure everywhere.
    expect(new Set(result.stdout.subarray(13)).size).toBeGreaterThan(20);
  });

  it('refuses bad arguments with exit code 2 and a message on stderr only', async () => {
    for (const args of [['fractal'], ['fractal', '640', '480', '600', '0', '80', '80'], ['fractal', '640', 'x', '0', '0', '8', '8']]) {
      const result = await compare(fractalWasm(), options({ args }));
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stdout.length).toBe(0);
      expect(decode(result.stderr)).toMatch(/^(usage|fractal): /);
    }
  });
});

describe('C, Rust and AssemblyScript conformance programs', () => {
  for (const program of conformancePrograms()) {
    it(`${program.language} ${program.name}: same stdout as node:wasi (known differences aside), same stderr, exit code and files`, async () => {
      const opts = options(program.options);
      const module = await WebAssembly.compile(program.wasm as Uint8Array<ArrayBuffer>);
      const ours = runUnderShim(module, opts);
      const reference = await runUnderNodeWasi(module, opts);
      expect(compareStdout(program, decode(ours.stdout), decode(reference.stdout))).toEqual([]);
      expect(decode(ours.stderr)).toBe(decode(reference.stderr));
      expect(ours.exitCode).toBe(reference.exitCode);
      expect(ours.files).toEqual(reference.files);
      // Every known difference is still one: if uvwasi comes to agree, the entry must go.
      for (const difference of program.differences) {
        const line = decode(reference.stdout).split('\n').find((l) => difference.line.test(l));
        expect(line, `uvwasi now agrees on ${difference.line}: drop the entry`).not.toBe(difference.ours);
      }
    });
  }
});
