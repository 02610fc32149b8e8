/**
 * What one task may make the shim hold (docs/wasi.md, "What a task can make the shim hold"). A
 * hostile module can ask the host to keep bytes outside its own linear memory, where the memory
 * limit does not reach: file contents, names, symbolic links' targets, directories, descriptors.
 * All of them count against one budget per task, from the manifest's limits (shimBudgetBytes), and
 * the call that would pass it fails: NOSPC (bytes), NAMETOOLONG (a name or target past its
 * POSIX maximum), MFILE (descriptors).
 *
 * Two ledgers:
 * - output: the bytes of every file that would come back as an output file: new files, and input
 *   files once the program changes, renames or links them (then they come back whole). At most
 *   the manifest's outputBytes (FBIG for one file alone, NOSPC for all together). An input file the
 *   program leaves alone costs nothing, and deleting it gives nothing back.
 * - held: everything the shim holds for the program beyond its inputs: file buffers past the input
 *   bytes, plus a cost per inode, directory entry and descriptor. At most shimBudgetBytes.
 * Bytes leave both ledgers only when nothing can reach them any more: a deleted file that is
 * still open keeps its bytes until its last descriptor closes.
 */
import { ERRNO_FBIG, ERRNO_NAMETOOLONG, ERRNO_NOSPC } from './constants.ts';
import { WasiError } from './fs.ts';

/** Longest name of one directory entry, in UTF-8 bytes (Linux's NAME_MAX). */
export const NAME_MAX = 255;
/** Longest symbolic link target, in UTF-8 bytes (Linux's PATH_MAX less its NUL). */
export const SYMLINK_MAX = 4095;
/** Most descriptors open at once, stdio and preopens included (Linux's default RLIMIT_NOFILE). */
export const MAX_OPEN_FDS = 1024;

/**
 * What each thing costs in the held ledger, bytes: at least V8's heap for it, as measured in Node
 * 20 by making 50 000 of each through the import table (test/wasi/budget.test.ts measures again
 * and fails if a figure no longer covers it): an empty file with its entry 441 B, a directory with
 * its entry 422, a symbolic link with its entry 254, a hard link 62. Node's V8 has no pointer
 * compression, so Chromium's objects are smaller still. Names and targets cost two bytes per UTF-16
 * code unit on top (V8 keeps a string in one or two bytes a unit). Descriptors (a few fields each)
 * are too small to measure this way; MAX_OPEN_FDS bounds them besides.
 */
export const COST = {
  file: 384,
  directory: 352,
  symlink: 192,
  entry: 96,
  descriptor: 192,
} as const;

/** Bytes a string can take in V8's heap. */
export const stringCost = (s: string): number => 2 * s.length;

/**
 * The held budget of a task: its output limit (what its files may hold) plus a sixteenth of its
 * memory limit (at least 64 KiB) for the file system's bookkeeping: names, directories, links,
 * descriptors. A task is trusted with memoryBytes of the donor's memory in its linear memory; its
 * bookkeeping in the host gets a small share more, enough for tens of thousands of files.
 */
export function shimBudgetBytes(limits: { memoryBytes: number; outputBytes: number }): number {
  return limits.outputBytes + Math.max(64 * 1024, Math.floor(limits.memoryBytes / 16));
}

/** The parts of a regular file the budget looks at and resizes. */
export interface BudgetedFile {
  readonly length: number;
  readonly capacity: number;
  /** Input bytes the file came with (0 for a file the program made): held by the task's inputs, not charged. */
  readonly baseline: number;
  /** An input file the program has not changed, renamed or linked: it does not come back, so it is not output. */
  pristine: boolean;
  /** Reallocates the file's buffer to `capacity` bytes (never below its length). */
  reserve(capacity: number): void;
  /** Sets the length within the capacity, zero-filling new bytes. */
  setLength(length: number): void;
}

/** How much room a growing file's buffer takes at once, so writes do not copy each time. */
const GROWTH_STEP = 64 * 2 ** 20;

export class ShimBudget {
  /** Bytes of files that would come back as output. */
  output = 0;
  /** Bytes held for the program beyond its inputs. */
  held = 0;

  constructor(
    /** The manifest's outputBytes. */
    readonly outputCap: number,
    /** shimBudgetBytes of the manifest's limits (then the inputs' bookkeeping on top: grant). */
    public heldCap: number,
  ) {}

  /** Holds `bytes` for what the manifest itself brings (inputs, preopens, stdio), raising the cap by as much. */
  grant(bytes: number): void {
    this.heldCap += bytes;
    this.held += bytes;
  }

  /**
   * Takes `bytes` from the held budget.
   * @throws WasiError `errno` (NOSPC unless told) when they do not fit
   */
  hold(bytes: number, errno: number = ERRNO_NOSPC): void {
    if (this.held + bytes > this.heldCap) throw new WasiError(errno);
    this.held += bytes;
  }

  /** Whether `bytes` more would fit now. */
  fits(bytes: number): boolean {
    return this.held + bytes <= this.heldCap;
  }

  release(bytes: number): void {
    this.held -= bytes;
  }

  /**
   * Makes `file` `length` bytes long (zero-filling), as a write or a truncation does; from then on
   * it is output, counted whole.
   * @throws WasiError FBIG when the file alone would pass the output cap, NOSPC when all files
   *   together would or when the held budget has no room for its buffer
   */
  resizeFile(file: BudgetedFile, length: number): void {
    const charged = file.pristine ? 0 : file.length;
    if (!Number.isSafeInteger(length) || length > this.outputCap) throw new WasiError(ERRNO_FBIG);
    if (this.output - charged + length > this.outputCap) throw new WasiError(ERRNO_NOSPC);
    if (length > file.capacity) {
      // The buffer past the input bytes is what the task holds; it grows ahead of the length (to
      // double, by at most GROWTH_STEP) only as far as the held budget has room.
      const heldNow = heldBytesOf(file);
      const most = file.baseline + heldNow + (this.heldCap - this.held);
      if (length > most) throw new WasiError(ERRNO_NOSPC);
      const capacity = Math.min(most, Math.max(length, Math.min(file.capacity * 2, length + GROWTH_STEP)));
      file.reserve(capacity);
      this.held += heldBytesOf(file) - heldNow;
    }
    this.output += length - charged;
    file.pristine = false;
    file.setLength(length);
  }

  /**
   * Counts an input file as output from now on (it was renamed or linked: it will come back).
   * @throws WasiError NOSPC when the output cap has no room for it
   */
  countAsOutput(file: BudgetedFile): void {
    if (!file.pristine) return;
    if (this.output + file.length > this.outputCap) throw new WasiError(ERRNO_NOSPC);
    this.output += file.length;
    file.pristine = false;
  }

  /** Gives back what a file held, once nothing can reach it (no link, no descriptor). */
  forgetFile(file: BudgetedFile): void {
    if (!file.pristine) this.output -= file.length;
    this.held -= heldBytesOf(file) + COST.file;
  }

  /**
   * @throws WasiError NAMETOOLONG when `name` is longer than NAME_MAX bytes
   */
  static checkName(name: string): void {
    if (utf8Length(name) > NAME_MAX) throw new WasiError(ERRNO_NAMETOOLONG);
  }
}

const heldBytesOf = (file: BudgetedFile) => Math.max(0, file.capacity - file.baseline);

/** UTF-8 length of a well-formed string, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a surrogate pair: one code point of four bytes
      i++;
    } else n += 3;
  }
  return n;
}
