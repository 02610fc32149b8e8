/**
 * The wasi_snapshot_preview1 import table. Each function follows its witx signature; pointers
 * are offsets into the instance's memory, whose views are made again when it grows (the views kept below).
 * Errors are thrown as WasiError inside and returned as errno at the boundary.
 */
import * as C from './constants.ts';
import { ShimBudget, SYMLINK_MAX } from './budget.ts';
import { FdTable, OpenDirectory, OpenFile, PreopenDirectory, type Fd, type Stat } from './fd.ts';
import { DirInode, FileInode, MAX_PATH_BYTES, MemoryFs, normalizeRelative, SymlinkInode, WasiError, type Inode } from './fs.ts';

/** Thrown by proc_exit through the program's frames; only Wasi.start catches it. Not an Error: no stack to build. */
export class ProcExit {
  constructor(readonly code: number) {}
}

export interface SyscallContext {
  /** A file the program closed or synced: where checkpoints are saved (see Wasi's onFileSettled). */
  fileSettled?(file: FileInode): void;
  memory(): WebAssembly.Memory;
  /** The task's file system, which holds what the program makes against its budget (fs.budget). */
  fs: MemoryFs;
  fds: FdTable;
  args: Uint8Array[];
  env: Uint8Array[];
  /** Realtime clock in ns. */
  realtime(): bigint;
  /** Monotonic clock in ns. */
  monotonic(): bigint;
  /** Blocks the thread for `ns` nanoseconds (poll_oneoff on clocks only): Atomics.wait, never a busy loop. */
  sleep(ns: bigint): void;
  randomFill(into: Uint8Array<ArrayBuffer>): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const MAX_IOVS = 1024;

/**
 * The context of the call running now: each call made by createSyscalls sets its own before it
 * runs. The calls and their helpers below are made once per thread, not once per run: making them
 * for each run was a fifth of a small program's time in a worker (docs/benchmarks.md, "(l) peers").
 * A call never makes another shim's call, so nothing else can change it while one runs.
 */
let ctx: SyscallContext;

/**
 * The views of the memory the last call used, kept while they are valid and until the run ends
 * (releaseSyscalls): made afresh on every call, they were a third of a cheap call's cost in Firefox
 * and Chromium (docs/benchmarks.md, "(l) peers"). Growing a memory detaches its old buffer, whose
 * views then read 0 bytes long; a shared memory's buffer does not detach (its views keep their old
 * length), so one is never kept.
 */
const NO_MEMORY = new ArrayBuffer(0);
const NO_VIEW = new DataView(NO_MEMORY);
const NO_BYTES = new Uint8Array(NO_MEMORY);
let viewedMemory: WebAssembly.Memory | null = null;
let memoryView = NO_VIEW;
let memoryBytes = NO_BYTES;
let memoryBuffer: ArrayBufferLike = NO_MEMORY;
const refreshViews = (memory: WebAssembly.Memory) => {
  const buffer = memory.buffer;
  viewedMemory = buffer instanceof ArrayBuffer ? memory : null;
  memoryView = new DataView(buffer);
  memoryBytes = new Uint8Array(buffer);
  memoryBuffer = buffer;
};
const view = (): DataView => {
  const memory = ctx.memory();
  if (memory !== viewedMemory || memoryBytes.length === 0) refreshViews(memory);
  return memoryView;
};
const bytes = (ptr: number, len: number) => {
  const memory = ctx.memory();
  if (memory !== viewedMemory || memoryBytes.length === 0) refreshViews(memory);
  if (ptr < 0 || len < 0 || ptr + len > memoryBytes.length) throw new WasiError(C.ERRNO_FAULT);
  return new Uint8Array(memoryBuffer, ptr, len);
};
const fdOf = (fd: number): Fd => {
  const found = ctx.fds.get(fd);
  if (!found) throw new WasiError(C.ERRNO_BADF);
  return found;
};
/** The descriptor, if it holds `rights` (uvwasi checks rights before anything else). */
const fdWith = (fd: number, rights: bigint): Fd => {
  const found = fdOf(fd);
  need(found, rights);
  return found;
};
/**
 * The directory a path call works in, if its base rights allow the call: a directory fd whose
 * rights were dropped (fd_fdstat_set_rights, or a narrow path_open) must not do what they no
 * longer grant. Rights come first, as in uvwasi: a file fd, which holds no path rights, is NOTCAPABLE.
 */
const dirWith = (fd: number, rights: bigint): OpenDirectory => {
  const found = fdWith(fd, rights);
  // Not reached while files and stdio hold no path rights; kept so no other kind is taken for a directory.
  if (!(found instanceof OpenDirectory)) throw new WasiError(C.ERRNO_NOTDIR);
  return found;
};
const need = (fd: Fd, rights: bigint) => {
  if ((fd.rightsBase & rights) !== rights) throw new WasiError(C.ERRNO_NOTCAPABLE);
};
const pathAt = (ptr: number, len: number): string => {
  if (len > MAX_PATH_BYTES) throw new WasiError(C.ERRNO_NAMETOOLONG); // PATH_MAX: not even decoded
  try {
    return decoder.decode(bytes(ptr, len));
  } catch (error) {
    if (error instanceof WasiError) throw error;
    throw new WasiError(C.ERRNO_INVAL); // not UTF-8: uvwasi cannot name such a path either
  }
};
/**
 * Checks the `count` iovecs at `ptr` before a call reads or writes any (one outside memory fails
 * it whole), and takes each one's place and length then, for the calls that take them one at a
 * time: fd_read, fd_write, fd_pread and fd_pwrite (an array of views for each call cost the cheap
 * calls, docs/benchmarks.md "(l) peers"). Taken up front as readv(2) and uvwasi do: a read into a
 * buffer that holds the iovec array itself must not change where the later iovecs go.
 */
const iovTaken = new Uint32Array(2 * MAX_IOVS);
const checkIovecs = (v: DataView, ptr: number, count: number) => {
  if (count > MAX_IOVS) throw new WasiError(C.ERRNO_INVAL);
  for (let i = 0; i < count; i++) {
    const at = v.getUint32(ptr + i * 8, true);
    const len = v.getUint32(ptr + i * 8 + 4, true);
    if (at + len > memoryBytes.length) throw new WasiError(C.ERRNO_FAULT);
    iovTaken[2 * i] = at;
    iovTaken[2 * i + 1] = len;
  }
};
/** The `i`th iovec that checkIovecs took, as a view of the memory. */
const iovAt = (i: number) => new Uint8Array(memoryBuffer, iovTaken[2 * i]!, iovTaken[2 * i + 1]!);
const writeStat = (ptr: number, stat: Stat) => {
  const v = view();
  bytes(ptr, 64).fill(0);
  v.setBigUint64(ptr, 0n, true); // dev
  v.setBigUint64(ptr + 8, stat.ino, true);
  v.setUint8(ptr + 16, stat.filetype);
  v.setBigUint64(ptr + 24, stat.nlink, true);
  v.setBigUint64(ptr + 32, stat.size, true);
  v.setBigUint64(ptr + 40, stat.atim, true);
  v.setBigUint64(ptr + 48, stat.mtim, true);
  v.setBigUint64(ptr + 56, stat.ctim, true);
};
const statOf = (inode: Inode): Stat => ({ filetype: inode.filetype, ino: inode.ino, nlink: inode.nlink, size: inode.size(), ...inode.times });
const setTimes = (inode: Inode, atim: bigint, mtim: bigint, flags: number) => {
  if ((flags & C.FSTFLAGS_ATIM && flags & C.FSTFLAGS_ATIM_NOW) || (flags & C.FSTFLAGS_MTIM && flags & C.FSTFLAGS_MTIM_NOW)) {
    throw new WasiError(C.ERRNO_INVAL);
  }
  const now = ctx.realtime();
  if (flags & C.FSTFLAGS_ATIM) inode.times.atim = atim;
  else if (flags & C.FSTFLAGS_ATIM_NOW) inode.times.atim = now;
  if (flags & C.FSTFLAGS_MTIM) inode.times.mtim = mtim;
  else if (flags & C.FSTFLAGS_MTIM_NOW) inode.times.mtim = now;
  inode.times.ctim = now;
};
const writeStrings = (list: Uint8Array[], ptrsPtr: number, bufPtr: number) => {
  const v = view();
  let at = bufPtr;
  list.forEach((item, i) => {
    v.setUint32(ptrsPtr + i * 4, at, true);
    bytes(at, item.length + 1).set([...item, 0]);
    at += item.length + 1;
  });
};
const sizes = (list: Uint8Array[], countPtr: number, sizePtr: number) => {
  const v = view();
  v.setUint32(countPtr, list.length, true);
  v.setUint32(sizePtr, list.reduce((n, s) => n + s.length + 1, 0), true);
};
/** BADF for a closed fd, INVAL for an open one that is not a preopen (uvwasi; wasi-libc stops its scan at BADF). */
const preopenOf = (fd: number): PreopenDirectory => {
  const found = fdOf(fd);
  if (!(found instanceof PreopenDirectory)) throw new WasiError(C.ERRNO_INVAL);
  return found;
};

/** What path_open opens (or makes) for the program, as a descriptor not yet numbered. */
const openAt = (dir: OpenDirectory, dirflags: number, pathPtr: number, pathLen: number, oflags: number, rightsBase: bigint, rightsInheriting: bigint, fdflags: number): Fd => {
  // A capability can only be handed down, never widened: asking for rights the directory may not
  // pass on is NOTCAPABLE (as uvwasi), not a silent downgrade.
  if (((rightsBase | rightsInheriting) & ~dir.rightsInheriting) !== 0n) throw new WasiError(C.ERRNO_NOTCAPABLE);
  const path = pathAt(pathPtr, pathLen);
  const follow = (dirflags & C.LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0;
  let { parent, name, inode } = ctx.fs.resolve(dir.dir, path, follow);
  if (inode && oflags & C.OFLAGS_CREAT && oflags & C.OFLAGS_EXCL) throw new WasiError(C.ERRNO_EXIST);
  if (inode instanceof SymlinkInode) throw new WasiError(C.ERRNO_LOOP); // O_NOFOLLOW on a link
  const wantsWrite = (rightsBase & (C.RIGHTS_FD_WRITE | C.RIGHTS_FD_ALLOCATE | C.RIGHTS_FD_FILESTAT_SET_SIZE)) !== 0n;
  if (!inode) {
    if (!(oflags & C.OFLAGS_CREAT)) throw new WasiError(C.ERRNO_NOENT);
    if (oflags & C.OFLAGS_DIRECTORY) throw new WasiError(C.ERRNO_INVAL);
    if (path.endsWith('/')) throw new WasiError(C.ERRNO_ISDIR);
    inode = ctx.fs.newFile();
    ctx.fs.addEntry(parent, name, inode, true);
  }
  const base = rightsBase;
  const inheriting = rightsInheriting;
  let opened: Fd;
  if (inode instanceof DirInode) {
    // A directory is never opened for writing, O_DIRECTORY or not (open(2): EISDIR for O_WRONLY or O_RDWR).
    if (oflags & C.OFLAGS_TRUNC || wantsWrite) throw new WasiError(C.ERRNO_ISDIR);
    opened = new OpenDirectory(inode, base & C.RIGHTS_DIRECTORY, inheriting, dir.top);
  } else {
    if (oflags & C.OFLAGS_DIRECTORY) throw new WasiError(C.ERRNO_NOTDIR);
    const file = inode as FileInode;
    if (oflags & C.OFLAGS_TRUNC) {
      ctx.fs.budget.resizeFile(file, 0);
      file.times.mtim = file.times.ctim = ctx.realtime();
    }
    opened = new OpenFile(file, base & C.RIGHTS_REGULAR_FILE, inheriting, fdflags & 0x1f, ctx.fs.budget, ctx.realtime);
  }
  return opened;
};

const table: Record<string, (...args: never[]) => void> = {
  args_get: (argv: number, buf: number) => writeStrings(ctx.args, argv, buf),
  args_sizes_get: (count: number, size: number) => sizes(ctx.args, count, size),
  environ_get: (environ: number, buf: number) => writeStrings(ctx.env, environ, buf),
  environ_sizes_get: (count: number, size: number) => sizes(ctx.env, count, size),

  clock_res_get(id: number, resPtr: number) {
    if (id < 0 || id > 3) throw new WasiError(C.ERRNO_INVAL);
    view().setBigUint64(resPtr, 1000n, true);
  },
  clock_time_get(id: number, _precision: bigint, timePtr: number) {
    if (id === C.CLOCKID_REALTIME) view().setBigUint64(timePtr, ctx.realtime(), true);
    else if (id >= 1 && id <= 3) view().setBigUint64(timePtr, ctx.monotonic(), true);
    else throw new WasiError(C.ERRNO_INVAL);
  },

  fd_advise(fd: number, _offset: bigint, _len: bigint, advice: number) {
    const f = fdWith(fd, C.RIGHTS_FD_ADVISE);
    if (advice > C.ADVICE_NOREUSE) throw new WasiError(C.ERRNO_INVAL);
    if (!(f instanceof OpenFile)) throw new WasiError(C.ERRNO_SPIPE);
  },
  fd_allocate: (fd: number, offset: bigint, len: bigint) => fdWith(fd, C.RIGHTS_FD_ALLOCATE).allocate(offset, len),
  fd_close(fd: number) {
    const f = ctx.fds.close(fd);
    if (f instanceof OpenFile) ctx.fileSettled?.(f.file);
  },
  fd_datasync(fd: number) {
    const f = fdOf(fd);
    f.sync();
    if (f instanceof OpenFile) ctx.fileSettled?.(f.file);
  },
  fd_sync(fd: number) {
    const f = fdOf(fd);
    f.sync();
    if (f instanceof OpenFile) ctx.fileSettled?.(f.file);
  },
  fd_fdstat_get(fd: number, ptr: number) {
    const f = fdOf(fd);
    const v = view();
    bytes(ptr, 24).fill(0);
    v.setUint8(ptr, f.filetype);
    v.setUint16(ptr + 2, f.fdflags, true);
    v.setBigUint64(ptr + 8, f.rightsBase, true);
    v.setBigUint64(ptr + 16, f.rightsInheriting, true);
  },
  fd_fdstat_set_flags(fd: number, flags: number) {
    const f = fdWith(fd, C.RIGHTS_FD_FDSTAT_SET_FLAGS);
    if (flags & ~0x1f) throw new WasiError(C.ERRNO_INVAL);
    f.fdflags = flags;
  },
  fd_fdstat_set_rights(fd: number, base: bigint, inheriting: bigint) {
    const f = fdOf(fd);
    // Rights may only shrink (witx: "can only remove rights").
    if ((base & ~f.rightsBase) !== 0n || (inheriting & ~f.rightsInheriting) !== 0n) throw new WasiError(C.ERRNO_NOTCAPABLE);
    f.rightsBase = base;
    f.rightsInheriting = inheriting;
  },
  fd_filestat_get: (fd: number, ptr: number) => writeStat(ptr, fdWith(fd, C.RIGHTS_FD_FILESTAT_GET).stat()),
  fd_filestat_set_size: (fd: number, size: bigint) => fdWith(fd, C.RIGHTS_FD_FILESTAT_SET_SIZE).setSize(size),
  fd_filestat_set_times(fd: number, atim: bigint, mtim: bigint, flags: number) {
    const inode = fdWith(fd, C.RIGHTS_FD_FILESTAT_SET_TIMES).inode();
    if (!inode) throw new WasiError(C.ERRNO_NOTSUP);
    setTimes(inode, atim, mtim, flags);
  },
  fd_pread(fd: number, iovs: number, count: number, offset: bigint, nreadPtr: number) {
    // Reading at an offset is a read and a seek: both rights (as uvwasi).
    const f = fdWith(fd, C.RIGHTS_FD_READ | C.RIGHTS_FD_SEEK);
    checkIovecs(view(), iovs, count);
    let total = 0;
    for (let i = 0; i < count; i++) {
      const iov = iovAt(i);
      const n = f.pread(iov, Number(offset) + total);
      total += n;
      if (n < iov.length) break;
    }
    view().setUint32(nreadPtr, total, true);
  },
  fd_pwrite(fd: number, iovs: number, count: number, offset: bigint, nwrittenPtr: number) {
    const f = fdWith(fd, C.RIGHTS_FD_WRITE | C.RIGHTS_FD_SEEK);
    checkIovecs(view(), iovs, count);
    let total = 0;
    for (let i = 0; i < count; i++) total += f.pwrite(iovAt(i), Number(offset) + total);
    view().setUint32(nwrittenPtr, total, true);
  },
  fd_read(fd: number, iovs: number, count: number, nreadPtr: number) {
    const f = fdWith(fd, C.RIGHTS_FD_READ);
    const v = view();
    checkIovecs(v, iovs, count);
    let total = 0;
    for (let i = 0; i < count; i++) {
      const iov = iovAt(i);
      const n = f.read(iov);
      total += n;
      if (n < iov.length) break;
    }
    v.setUint32(nreadPtr, total, true);
  },
  fd_write(fd: number, iovs: number, count: number, nwrittenPtr: number) {
    const f = fdWith(fd, C.RIGHTS_FD_WRITE);
    const v = view();
    checkIovecs(v, iovs, count);
    let total = 0;
    for (let i = 0; i < count; i++) total += f.write(iovAt(i));
    v.setUint32(nwrittenPtr, total, true);
  },
  fd_prestat_get(fd: number, ptr: number) {
    const f = preopenOf(fd);
    const v = view();
    v.setUint8(ptr, C.PREOPENTYPE_DIR);
    v.setUint32(ptr + 4, encoder.encode(f.name).length, true);
  },
  fd_prestat_dir_name(fd: number, ptr: number, len: number) {
    const name = encoder.encode(preopenOf(fd).name);
    if (len < name.length) throw new WasiError(C.ERRNO_NAMETOOLONG);
    bytes(ptr, name.length).set(name);
  },
  fd_readdir(fd: number, buf: number, bufLen: number, cookie: bigint, bufusedPtr: number) {
    const f = fdWith(fd, C.RIGHTS_FD_READDIR);
    if (!(f instanceof OpenDirectory)) throw new WasiError(C.ERRNO_NOTDIR);
    const dir = f.dir;
    // "." (the directory itself) and ".." first, then the names in sorted order, so a listing never
    // depends on the order files were made (the suite and POSIX readdir list both dot entries;
    // uvwasi leaves them out, docs/wasi.md). ".." is the parent, except at the top of what the
    // descriptor reaches (its preopen, or "/"), where it is the directory itself, as "/.." is "/".
    // A removed directory lists nothing: its "." and ".." went with it.
    const parent = dir !== f.top && dir.parent && ctx.fs.isWithin(dir.parent, f.top) ? dir.parent : dir;
    const entries: [string, Inode][] =
      dir.nlink === 0n ? [] : [['.', dir], ['..', parent], ...dir.sortedNames().map((name): [string, Inode] => [name, dir.entries.get(name)!])];
    // The cookie is an index into that list; an entry's d_next is the next index, so a listing
    // resumed from any entry's d_next goes on with the entry after it.
    const out = bytes(buf, bufLen);
    let used = 0;
    for (let i = Number(cookie); i < entries.length && used < bufLen; i++) {
      const [name, inode] = entries[i]!;
      const nameBytes = encoder.encode(name);
      // dirent: d_next u64 @0, d_ino u64 @8, d_namlen u32 @16, d_type u8 @20 (3 bytes padding), then the name (not NUL-terminated).
      const entry = new Uint8Array(C.SIZEOF_DIRENT + nameBytes.length);
      const ev = new DataView(entry.buffer);
      ev.setBigUint64(0, BigInt(i + 1), true);
      ev.setBigUint64(8, inode.ino, true);
      ev.setUint32(16, nameBytes.length, true);
      ev.setUint8(20, inode.filetype);
      entry.set(nameBytes, C.SIZEOF_DIRENT);
      // witx: a last entry that does not fit is cut short; a full buffer tells the caller to ask again with a bigger one.
      const n = Math.min(entry.length, bufLen - used);
      out.set(entry.subarray(0, n), used);
      used += n;
    }
    view().setUint32(bufusedPtr, used, true);
  },
  fd_renumber: (from: number, to: number) => ctx.fds.renumber(from, to),
  fd_seek(fd: number, offset: bigint, whence: number, newOffsetPtr: number) {
    const f = fdWith(fd, whence === C.WHENCE_CUR && offset === 0n ? C.RIGHTS_FD_TELL : C.RIGHTS_FD_SEEK);
    view().setBigUint64(newOffsetPtr, f.seek(offset, whence), true);
  },
  fd_tell(fd: number, ptr: number) {
    view().setBigUint64(ptr, fdWith(fd, C.RIGHTS_FD_TELL).seek(0n, C.WHENCE_CUR), true);
  },

  path_create_directory(fd: number, pathPtr: number, pathLen: number) {
    const { parent, name, inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_CREATE_DIRECTORY).dir, pathAt(pathPtr, pathLen), false);
    if (inode) throw new WasiError(C.ERRNO_EXIST);
    ctx.fs.addEntry(parent, name, ctx.fs.newDirectory(parent), true);
  },
  path_filestat_get(fd: number, flags: number, pathPtr: number, pathLen: number, ptr: number) {
    const { inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_FILESTAT_GET).dir, pathAt(pathPtr, pathLen), (flags & C.LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
    if (!inode) throw new WasiError(C.ERRNO_NOENT);
    writeStat(ptr, statOf(inode));
  },
  path_filestat_set_times(fd: number, flags: number, pathPtr: number, pathLen: number, atim: bigint, mtim: bigint, fstFlags: number) {
    const { inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_FILESTAT_SET_TIMES).dir, pathAt(pathPtr, pathLen), (flags & C.LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
    if (!inode) throw new WasiError(C.ERRNO_NOENT);
    setTimes(inode, atim, mtim, fstFlags);
  },
  path_link(oldFd: number, oldFlags: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number) {
    const oldDir = dirWith(oldFd, C.RIGHTS_PATH_LINK_SOURCE);
    const newDir = dirWith(newFd, C.RIGHTS_PATH_LINK_TARGET);
    const source = ctx.fs.resolve(oldDir.dir, pathAt(oldPtr, oldLen), (oldFlags & C.LOOKUPFLAGS_SYMLINK_FOLLOW) !== 0);
    if (!source.inode) throw new WasiError(C.ERRNO_NOENT);
    if (source.inode instanceof DirInode) throw new WasiError(C.ERRNO_PERM); // Linux: no hard links to directories
    const newPath = pathAt(newPtr, newLen);
    const target = ctx.fs.resolve(newDir.dir, newPath, false);
    if (target.inode) throw new WasiError(C.ERRNO_EXIST);
    // A trailing slash asks for a directory, and a new hard link never is one (linkat(2): ENOENT).
    if (newPath.endsWith('/')) throw new WasiError(C.ERRNO_NOENT);
    ShimBudget.checkName(target.name);
    // An input file reached by a new name comes back as output under it.
    if (source.inode instanceof FileInode) ctx.fs.budget.countAsOutput(source.inode);
    ctx.fs.addEntry(target.parent, target.name, source.inode, false);
    source.inode.nlink++;
    source.inode.times.ctim = ctx.realtime();
  },
  path_open(
    fd: number,
    dirflags: number,
    pathPtr: number,
    pathLen: number,
    oflags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    openedFdPtr: number,
  ) {
    // As uvwasi: opening needs PATH_OPEN, creating PATH_CREATE_FILE, truncating PATH_FILESTAT_SET_SIZE.
    let needed = C.RIGHTS_PATH_OPEN;
    if (oflags & C.OFLAGS_CREAT) needed |= C.RIGHTS_PATH_CREATE_FILE;
    if (oflags & C.OFLAGS_TRUNC) needed |= C.RIGHTS_PATH_FILESTAT_SET_SIZE;
    const dir = dirWith(fd, needed);
    ctx.fds.reserve(); // EMFILE before anything is made, as open(2)
    let fdNumber: number;
    try {
      fdNumber = ctx.fds.open(openAt(dir, dirflags, pathPtr, pathLen, oflags, rightsBase, rightsInheriting, fdflags));
    } catch (error) {
      ctx.fds.unreserve();
      throw error;
    }
    view().setUint32(openedFdPtr, fdNumber, true);
  },
  path_readlink(fd: number, pathPtr: number, pathLen: number, buf: number, bufLen: number, bufusedPtr: number) {
    const { inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_READLINK).dir, pathAt(pathPtr, pathLen), false);
    if (!inode) throw new WasiError(C.ERRNO_NOENT);
    if (!(inode instanceof SymlinkInode)) throw new WasiError(C.ERRNO_INVAL);
    // POSIX readlink: as many bytes of the target as fit (no NUL), and their count; a buffer too
    // small gets the first bufLen bytes, an empty one none (0, not an error: POSIX defines no
    // errno for it, Linux's EINVAL aside). The caller knows the path may be cut when the count
    // equals bufLen. uvwasi answers NOBUFS instead (docs/wasi.md).
    const target = encoder.encode(inode.target).subarray(0, bufLen);
    bytes(buf, target.length).set(target);
    view().setUint32(bufusedPtr, target.length, true);
  },
  path_remove_directory(fd: number, pathPtr: number, pathLen: number) {
    const { parent, name, inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_REMOVE_DIRECTORY).dir, pathAt(pathPtr, pathLen), false);
    if (!inode) throw new WasiError(C.ERRNO_NOENT);
    if (!(inode instanceof DirInode)) throw new WasiError(C.ERRNO_NOTDIR);
    if (inode.entries.size > 0) throw new WasiError(C.ERRNO_NOTEMPTY);
    if (name === '.') throw new WasiError(C.ERRNO_BUSY); // the fd's own directory
    ctx.fs.removeEntry(parent, name);
  },
  path_rename(oldFd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number) {
    const oldDir = dirWith(oldFd, C.RIGHTS_PATH_RENAME_SOURCE);
    const newDir = dirWith(newFd, C.RIGHTS_PATH_RENAME_TARGET);
    const from = ctx.fs.resolve(oldDir.dir, pathAt(oldPtr, oldLen), false);
    const newPath = pathAt(newPtr, newLen);
    const to = ctx.fs.resolve(newDir.dir, newPath, false);
    if (!from.inode) throw new WasiError(C.ERRNO_NOENT);
    // A trailing slash on a new name asks for a directory, which a file cannot become (rename(2): ENOTDIR).
    if (!to.inode && newPath.endsWith('/') && !(from.inode instanceof DirInode)) throw new WasiError(C.ERRNO_NOTDIR);
    if (from.name === '.' || to.name === '.') throw new WasiError(C.ERRNO_INVAL);
    if (from.inode === to.inode) return;
    if (from.inode instanceof DirInode) {
      if (to.inode && !(to.inode instanceof DirInode)) throw new WasiError(C.ERRNO_NOTDIR);
      if (to.inode instanceof DirInode && to.inode.entries.size > 0) throw new WasiError(C.ERRNO_NOTEMPTY);
      if (ctx.fs.isWithin(to.parent, from.inode)) throw new WasiError(C.ERRNO_INVAL); // into itself
    } else if (to.inode instanceof DirInode) {
      throw new WasiError(C.ERRNO_ISDIR);
    }
    ShimBudget.checkName(to.name);
    // An input file under a new name comes back as output under it.
    if (from.inode instanceof FileInode) ctx.fs.budget.countAsOutput(from.inode);
    ctx.fs.moveEntry(from.parent, from.name, to.parent, to.name);
    if (from.inode instanceof DirInode) from.inode.parent = to.parent;
    from.inode.times.ctim = ctx.realtime();
  },
  path_symlink(oldPtr: number, oldLen: number, fd: number, newPtr: number, newLen: number) {
    // Checked before the target is even decoded: the host keeps every target it accepts.
    if (oldLen > SYMLINK_MAX) throw new WasiError(C.ERRNO_NAMETOOLONG);
    const target = pathAt(oldPtr, oldLen);
    const linkPath = pathAt(newPtr, newLen);
    const { parent, name, inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_SYMLINK).dir, linkPath, false);
    if (inode) throw new WasiError(C.ERRNO_EXIST);
    // A trailing slash asks for a directory, and a new link never is one (symlinkat(2): ENOENT).
    if (linkPath.endsWith('/')) throw new WasiError(C.ERRNO_NOENT);
    // As uvwasi: a target that is absolute, or climbs above the fd's directory from where the link sits, is refused.
    normalizeRelative([...normalizeRelative(linkPath).slice(0, -1), target].join('/'));
    ctx.fs.addEntry(parent, name, ctx.fs.newSymlink(target), true);
  },
  path_unlink_file(fd: number, pathPtr: number, pathLen: number) {
    const path = pathAt(pathPtr, pathLen);
    const { parent, name, inode } = ctx.fs.resolve(dirWith(fd, C.RIGHTS_PATH_UNLINK_FILE).dir, path, false);
    if (!inode) throw new WasiError(C.ERRNO_NOENT);
    if (inode instanceof DirInode) throw new WasiError(C.ERRNO_ISDIR);
    if (path.endsWith('/')) throw new WasiError(C.ERRNO_NOTDIR);
    ctx.fs.removeEntry(parent, name);
  },

  poll_oneoff(inPtr: number, outPtr: number, count: number, neventsPtr: number) {
    if (count === 0) throw new WasiError(C.ERRNO_INVAL);
    const v = view();
    const events: { userdata: bigint; error: number; type: number; nbytes: bigint }[] = [];
    const clocks: { userdata: bigint; ns: bigint }[] = [];
    for (let i = 0; i < count; i++) {
      const sub = inPtr + i * 48;
      const userdata = v.getBigUint64(sub, true);
      const tag = v.getUint8(sub + 8);
      if (tag === C.EVENTTYPE_CLOCK) {
        const id = v.getUint32(sub + 16, true);
        const timeout = v.getBigUint64(sub + 24, true);
        const flags = v.getUint16(sub + 40, true);
        if (id > 3) {
          events.push({ userdata, error: C.ERRNO_INVAL, type: tag, nbytes: 0n });
          continue;
        }
        const now = id === C.CLOCKID_REALTIME ? ctx.realtime() : ctx.monotonic();
        const ns = flags & C.SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME ? (timeout > now ? timeout - now : 0n) : timeout;
        clocks.push({ userdata, ns });
      } else if (tag === C.EVENTTYPE_FD_READ || tag === C.EVENTTYPE_FD_WRITE) {
        const fd = ctx.fds.get(v.getUint32(sub + 16, true));
        // Every descriptor here is always ready: reads never block on in-memory bytes.
        let nbytes = 0n;
        if (fd && tag === C.EVENTTYPE_FD_READ) nbytes = BigInt(fd.readable());
        events.push({ userdata, error: fd ? C.ERRNO_SUCCESS : C.ERRNO_BADF, type: tag, nbytes });
      } else {
        throw new WasiError(C.ERRNO_INVAL);
      }
    }
    if (events.length === 0 && clocks.length > 0) {
      // Only clocks: really sleep until the earliest fires. The worker stays stoppable: the page
      // cancels a run by terminating the worker, which ends a wait too.
      const sleepNs = clocks.reduce((a, b) => (b.ns < a.ns ? b : a)).ns;
      ctx.sleep(sleepNs);
      for (const c of clocks) if (c.ns <= sleepNs) events.push({ userdata: c.userdata, error: C.ERRNO_SUCCESS, type: C.EVENTTYPE_CLOCK, nbytes: 0n });
    }
    for (const [i, e] of events.entries()) {
      const at = outPtr + i * 32;
      bytes(at, 32).fill(0);
      v.setBigUint64(at, e.userdata, true);
      v.setUint16(at + 8, e.error, true);
      v.setUint8(at + 10, e.type);
      v.setBigUint64(at + 16, e.nbytes, true);
    }
    v.setUint32(neventsPtr, events.length, true);
  },
  proc_exit(code: number) {
    throw new ProcExit(code);
  },
  proc_raise() {
    throw new WasiError(C.ERRNO_NOTSUP); // no signals
  },
  sched_yield() {},
  random_get(buf: number, len: number) {
    const out = bytes(buf, len);
    // getRandomValues fills at most 65536 bytes a call.
    for (let at = 0; at < len; at += 65536) {
      const chunk = new Uint8Array(Math.min(65536, len - at));
      ctx.randomFill(chunk);
      out.set(chunk, at);
    }
  },
  // No network: a bad descriptor is BADF, any other descriptor is not a socket.
  sock_accept: (fd: number) => void (fdOf(fd), fail(C.ERRNO_NOTSOCK)),
  sock_recv: (fd: number) => void (fdOf(fd), fail(C.ERRNO_NOTSOCK)),
  sock_send: (fd: number) => void (fdOf(fd), fail(C.ERRNO_NOTSOCK)),
  sock_shutdown: (fd: number) => void (fdOf(fd), fail(C.ERRNO_NOTSOCK)),
};

/** What the calls refer to between runs: nothing of a task. */
const NO_CONTEXT = {} as SyscallContext;

/**
 * Lets go of the shim whose run ended: the context of its last call and the views of its memory.
 * Kept, they held the finished task's memory and files in an idle worker until its next call.
 */
export function releaseSyscalls(): void {
  ctx = NO_CONTEXT;
  viewedMemory = null;
  memoryView = NO_VIEW;
  memoryBytes = NO_BYTES;
  memoryBuffer = NO_MEMORY;
}

/**
 * The import table for one shim's context.
 * @param names the calls to make, by name (those the module imports; names that are not preview1
 *   calls left out); by default all.
 * @param onSyscall called at the start of every call made: where throttling and pausing take hold.
 */
export function createSyscalls(context: SyscallContext, names?: readonly string[], onSyscall?: () => void): Record<string, (...args: never[]) => number | void> {
  const exported: Record<string, (...args: never[]) => number | void> = {};
  for (const name of names ?? C.PREVIEW1_FUNCTIONS) {
    if (!PREVIEW1.has(name)) continue;
    const call = table[name];
    if (!call) {
      exported[name] = onSyscall ? () => (onSyscall(), C.ERRNO_NOSYS) : () => C.ERRNO_NOSYS; // no context to set
      continue;
    }
    if (name === 'proc_exit') {
      const exit = call as (code: number) => void;
      exported[name] = (code: number) => {
        ctx = context;
        if (onSyscall !== undefined) onSyscall();
        exit(code);
      };
      continue;
    }
    // Nine named parameters (path_open's count, the most a preview1 call takes), not a rest
    // parameter: that allocated an array on every system call. Unused ones are undefined. The hook
    // is called here, not in a wrapper of its own: one closure a call, and one frame.
    const f = call as (...args: unknown[]) => void;
    exported[name] = ((a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, g: unknown, h: unknown, i: unknown, j: unknown) => {
      ctx = context;
      if (onSyscall !== undefined) onSyscall();
      try {
        f(a, b, c, d, e, g, h, i, j);
        return C.ERRNO_SUCCESS;
      } catch (error) {
        if (error instanceof WasiError) return error.errno;
        if (error instanceof RangeError) return C.ERRNO_FAULT; // a pointer outside memory
        throw error;
      }
    }) as (...args: never[]) => number;
  }
  return exported;
}

const PREVIEW1: ReadonlySet<string> = new Set(C.PREVIEW1_FUNCTIONS);

function fail(errno: number): never {
  throw new WasiError(errno);
}
