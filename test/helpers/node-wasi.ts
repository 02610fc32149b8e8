/**
 * The reference runner: the same module and inputs under Node's own WASI (uvwasi), on a real
 * temporary folder, with outputs collected the way the shim reports them.
 */
import { WASI } from 'node:wasi';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { WasiOptions, WasiResult } from '../../worker/wasi/index.ts';

export async function runUnderNodeWasi(wasm: Uint8Array | WebAssembly.Module, options: WasiOptions): Promise<WasiResult & { runMs: number }> {
  const root = mkdtempSync(join(tmpdir(), 'dewgrid-nodewasi-'));
  const fsRoot = join(root, 'fs');
  mkdirSync(fsRoot);
  try {
    for (const file of options.files) {
      const host = join(fsRoot, file.path);
      mkdirSync(dirname(host), { recursive: true });
      writeFileSync(host, file.data);
    }
    const preopens: Record<string, string> = {};
    for (const guest of options.preopens) {
      const host = join(fsRoot, guest);
      mkdirSync(host, { recursive: true });
      preopens[guest] = host;
    }
    writeFileSync(join(root, 'stdin'), options.stdin);
    const stdin = openSync(join(root, 'stdin'), 'r');
    const stdout = openSync(join(root, 'stdout'), 'w');
    const stderr = openSync(join(root, 'stderr'), 'w');
    let exitCode: number;
    let runMs: number;
    try {
      const wasi = new WASI({ version: 'preview1', args: options.args, env: Object.fromEntries(options.env), preopens, stdin, stdout, stderr, returnOnExit: true });
      // Node 20's node:wasi can crash after memory growth when its imports are called directly
      // (nodejs/node#53087): a plain JS function around each one avoids it.
      const imports = Object.fromEntries(Object.entries(wasi.wasiImport).map(([name, f]) => [name, (...args: unknown[]) => (f as (...a: unknown[]) => unknown)(...args)]));
      const module = wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
      const started = performance.now();
      const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: imports });
      exitCode = wasi.start(instance);
      runMs = performance.now() - started;
    } finally {
      closeSync(stdin);
      closeSync(stdout);
      closeSync(stderr);
    }
    const inputs = new Map(options.files.map((f) => [f.path, f.data]));
    const files: { path: string; data: Uint8Array }[] = [];
    const walk = (dir: string, guest: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const host = join(dir, entry.name);
        const path = `${guest}/${entry.name}`;
        if (entry.isDirectory()) walk(host, path);
        else if (entry.isFile()) {
          const data = new Uint8Array(readFileSync(host));
          const input = inputs.get(path);
          if (!input || Buffer.compare(Buffer.from(input), Buffer.from(data)) !== 0) files.push({ path, data });
        }
      }
    };
    walk(fsRoot, '');
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const cap = (bytes: Buffer, max: number) => ({ data: new Uint8Array(bytes.subarray(0, max)), truncated: bytes.length > max });
    const out = cap(readFileSync(join(root, 'stdout')), options.maxStdoutBytes);
    const err = cap(readFileSync(join(root, 'stderr')), options.maxStderrBytes);
    return { exitCode, stdout: out.data, stderr: err.data, files, truncated: { stdout: out.truncated, stderr: err.truncated }, runMs };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
