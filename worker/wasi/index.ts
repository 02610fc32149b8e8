/**
 * Dewgrid's WASI preview1 shim: one instance per run, with its own in-memory file system.
 * Runs in a Web Worker and in Node (tests, benchmarks): no DOM, no Node APIs.
 */
import { createSyscalls, ProcExit } from './syscalls.ts';
import { MemoryFs, WasiError } from './fs.ts';
import { ByteBudget, OutputFd, PreopenDirectory, StdinFd, type Fd } from './fd.ts';
import { ERRNO_NOSYS } from './constants.ts';
import { SeededRandom, VirtualClock } from './deterministic.ts';
import { sleepMs } from '../sleep.ts';
import { CHECKPOINT_DIR } from '../../src/protocol/api.ts';
import { bytesEqual } from '../../src/protocol/bytes.ts';

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
  /**
   * Bytes the program's files may hold beyond the input files; writes past it fail with NOSPC, or
   * FBIG when one file alone would grow past it.
   */
  maxOutputFileBytes: number;
  /** Deterministic run: virtual clocks and random bytes seeded by `seed` (the task id). */
  deterministic?: { seed: string };
}

export interface WasiResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Regular files that are new, or whose bytes differ from the input file at that path, sorted by path. */
  files: WasiFile[];
  truncated: { stdout: boolean; stderr: boolean };
}

/** The import table: every wasi_snapshot_preview1 function, each returning an errno (proc_exit throws). */
export type WasiImports = { wasi_snapshot_preview1: Record<string, (...args: any[]) => any> };

export interface WasiHooks {
  /** Called at the start of every syscall: where throttling and pausing take hold. */
  onSyscall?: () => void;
  /**
   * Called when the program closes or syncs a file under CHECKPOINT_DIR, with its bytes then, so
   * the client can keep them and a cut-off run can resume (docs/protocol.md, "Checkpoints").
   */
  onCheckpoint?: (file: WasiFile) => void;
}


const encoder = new TextEncoder();


export class Wasi {
  readonly imports: WasiImports;
  private memory: WebAssembly.Memory | null = null;
  private readonly fs: MemoryFs;
  private readonly stdout: OutputFd;
  private readonly stderr: OutputFd;
  private readonly inputs = new Map<string, Uint8Array>();
  private lastMonotonic = 0n;

  constructor(options: WasiOptions, hooks: WasiHooks = {}) {
    const virtual = options.deterministic ? new VirtualClock() : null;
    const seeded = options.deterministic ? new SeededRandom(options.deterministic.seed) : null;
    const realtime = virtual ? () => virtual.realtime() : () => BigInt(Date.now()) * 1_000_000n;
    // performance.now is coarse in browsers (5 to 100 us): each read advances at least 1 ns, so the clock strictly increases.
    const monotonic = virtual
      ? () => virtual.monotonic()
      : () => {
          const now = BigInt(Math.round(performance.now() * 1e6));
          this.lastMonotonic = now > this.lastMonotonic ? now : this.lastMonotonic + 1n;
          return this.lastMonotonic;
        };
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
    options.preopens.forEach((path, i) => fds.set(3 + i, new PreopenDirectory(this.fs.mkdirp(path), path)));

    const onCheckpoint = hooks.onCheckpoint;
    const table = createSyscalls({
      fileSettled: onCheckpoint
        ? (file) => {
            // Only the checkpoint folder is searched: this runs at every close and sync.
            const path = this.fs.files(CHECKPOINT_DIR).find((f) => f.inode === file)?.path;
            if (path) onCheckpoint({ path, data: file.bytes().slice() });
          }
        : undefined,
      memory: () => {
        if (!this.memory) throw new WasiError(ERRNO_NOSYS); // called before start()
        return this.memory;
      },
      fs: this.fs,
      fds,
      args: options.args.map((a) => encoder.encode(a)),
      env: options.env.map(([k, v]) => encoder.encode(`${k}=${v}`)),
      budget: new ByteBudget(options.maxOutputFileBytes),
      realtime,
      monotonic,
      sleep: virtual ? (ns) => virtual.sleep(ns) : (ns) => sleepMs(Number(ns) / 1e6),
      randomFill: seeded ? (into) => seeded.fill(into) : (into) => void crypto.getRandomValues(into),
    });
    const onSyscall = hooks.onSyscall;
    this.imports = {
      wasi_snapshot_preview1: onSyscall
        ? Object.fromEntries(
            Object.entries(table).map(([name, call]) => {
              // Named parameters, not a rest parameter (an array allocated per call): see createSyscalls.
              const f = call as (...args: unknown[]) => number | void;
              return [name, (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, g: unknown, h: unknown, i: unknown, j: unknown) => {
                onSyscall();
                return f(a, b, c, d, e, g, h, i, j);
              }];
            }),
          )
        : table,
    };
  }

  /**
   * Runs `_start` of an instance created with `imports`; returns when the program exits (proc_exit,
   * or 0 when _start returns). Traps propagate (WebAssembly.RuntimeError).
   * @throws TypeError when the instance exports no memory or no _start
   */
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
      if (path.startsWith(`${CHECKPOINT_DIR}/`)) continue; // kept by the client, not a result
      const data = inode.bytes();
      const input = this.inputs.get(path);
      if (input && bytesEqual(input, data)) continue;
      out.push({ path, data: data.slice() });
    }
    return out;
  }
}

function normalize(path: string): string {
  return `/${path.split('/').filter((p) => p && p !== '.').join('/')}`;
}
