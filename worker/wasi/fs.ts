/**
 * The per-task in-memory file system: one tree rooted at "/", so a preopen at "/" and preopens
 * at deeper paths all see the same files. Paths given to the program resolve relative to a
 * directory inode and may never climb above it (ERRNO_NOTCAPABLE), as in uvwasi. Every entry,
 * inode and byte the program makes is held against the task's budget (budget.ts).
 */
import { COST, ShimBudget, stringCost, SYMLINK_MAX, utf8Length, type BudgetedFile } from './budget.ts';
import {
  ERRNO_EXIST,
  ERRNO_INVAL,
  ERRNO_LOOP,
  ERRNO_NAMETOOLONG,
  ERRNO_NOENT,
  ERRNO_NOTCAPABLE,
  ERRNO_NOTDIR,
  FILETYPE_DIRECTORY,
  FILETYPE_REGULAR_FILE,
  FILETYPE_SYMBOLIC_LINK,
} from './constants.ts';

export class WasiError extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

export interface Times {
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

abstract class InodeBase {
  nlink = 1n;
  /** Descriptors open on it: a file deleted while open keeps its bytes until the last one closes. */
  opens = 0;
  times: Times;
  /** @param ino from the file system's own count (MemoryFs.newFile and the like), as each run starts from 1 */
  constructor(
    readonly ino: bigint,
    now: bigint,
  ) {
    this.times = { atim: now, mtim: now, ctim: now };
  }
  abstract readonly filetype: number;
  abstract size(): bigint;
}

export class FileInode extends InodeBase implements BudgetedFile {
  readonly filetype = FILETYPE_REGULAR_FILE;
  /** Bytes [0, length) are the file; the buffer may be larger, to grow without copying each write. */
  private buffer: Uint8Array;
  /**
   * Whether `buffer` is the file's own. An input file starts on the task's input bytes and copies
   * them at its first change: most inputs are only read, and copying every one at every run cost
   * a run time in proportion to all the inputs' bytes (docs/benchmarks.md, "(l) peers").
   */
  private owned: boolean;
  length: number;
  /** Size the file came with (an input file), 0 for one the program created: held by the inputs, not the task. */
  readonly baseline: number;
  /** An input file the program has not changed, renamed or linked (ShimBudget: not output). */
  pristine: boolean;
  /** @param data the input's bytes, never written to (the file copies them before its first change) */
  constructor(ino: bigint, now: bigint, data: Uint8Array = new Uint8Array(0)) {
    super(ino, now);
    this.buffer = data;
    this.owned = false;
    this.length = data.length;
    this.baseline = data.length;
    this.pristine = data.length > 0;
  }
  get capacity(): number {
    return this.buffer.length;
  }
  size(): bigint {
    return BigInt(this.length);
  }
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
  reserve(capacity: number): void {
    const grown = new Uint8Array(Math.max(capacity, this.length));
    grown.set(this.bytes());
    this.buffer = grown;
    this.owned = true;
  }
  /** Sets the length within the capacity (ShimBudget.resizeFile reserves it first), zero-filling new bytes. */
  setLength(length: number): void {
    if (length < this.length) this.own().fill(0, length, this.length);
    this.length = length;
  }
  read(position: number, into: Uint8Array): number {
    const n = Math.max(0, Math.min(into.length, this.length - position));
    into.set(this.buffer.subarray(position, position + n));
    return n;
  }
  /** Writes within the length (ShimBudget.resizeFile makes the room first). */
  write(position: number, data: Uint8Array): void {
    this.own().set(data, position);
  }
  /** The buffer, made the file's own first if it is still the input's. */
  private own(): Uint8Array {
    if (!this.owned) {
      this.buffer = this.buffer.slice();
      this.owned = true;
    }
    return this.buffer;
  }
}

export class DirInode extends InodeBase {
  readonly filetype = FILETYPE_DIRECTORY;
  readonly entries = new Map<string, Inode>();
  parent: DirInode | null;
  constructor(ino: bigint, now: bigint, parent: DirInode | null) {
    super(ino, now);
    this.parent = parent;
  }
  size(): bigint {
    return 4096n;
  }
  /** Names in a stable order (code-unit order), so listings do not depend on insertion. */
  sortedNames(): string[] {
    return [...this.entries.keys()].sort();
  }
}

export class SymlinkInode extends InodeBase {
  readonly filetype = FILETYPE_SYMBOLIC_LINK;
  constructor(
    ino: bigint,
    now: bigint,
    readonly target: string,
  ) {
    super(ino, now);
  }
  size(): bigint {
    return BigInt(utf8Length(this.target));
  }
}

export type Inode = FileInode | DirInode | SymlinkInode;

const MAX_SYMLINK_HOPS = 32;
/** Longest path a call may name, in UTF-8 bytes (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

export interface Resolved {
  /** The directory holding the last component. */
  parent: DirInode;
  /** The last component's name ("" when the path named the start directory itself). */
  name: string;
  /** The inode found, or null when the last component does not exist. */
  inode: Inode | null;
}

/** What an inode itself costs in the held budget (its entries and a file's bytes apart). */
function inodeCost(inode: Inode): number {
  if (inode instanceof FileInode) return COST.file;
  if (inode instanceof DirInode) return COST.directory;
  return COST.symlink + stringCost(inode.target);
}

const entryCost = (name: string) => COST.entry + stringCost(name);

export class MemoryFs {
  readonly root: DirInode;
  /**
   * The last inode number given. Counted per file system, not per thread: a worker runs task after
   * task, and a count shared by them gave a run's files other numbers (stat, readdir) after another
   * run, so a deterministic task's outputs could depend on what ran before it in the worker.
   */
  private lastIno = 0n;
  constructor(
    private readonly now: () => bigint,
    readonly budget: ShimBudget,
  ) {
    this.root = this.newDirectory(null);
    budget.grant(COST.directory);
  }

  /** New inodes of this file system, numbered 1, 2, 3... in the order made, timed by its clock. */
  newFile(data?: Uint8Array): FileInode {
    return new FileInode(++this.lastIno, this.now(), data);
  }

  newDirectory(parent: DirInode | null): DirInode {
    return new DirInode(++this.lastIno, this.now(), parent);
  }

  newSymlink(target: string): SymlinkInode {
    return new SymlinkInode(++this.lastIno, this.now(), target);
  }

  /**
   * Adds `name` for `inode` in `dir`, as the program asks (path_open, path_create_directory,
   * path_symlink, path_link): the entry's cost is held, and a new inode's too.
   * @param made whether `inode` is new (else a hard link to one that exists)
   * @throws WasiError NAMETOOLONG for a name past NAME_MAX, or a link target past SYMLINK_MAX;
   *   NOSPC when the budget has no room
   */
  addEntry(dir: DirInode, name: string, inode: Inode, made: boolean): void {
    ShimBudget.checkName(name);
    if (made && inode instanceof SymlinkInode && utf8Length(inode.target) > SYMLINK_MAX) throw new WasiError(ERRNO_NAMETOOLONG);
    this.budget.hold(entryCost(name) + (made ? inodeCost(inode) : 0));
    dir.entries.set(name, inode);
    dir.times.mtim = dir.times.ctim = this.now();
  }

  /** Removes `name` from `dir`: one link fewer for its inode, which is forgotten once nothing reaches it. */
  removeEntry(dir: DirInode, name: string): void {
    const inode = dir.entries.get(name);
    if (!inode) return;
    dir.entries.delete(name);
    this.budget.release(entryCost(name));
    inode.nlink = inode.nlink > 0n ? inode.nlink - 1n : 0n;
    this.forgetIfUnreachable(inode);
    dir.times.mtim = dir.times.ctim = this.now();
  }

  /**
   * Moves the entry `fromName` of `fromDir` to `toName` in `toDir`, replacing what is there.
   * Nothing changes when it fails.
   * @throws WasiError NAMETOOLONG, NOSPC as addEntry
   */
  moveEntry(fromDir: DirInode, fromName: string, toDir: DirInode, toName: string): void {
    const inode = fromDir.entries.get(fromName);
    if (!inode) return;
    ShimBudget.checkName(toName);
    this.budget.hold(entryCost(toName));
    this.removeEntry(toDir, toName);
    fromDir.entries.delete(fromName);
    this.budget.release(entryCost(fromName));
    toDir.entries.set(toName, inode);
    fromDir.times.mtim = toDir.times.mtim = this.now();
  }

  /** A descriptor opened on `inode`. */
  opened(inode: Inode): void {
    inode.opens++;
  }

  /** A descriptor on `inode` closed. */
  closed(inode: Inode): void {
    inode.opens--;
    this.forgetIfUnreachable(inode);
  }

  private forgetIfUnreachable(inode: Inode): void {
    if (inode.nlink > 0n || inode.opens > 0) return;
    if (inode instanceof FileInode) this.budget.forgetFile(inode);
    else this.budget.release(inodeCost(inode));
  }

  /**
   * Creates directories along an absolute path and returns the last. For the manifest's preopens
   * and inputs, before the run: their cost is granted on top of the budget, not taken from it.
   */
  mkdirp(path: string): DirInode {
    let dir = this.root;
    for (const part of path.split('/').filter(Boolean)) {
      const existing = dir.entries.get(part);
      if (existing instanceof DirInode) dir = existing;
      else if (existing) throw new WasiError(ERRNO_NOTDIR);
      else {
        const created = this.newDirectory(dir);
        dir.entries.set(part, created);
        this.budget.grant(entryCost(part) + COST.directory);
        dir = created;
      }
    }
    return dir;
  }

  /** Places an input file at an absolute path, creating its parent directories (granted, as mkdirp). */
  writeFile(path: string, data: Uint8Array): FileInode {
    const parts = path.split('/').filter(Boolean);
    const name = parts.pop();
    if (!name) throw new WasiError(ERRNO_INVAL);
    const dir = this.mkdirp(`/${parts.join('/')}`);
    const existing = dir.entries.get(name);
    if (existing instanceof DirInode) throw new WasiError(ERRNO_EXIST);
    if (existing) this.removeEntry(dir, name);
    const file = this.newFile(data);
    dir.entries.set(name, file);
    this.budget.grant(entryCost(name) + COST.file);
    return file;
  }

  /**
   * Resolves `path` relative to `start`, never climbing above it. Like uvwasi, "." and ".." are
   * folded lexically before the walk ("missing/../a" names "a"); symlinks are followed by
   * splicing their target into the path, so a link can never lead out of `start` either.
   * @param followLast follow a symlink in the last component (LOOKUPFLAGS_SYMLINK_FOLLOW)
   * @throws WasiError INVAL for an empty path (uvwasi), NOTCAPABLE for absolute paths or escapes,
   *   NOENT/NOTDIR for missing or non-directory components, LOOP after 32 links
   */
  resolve(start: DirInode, path: string, followLast: boolean, hops = 0): Resolved {
    if (path.length === 0) throw new WasiError(ERRNO_INVAL);
    if (utf8Length(path) > MAX_PATH_BYTES) throw new WasiError(ERRNO_NAMETOOLONG);
    const names = normalizeRelative(path);
    const trailingSlash = path.endsWith('/');
    let dir = start;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const last = i === names.length - 1;
      const inode = dir.entries.get(name) ?? null;
      if (inode instanceof SymlinkInode && (!last || followLast || trailingSlash)) {
        if (hops >= MAX_SYMLINK_HOPS) throw new WasiError(ERRNO_LOOP);
        if (inode.target.startsWith('/')) throw new WasiError(ERRNO_NOTCAPABLE);
        const spliced = [...names.slice(0, i), inode.target, ...names.slice(i + 1)].join('/');
        return this.resolve(start, spliced + (trailingSlash ? '/' : ''), followLast, hops + 1);
      }
      if (last) {
        if (trailingSlash && inode && !(inode instanceof DirInode)) throw new WasiError(ERRNO_NOTDIR);
        return { parent: dir, name, inode };
      }
      if (!inode) throw new WasiError(ERRNO_NOENT);
      if (!(inode instanceof DirInode)) throw new WasiError(ERRNO_NOTDIR);
      dir = inode;
    }
    // The path named the start directory itself ("." or "a/..").
    return { parent: start, name: '.', inode: start };
  }

  isWithin(dir: DirInode, ancestor: DirInode): boolean {
    for (let d: DirInode | null = dir; d; d = d.parent) if (d === ancestor) return true;
    return false;
  }

  /** Every regular file with its absolute path, sorted by path. */
  /** Every regular file under the directory at `under` (the whole tree by default), sorted by path. */
  files(under = '/'): { path: string; inode: FileInode }[] {
    const out: { path: string; inode: FileInode }[] = [];
    let start: DirInode = this.root;
    for (const part of under.split('/').filter(Boolean)) {
      const next = start.entries.get(part);
      if (!(next instanceof DirInode)) return out;
      start = next;
    }
    const walk = (dir: DirInode, prefix: string) => {
      for (const name of dir.sortedNames()) {
        const inode = dir.entries.get(name)!;
        if (inode instanceof FileInode) out.push({ path: `${prefix}/${name}`, inode });
        else if (inode instanceof DirInode) walk(inode, `${prefix}/${name}`);
      }
    };
    walk(start, under === '/' ? '' : under.replace(/\/+$/, ''));
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}

/**
 * Splits a relative path into names with "", "." and ".." folded away.
 * @throws WasiError NOTCAPABLE when the path is absolute or ".." climbs above its start
 */
export function normalizeRelative(path: string): string[] {
  if (path.startsWith('/')) throw new WasiError(ERRNO_NOTCAPABLE);
  const names: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') names.push(part);
    else if (names.pop() === undefined) throw new WasiError(ERRNO_NOTCAPABLE);
  }
  return names;
}
