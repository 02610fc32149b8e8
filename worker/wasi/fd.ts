/**
 * File descriptors. The base class answers every operation with the errno a descriptor of no
 * particular kind gives (BADF for reading and writing bytes, SPIPE for offsets, NOTSUP for the
 * rest); each subclass overrides only what it supports (browser_wasi_shim's habit).
 */
import {
  ERRNO_BADF,
  ERRNO_INVAL,
  ERRNO_ISDIR,
  ERRNO_MFILE,
  ERRNO_NOTSUP,
  ERRNO_SPIPE,
  FDFLAGS_APPEND,
  FILETYPE_CHARACTER_DEVICE,
  RIGHTS_ALL,
  RIGHTS_DIRECTORY,
  RIGHTS_STDIO,
  WHENCE_CUR,
  WHENCE_END,
  WHENCE_SET,
} from './constants.ts';
import { COST, MAX_OPEN_FDS, type ShimBudget } from './budget.ts';
import { DirInode, FileInode, WasiError, type Inode, type MemoryFs } from './fs.ts';

export interface Stat {
  filetype: number;
  ino: bigint;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

export abstract class Fd {
  fdflags = 0;
  rightsBase: bigint;
  rightsInheriting: bigint;
  constructor(rightsBase: bigint, rightsInheriting: bigint) {
    this.rightsBase = rightsBase;
    this.rightsInheriting = rightsInheriting;
  }
  abstract readonly filetype: number;
  read(_into: Uint8Array): number {
    throw new WasiError(ERRNO_BADF);
  }
  write(_data: Uint8Array): number {
    throw new WasiError(ERRNO_BADF);
  }
  pread(_into: Uint8Array, _offset: number): number {
    throw new WasiError(ERRNO_SPIPE);
  }
  pwrite(_data: Uint8Array, _offset: number): number {
    throw new WasiError(ERRNO_SPIPE);
  }
  seek(_offset: bigint, _whence: number): bigint {
    throw new WasiError(ERRNO_SPIPE);
  }
  stat(): Stat {
    return { filetype: this.filetype, ino: 0n, nlink: 1n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n };
  }
  setSize(_size: bigint): void {
    throw new WasiError(ERRNO_NOTSUP);
  }
  allocate(_offset: bigint, _len: bigint): void {
    throw new WasiError(ERRNO_NOTSUP);
  }
  /** The inode behind the descriptor, for filestat_set_times and friends. */
  inode(): Inode | null {
    return null;
  }
  /** Bytes a read could return now, for poll_oneoff's fd_read events. */
  readable(): number {
    return 0;
  }
  /** Nothing ever needs flushing in memory; a descriptor of any kind syncs at once. */
  sync(): void {}
}

/** fd 0: the task's stdin bytes, read once from start to end. */
export class StdinFd extends Fd {
  readonly filetype = FILETYPE_CHARACTER_DEVICE;
  private position = 0;
  constructor(private readonly data: Uint8Array) {
    super(RIGHTS_STDIO, 0n);
  }
  override readable(): number {
    return this.data.length - this.position;
  }
  override read(into: Uint8Array): number {
    const n = Math.min(into.length, this.data.length - this.position);
    into.set(this.data.subarray(this.position, this.position + n));
    this.position += n;
    return n;
  }
}

/**
 * fd 1 and 2: captured output, kept up to a cap; what is past the cap is counted, not kept. One
 * buffer, grown by doubling up to the cap: a program writing a byte per call must not make the
 * host keep an object per call (a million 1-byte writes were 240 MB of heap as separate arrays).
 */
export class OutputFd extends Fd {
  readonly filetype = FILETYPE_CHARACTER_DEVICE;
  private buffer = new Uint8Array(0);
  private kept = 0;
  truncated = false;
  constructor(private readonly cap: number) {
    super(RIGHTS_STDIO, 0n);
  }
  override write(data: Uint8Array): number {
    const room = this.cap - this.kept;
    if (data.length > room) this.truncated = true;
    const keep = data.subarray(0, Math.max(0, room));
    if (keep.length > 0) {
      if (this.kept + keep.length > this.buffer.length) {
        const grown = new Uint8Array(Math.min(this.cap, Math.max(this.kept + keep.length, this.buffer.length * 2, 4096)));
        grown.set(this.buffer.subarray(0, this.kept));
        this.buffer = grown;
      }
      this.buffer.set(keep, this.kept);
      this.kept += keep.length;
    }
    // The program is told everything was written: a capped stream must not make it retry forever.
    return data.length;
  }
  /** What was kept, in a buffer of exactly its size (it goes to the page, and into IndexedDB, whole). */
  bytes(): Uint8Array {
    if (this.buffer.length !== this.kept) this.buffer = this.buffer.slice(0, this.kept);
    return this.buffer;
  }
}

/** A regular file opened by path_open. */
export class OpenFile extends Fd {
  readonly filetype;
  position = 0n;
  constructor(
    readonly file: FileInode,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    private readonly budget: ShimBudget,
    private readonly now: () => bigint,
  ) {
    super(rightsBase, rightsInheriting);
    this.filetype = file.filetype;
    this.fdflags = fdflags;
  }
  override inode(): Inode {
    return this.file;
  }
  override readable(): number {
    return Math.max(0, this.file.length - Number(this.position));
  }
  override read(into: Uint8Array): number {
    const n = this.file.read(Number(this.position), into);
    this.position += BigInt(n);
    return n;
  }
  override pread(into: Uint8Array, offset: number): number {
    return this.file.read(offset, into);
  }
  override write(data: Uint8Array): number {
    if (this.fdflags & FDFLAGS_APPEND) this.position = this.file.size();
    const n = this.pwrite(data, Number(this.position), true);
    this.position += BigInt(n);
    return n;
  }
  override pwrite(data: Uint8Array, offset: number, fromWrite = false): number {
    // POSIX: pwrite on an O_APPEND descriptor appends on Linux; uvwasi follows the host (Linux).
    const at = !fromWrite && this.fdflags & FDFLAGS_APPEND ? this.file.length : offset;
    const end = at + data.length;
    // Also when the length stays: a changed input file comes back whole, so it counts from now on.
    if (end > this.file.length || this.file.pristine) this.budget.resizeFile(this.file, Math.max(end, this.file.length));
    this.file.write(at, data);
    this.file.times.mtim = this.file.times.ctim = this.now();
    return data.length;
  }
  override seek(offset: bigint, whence: number): bigint {
    let base: bigint;
    if (whence === WHENCE_SET) base = 0n;
    else if (whence === WHENCE_CUR) base = this.position;
    else if (whence === WHENCE_END) base = this.file.size();
    else throw new WasiError(ERRNO_INVAL);
    const next = base + offset;
    if (next < 0n) throw new WasiError(ERRNO_INVAL);
    this.position = next;
    return next;
  }
  override stat(): Stat {
    return { filetype: this.filetype, ino: this.file.ino, nlink: this.file.nlink, size: this.file.size(), ...this.file.times };
  }
  override setSize(size: bigint): void {
    const length = size > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(size);
    this.budget.resizeFile(this.file, length);
    this.file.times.mtim = this.file.times.ctim = this.now();
  }
  override allocate(offset: bigint, len: bigint): void {
    const end = offset + len;
    if (end > this.file.size()) this.setSize(end);
  }
}

/** A directory opened by path_open: it takes path_* calls and fd_readdir, no bytes. */
export class OpenDirectory extends Fd {
  readonly filetype;
  constructor(
    readonly dir: DirInode,
    rightsBase: bigint = RIGHTS_DIRECTORY,
    rightsInheriting: bigint = RIGHTS_ALL,
    /**
     * The preopened directory this descriptor was reached from: the top of what its program can
     * name through it, and what fd_readdir's ".." names there (as "/.." is "/").
     */
    readonly top: DirInode = dir,
  ) {
    super(rightsBase, rightsInheriting);
    this.filetype = dir.filetype;
  }
  override inode(): Inode {
    return this.dir;
  }
  override read(): number {
    throw new WasiError(ERRNO_ISDIR);
  }
  override write(): number {
    throw new WasiError(ERRNO_ISDIR);
  }
  override pread(): number {
    throw new WasiError(ERRNO_ISDIR);
  }
  override pwrite(): number {
    throw new WasiError(ERRNO_ISDIR);
  }
  override seek(): bigint {
    throw new WasiError(ERRNO_ISDIR);
  }
  override setSize(): void {
    throw new WasiError(ERRNO_ISDIR);
  }
  override allocate(): void {
    throw new WasiError(ERRNO_ISDIR);
  }
  override stat(): Stat {
    return { filetype: this.filetype, ino: this.dir.ino, nlink: this.dir.nlink, size: this.dir.size(), ...this.dir.times };
  }
}

/** A directory handed to the program before start (fd 3, 4, ...), found by wasi-libc through fd_prestat_get. */
export class PreopenDirectory extends OpenDirectory {
  constructor(
    dir: DirInode,
    /** The guest path it was given under, e.g. "/data" or "/". */
    readonly name: string,
  ) {
    super(dir, RIGHTS_DIRECTORY, RIGHTS_ALL);
  }
}

/**
 * The descriptor table: numbers to descriptors, at most MAX_OPEN_FDS of them, each held against
 * the task's budget (budget.ts). It tells the file system when a descriptor opens or closes on an
 * inode, so a deleted file's bytes stay counted while it is open.
 */
export class FdTable {
  private readonly fds = new Map<number, Fd>();
  constructor(private readonly fs: MemoryFs) {}

  get(n: number): Fd | undefined {
    return this.fds.get(n);
  }
  has(n: number): boolean {
    return this.fds.has(n);
  }

  /** Places a descriptor the manifest brings (stdio, preopens) before the run: granted, as the inputs. */
  place(n: number, fd: Fd): void {
    this.fs.budget.grant(COST.descriptor);
    this.attach(n, fd);
  }

  /** Descriptors reserved by reserve() and not yet opened. */
  private reserved = 0;

  /**
   * Reserves room for one more descriptor, before anything is made for it (POSIX open checks
   * EMFILE first); open() then takes it, or unreserve() gives it back.
   * @throws WasiError MFILE past MAX_OPEN_FDS descriptors, or when the budget has no room for one more
   */
  reserve(): void {
    if (this.fds.size + this.reserved >= MAX_OPEN_FDS) throw new WasiError(ERRNO_MFILE);
    this.fs.budget.hold(COST.descriptor, ERRNO_MFILE);
    this.reserved++;
  }

  unreserve(): void {
    this.reserved--;
    this.fs.budget.release(COST.descriptor);
  }

  /** Gives `fd` the lowest free number from 3 (POSIX open), in the room reserve() made. */
  open(fd: Fd): number {
    this.reserved--;
    let n = 3;
    while (this.fds.has(n)) n++;
    this.attach(n, fd);
    return n;
  }

  /** @throws WasiError BADF for a number that is not open */
  close(n: number): Fd {
    const fd = this.fds.get(n);
    if (!fd) throw new WasiError(ERRNO_BADF);
    this.detach(n, fd);
    return fd;
  }

  /** Moves `from` to `to`, closing what `to` was (fd_renumber). @throws WasiError BADF unless both are open */
  renumber(from: number, to: number): void {
    const fd = this.fds.get(from);
    if (!fd || !this.fds.has(to)) throw new WasiError(ERRNO_BADF);
    if (from === to) return;
    this.detach(to, this.fds.get(to)!);
    this.fds.delete(from);
    this.fds.set(to, fd);
  }

  private attach(n: number, fd: Fd): void {
    this.fds.set(n, fd);
    const inode = fd.inode();
    if (inode) this.fs.opened(inode);
  }

  private detach(n: number, fd: Fd): void {
    this.fds.delete(n);
    this.fs.budget.release(COST.descriptor);
    const inode = fd.inode();
    if (inode) this.fs.closed(inode);
  }
}
