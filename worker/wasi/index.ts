/**
 * Dewgrid's WASI preview1 shim: one instance per run, with its own in-memory file system.
 * Runs in a Web Worker and in Node (tests, benchmarks): no DOM, no Node APIs.
 */
import { createSyscalls, ProcExit, releaseSyscalls } from './syscalls.ts';
import { FileInode, MemoryFs, WasiError } from './fs.ts';
import { FdTable, OutputFd, PreopenDirectory, StdinFd } from './fd.ts';
import { ShimBudget } from './budget.ts';
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
   * Bytes the files that would come back as output may hold together (new files, and input files
   * the program changed, renamed or linked); writes past it fail with NOSPC, or FBIG when one file
   * alone would grow past it. Input files left alone do not count, and deleting them frees nothing.
   */
  maxOutputFileBytes: number;
  /**
   * Everything the shim may hold for the program beyond its inputs: file buffers, names, links'
   * targets, directories, descriptors (budget.ts; shimBudgetBytes gives a task's from its
   * manifest). Past it, calls fail with NOSPC or MFILE. Default: maxOutputFileBytes + 16 MiB,
   * the budget of a task with a 256 MiB memory limit.
   */
  maxHeldBytes?: number;
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

/** The module name of WASI preview1's imports. */
export const WASI_MODULE = 'wasi_snapshot_preview1';

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

/**
 * A checkpoint closed sooner than this after the last one kept waits (its bytes as they were) for
 * the program's next close or sync after the interval: a program closing a 1 MiB checkpoint in a
 * loop otherwise handed the page gigabytes a second (docs/protocol.md, "Checkpoints").
 */
export const CHECKPOINT_INTERVAL_MS = 1000;

export class Wasi {
  readonly imports: WasiImports;
  private memory: WebAssembly.Memory | null = null;
  private readonly fs: MemoryFs;
  private readonly stdout: OutputFd;
  private readonly stderr: OutputFd;
  private readonly inputs = new Map<string, Uint8Array>();
  private lastMonotonic = 0n;

  /**
   * @param wrapped the calls `imports` holds, by name (those the module imports), each with the hook
   *   if there is one; by default all. Making every call cost about 0.05-0.1 ms a run, a fifth of a
   *   small program's.
   */
  constructor(options: WasiOptions, hooks: WasiHooks = {}, wrapped?: readonly string[]) {
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
    const budget = new ShimBudget(options.maxOutputFileBytes, options.maxHeldBytes ?? options.maxOutputFileBytes + 16 * 2 ** 20);
    this.fs = new MemoryFs(realtime, budget);
    for (const file of options.files) {
      this.fs.writeFile(file.path, file.data);
      this.inputs.set(normalize(file.path), file.data);
    }
    const fds = new FdTable(this.fs);
    fds.place(0, new StdinFd(options.stdin));
    this.stdout = new OutputFd(options.maxStdoutBytes);
    this.stderr = new OutputFd(options.maxStderrBytes);
    fds.place(1, this.stdout);
    fds.place(2, this.stderr);
    options.preopens.forEach((path, i) => fds.place(3 + i, new PreopenDirectory(this.fs.mkdirp(path), path)));

    const table = createSyscalls({
      fileSettled: hooks.onCheckpoint ? this.checkpointer(hooks.onCheckpoint) : undefined,
      memory: () => {
        if (!this.memory) throw new WasiError(ERRNO_NOSYS); // called before start()
        return this.memory;
      },
      fs: this.fs,
      fds,
      args: options.args.map((a) => encoder.encode(a)),
      env: options.env.map(([k, v]) => encoder.encode(`${k}=${v}`)),
      realtime,
      monotonic,
      sleep: virtual ? (ns) => virtual.sleep(ns) : (ns) => sleepMs(Number(ns) / 1e6),
      randomFill: seeded ? (into) => seeded.fill(into) : (into) => void crypto.getRandomValues(into),
    }, wrapped, hooks.onSyscall);
    this.imports = { wasi_snapshot_preview1: table };
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
    } finally {
      releaseSyscalls();
    }
    return {
      exitCode,
      stdout: this.stdout.bytes(),
      stderr: this.stderr.bytes(),
      files: this.outputFiles(),
      truncated: { stdout: this.stdout.truncated, stderr: this.stderr.truncated },
    };
  }

  /**
   * What runs when the program closes or syncs a file: a file under CHECKPOINT_DIR goes to
   * `keep`, at most once per CHECKPOINT_INTERVAL_MS; one settled sooner is copied as it is and
   * kept at the next close or sync after the interval (the newest copy per path).
   */
  private checkpointer(keep: (file: WasiFile) => void): (file: FileInode) => void {
    let lastKept = -Infinity;
    const waiting = new Map<string, Uint8Array>();
    return (file) => {
      // Only the checkpoint folder is searched: this runs at every close and sync.
      const path = this.fs.files(CHECKPOINT_DIR).find((f) => f.inode === file)?.path;
      if (path) {
        // The waiting copy's buffer is reused while it is large enough: a program closing its
        // checkpoint in a loop must not make a new buffer at each close.
        const bytes = file.bytes();
        const previous = waiting.get(path);
        const copy = previous && previous.buffer.byteLength >= bytes.length ? new Uint8Array(previous.buffer, 0, bytes.length) : new Uint8Array(bytes.length);
        copy.set(bytes);
        waiting.set(path, copy);
      }
      const now = performance.now();
      if (waiting.size === 0 || now - lastKept < CHECKPOINT_INTERVAL_MS) return;
      lastKept = now;
      // Exactly its bytes: the page keeps (and IndexedDB clones) the whole buffer it is given.
      for (const [waitingPath, data] of waiting) keep({ path: waitingPath, data: data.byteLength === data.buffer.byteLength ? data : data.slice() });
      waiting.clear();
    };
  }

  private outputFiles(): WasiFile[] {
    const out: WasiFile[] = [];
    for (const { path, inode } of this.fs.files()) {
      if (path.startsWith(`${CHECKPOINT_DIR}/`)) continue; // kept by the client, not a result
      // An input never written, renamed or linked is still at its path with its bytes: comparing
      // every input at every run cost yosys (318 inputs, 8.5 MB) a fifth of its run time.
      if (inode.pristine) continue;
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
