/**
 * The per-task in-memory file system: one tree rooted at "/", so a preopen at "/" and preopens
 * at deeper paths all see the same files. Paths given to the program resolve relative to a
 * directory inode and may never climb above it (ERRNO_NOTCAPABLE), as in uvwasi.
 */
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

let nextIno = 1n;

abstract class InodeBase {
  readonly ino = nextIno++;
  nlink = 1n;
  times: Times;
  constructor(now: bigint) {
    this.times = { atim: now, mtim: now, ctim: now };
  }
  abstract readonly filetype: number;
  abstract size(): bigint;
}

export class FileInode extends InodeBase {
  readonly filetype = FILETYPE_REGULAR_FILE;
  /** Bytes [0, length) are the file; the buffer may be larger, to grow without copying each write. */
  private buffer: Uint8Array;
  length: number;
  /** Size the file came with (an input file), 0 for one the program created: its growth past this counts as output. */
  readonly baseline: number;
  constructor(now: bigint, data: Uint8Array = new Uint8Array(0)) {
    super(now);
    this.buffer = data.slice();
    this.length = data.length;
    this.baseline = data.length;
  }
  size(): bigint {
    return BigInt(this.length);
  }
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
  /** Sets the length, zero-filling any new bytes. */
  resize(length: number): void {
    if (length > this.buffer.length) {
      const grown = new Uint8Array(Math.max(length, Math.min(this.buffer.length * 2, length + 64 * 1024 * 1024)));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    } else if (length < this.length) {
      this.buffer.fill(0, length, this.length);
    }
    this.length = length;
  }
  read(position: number, into: Uint8Array): number {
    const n = Math.max(0, Math.min(into.length, this.length - position));
    into.set(this.buffer.subarray(position, position + n));
    return n;
  }
  write(position: number, data: Uint8Array): void {
    if (position + data.length > this.length) this.resize(position + data.length);
    this.buffer.set(data, position);
  }
}

export class DirInode extends InodeBase {
  readonly filetype = FILETYPE_DIRECTORY;
  readonly entries = new Map<string, Inode>();
  parent: DirInode | null;
  constructor(now: bigint, parent: DirInode | null) {
    super(now);
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
    now: bigint,
    readonly target: string,
  ) {
    super(now);
  }
  size(): bigint {
    return BigInt(new TextEncoder().encode(this.target).length);
  }
}

export type Inode = FileInode | DirInode | SymlinkInode;

const MAX_SYMLINK_HOPS = 32;
const MAX_PATH_BYTES = 4096;

export interface Resolved {
  /** The directory holding the last component. */
  parent: DirInode;
  /** The last component's name ("" when the path named the start directory itself). */
  name: string;
  /** The inode found, or null when the last component does not exist. */
  inode: Inode | null;
}

export class MemoryFs {
  readonly root: DirInode;
  constructor(private readonly now: () => bigint) {
    this.root = new DirInode(now(), null);
  }

  /** Creates directories along an absolute path and returns the last. */
  mkdirp(path: string): DirInode {
    let dir = this.root;
    for (const part of path.split('/').filter(Boolean)) {
      const existing = dir.entries.get(part);
      if (existing instanceof DirInode) dir = existing;
      else if (existing) throw new WasiError(ERRNO_NOTDIR);
      else {
        const created = new DirInode(this.now(), dir);
        dir.entries.set(part, created);
        dir = created;
      }
    }
    return dir;
  }

  /** Places a file at an absolute path, creating its parent directories. */
  writeFile(path: string, data: Uint8Array): FileInode {
    const parts = path.split('/').filter(Boolean);
    const name = parts.pop();
    if (!name) throw new WasiError(ERRNO_INVAL);
    const dir = this.mkdirp(`/${parts.join('/')}`);
    if (dir.entries.get(name) instanceof DirInode) throw new WasiError(ERRNO_EXIST);
    const file = new FileInode(this.now(), data);
    dir.entries.set(name, file);
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
    if (new TextEncoder().encode(path).length > MAX_PATH_BYTES) throw new WasiError(ERRNO_NAMETOOLONG);
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
