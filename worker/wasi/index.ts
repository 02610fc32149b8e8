/**
 * Dewgrid's WASI preview1 shim: one instance per run, with its own in-memory file system.
 * Runs in a Web Worker and in Node (tests, benchmarks): no DOM, no Node APIs.
 */
import { createSyscalls, ProcExit } from './syscalls.ts';
import { MemoryFs, WasiError } from './fs.ts';
import { ByteBudget, DirFd, OutputFd, StdinFd, type Fd } from './fd.ts';
import { RIGHTS_ALL, RIGHTS_DIRECTORY } from './constants.ts';

export interface WasiFile {
  /** Absolute guest path, e.g. "/data/in.txt". */
  path: string;
  data: Uint8Array;
}

export interface WasiOptions {
  /** argv, argv[0] included. */
  args: string[];
  env: [string, string][];
  stdin: Uint8Array;
  /** Placed in the file system before start; parent directories are created. */
  files: WasiFile[];
  /** Guest directories exposed as fds 3, 4, ... in this order ("/" allowed); created if missing. */
  preopens: string[];
  maxStdoutBytes: number;
  maxStderrBytes: number;
  /** Bytes the program's files may hold beyond the input files; writes past it fail with NOSPC. */
  maxOutputFileBytes: number;
}

export interface WasiResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Regular files that are new, or whose bytes differ from the input file at that path, sorted by path. */
  files: WasiFile[];
  truncated: { stdout: boolean; stderr: boolean };
}

export interface WasiHooks {
  /** Called at the start of every syscall: where throttling and pausing take hold. */
  onSyscall?: () => void;
}

const encoder = new TextEncoder();

export class Wasi {
  readonly imports: { wasi_snapshot_preview1: Record<string, (...args: never[]) => number | void> };
  private memory: WebAssembly.Memory | null = null;
  private readonly fs: MemoryFs;
  private readonly stdout: OutputFd;
  private readonly stderr: OutputFd;
  private readonly inputs = new Map<string, Uint8Array>();
  private readonly napCell = new Int32Array(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer, 0, 1);

  constructor(options: WasiOptions, hooks: WasiHooks = {}) {
    const realtime = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
    this.fs = new MemoryFs(realtime);
    for (const file of options.files) {
      this.fs.writeFile(file.path, file.data);
      this.inputs.set(normalize(file.path), file.data);
    }
    const fds = new Map<number, Fd>();
    fds.set(0, new StdinFd(options.stdin));
    this.stdout = new OutputFd(options.maxStdoutBytes);
    this.stderr = new OutputFd(options.maxStderrBytes);
    fds.set(1, this.stdout);
    fds.set(2, this.stderr);
    options.preopens.forEach((path, i) => fds.set(3 + i, new DirFd(this.fs.mkdirp(path), path, RIGHTS_DIRECTORY, RIGHTS_ALL)));

    const table = createSyscalls({
      memory: () => {
        if (!this.memory) throw new WasiError(52);
        return this.memory;
      },
      fs: this.fs,
      fds,
      args: options.args.map((a) => encoder.encode(a)),
      env: options.env.map(([k, v]) => encoder.encode(`${k}=${v}`)),
      budget: new ByteBudget(options.maxOutputFileBytes),
      realtime,
      monotonic: () => BigInt(Math.round(performance.now() * 1e6)),
      sleep: (ns) => void Atomics.wait(this.napCell, 0, 0, Number(ns) / 1e6),
      randomFill: (into) => void crypto.getRandomValues(into),
    });
    const onSyscall = hooks.onSyscall;
    this.imports = {
      wasi_snapshot_preview1: onSyscall
        ? Object.fromEntries(
            Object.entries(table).map(([name, call]) => [
              name,
              (...args: never[]) => {
                onSyscall();
                return call(...args);
              },
            ]),
          )
        : table,
    };
  }

  /** Runs `_start`; returns when the program exits. Traps propagate (WebAssembly.RuntimeError). */
  start(instance: WebAssembly.Instance): WasiResult {
    const { memory, _start } = instance.exports;
    if (!(memory instanceof WebAssembly.Memory)) throw new TypeError('the module does not export its memory as "memory"');
    if (typeof _start !== 'function') throw new TypeError('the module is not a WASI command: it exports no _start');
    this.memory = memory;
    let exitCode = 0;
    try {
      (_start as () => void)();
    } catch (error) {
      if (!(error instanceof ProcExit)) throw error;
      exitCode = error.code;
    }
    return {
      exitCode,
      stdout: this.stdout.bytes(),
      stderr: this.stderr.bytes(),
      files: this.outputFiles(),
      truncated: { stdout: this.stdout.truncated, stderr: this.stderr.truncated },
    };
  }

  private outputFiles(): WasiFile[] {
    const out: WasiFile[] = [];
    for (const { path, inode } of this.fs.files()) {
      const data = inode.bytes();
      const input = this.inputs.get(path);
      if (input && sameBytes(input, data)) continue;
      out.push({ path, data: data.slice() });
    }
    return out;
  }
}

function normalize(path: string): string {
  return `/${path.split('/').filter((p) => p && p !== '.').join('/')}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
