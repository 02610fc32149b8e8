// Edge cases straight against the import table, with a hand-made memory.
import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Wasi, type WasiOptions } from '../../worker/wasi/index.ts';
import * as C from '../../worker/wasi/constants.ts';

type Table = Record<string, (...args: (number | bigint)[]) => number>;

function setup(partial: Partial<WasiOptions> = {}, hooks: { onSyscall?: () => void } = {}) {
  const wasi = new Wasi({ args: ['p'], env: [], stdin: new Uint8Array(0), files: [], preopens: ['/sandbox'], maxStdoutBytes: 8, maxStderrBytes: 8, maxOutputFileBytes: 16, ...partial }, hooks);
  const memory = new WebAssembly.Memory({ initial: 1 });
  // start() binds the memory; a fake instance whose _start does nothing gives us the bound table.
  wasi.start({ exports: { memory, _start: () => {} } } as unknown as WebAssembly.Instance);
  const table = wasi.imports.wasi_snapshot_preview1 as unknown as Table;
  const bytes = new Uint8Array(memory.buffer);
  const view = new DataView(memory.buffer);
  const putString = (at: number, s: string) => {
    const b = new TextEncoder().encode(s);
    bytes.set(b, at);
    return b.length;
  };
  /** Opens `path` under fd 3 and returns the new fd (or throws with the errno). */
  const open = (path: string, oflags = 0, rights = C.RIGHTS_FD_READ | C.RIGHTS_FD_WRITE | C.RIGHTS_FD_SEEK | C.RIGHTS_FD_TELL, fdflags = 0) => {
    const len = putString(100, path);
    const errno = table.path_open!(3, 0, 100, len, oflags, rights, 0n, fdflags, 200);
    if (errno !== C.ERRNO_SUCCESS) throw new Error(`path_open ${path}: errno ${errno}`);
    return view.getUint32(200, true);
  };
  /** Writes `data` with one iovec at 300.., returns the errno. */
  const write = (fd: number, data: string) => {
    const len = putString(400, data);
    view.setUint32(300, 400, true);
    view.setUint32(304, len, true);
    return table.fd_write!(fd, 300, 1, 308);
  };
  return { wasi, table, bytes, view, putString, open, write, memory };
}

describe('WASI import table', () => {
  it('answers each shim from its own state, the calls being shared by every shim of the thread', () => {
    const one = setup({ args: ['p'] });
    const two = setup({ args: ['p', 'second'] });
    // Interleaved, the older shim after the newer one: each call sets its own shim's context.
    for (const [shim, count, size] of [[one, 1, 2], [two, 2, 9], [one, 1, 2]] as const) {
      expect(shim.table.args_sizes_get!(0, 4)).toBe(C.ERRNO_SUCCESS);
      expect([shim.view.getUint32(0, true), shim.view.getUint32(4, true)]).toEqual([count, size]);
    }
    expect(two.view.getUint32(0, true)).toBe(2); // not overwritten by the last call, on the other memory
  });

  it('numbers a run\u2019s inodes from its own file system: a run after another sees the same numbers as the first (stat gives them, as readdir does)', () => {
    // A count shared by the thread's runs numbered a worker's second task's files after its first
    // task's: a deterministic task's outputs then depended on what ran before it.
    const inodesSeen = () => {
      const { table, view, putString, open } = setup({ files: [{ path: '/sandbox/in.txt', data: new Uint8Array(3) }] });
      open('new.txt', C.OFLAGS_CREAT);
      return ['.', 'in.txt', 'new.txt'].map((path) => {
        expect(table.path_filestat_get!(3, 0, 100, putString(100, path), 200), path).toBe(C.ERRNO_SUCCESS);
        return view.getBigUint64(208, true); // st_ino
      });
    };
    const first = inodesSeen();
    expect(new Set(first).size).toBe(3);
    expect(inodesSeen()).toEqual(first);
  });

  it('defines every preview1 function; proc_raise answers NOTSUP; rights only shrink', () => {
    const { table, view } = setup();
    for (const name of C.PREVIEW1_FUNCTIONS) expect(typeof table[name], name).toBe('function');
    expect(Object.keys(table).sort()).toEqual([...C.PREVIEW1_FUNCTIONS].sort());
    expect(table.proc_raise!(1)).toBe(C.ERRNO_NOTSUP);
    expect(table.fd_fdstat_set_rights!(3, C.RIGHTS_FD_READDIR, 0n)).toBe(C.ERRNO_SUCCESS);
    expect(table.fd_fdstat_get!(3, 0)).toBe(C.ERRNO_SUCCESS);
    expect(view.getBigUint64(8, true)).toBe(C.RIGHTS_FD_READDIR);
    expect(table.fd_fdstat_set_rights!(3, C.RIGHTS_FD_READDIR | C.RIGHTS_FD_READ, 0n)).toBe(C.ERRNO_NOTCAPABLE);
  });

  it('links any module importing preview1 names, whatever subset it uses', async () => {
    const { wasi } = setup();
    const module = new WebAssembly.Module(
      // (module (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func (param i32 i64 i64) (result i32))))
      new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 127, 126, 126, 1, 127, 2, 47, 1, 22, ...new TextEncoder().encode('wasi_snapshot_preview1'), 20, ...new TextEncoder().encode('fd_fdstat_set_rights'), 0, 0]),
    );
    expect(() => new WebAssembly.Instance(module, wasi.imports)).not.toThrow();
  });

  it('answers BADF for an unknown fd and NOTCAPABLE for path calls on a non-directory fd (it holds no path rights, as in uvwasi)', () => {
    const { table } = setup();
    expect(table.fd_close!(99)).toBe(C.ERRNO_BADF);
    expect(table.fd_write!(99, 0, 0, 0)).toBe(C.ERRNO_BADF);
    expect(table.fd_prestat_get!(9, 0)).toBe(C.ERRNO_BADF);
    expect(table.fd_prestat_get!(1, 0)).toBe(C.ERRNO_INVAL); // open but not a preopen, as uvwasi
    expect(table.path_create_directory!(1, 0, 1)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.fd_renumber!(3, 50)).toBe(C.ERRNO_BADF);
  });

  it('never lets a path climb above its directory fd', () => {
    const { table, putString } = setup({ files: [{ path: '/secret.txt', data: new Uint8Array([1]) }] });
    const len = putString(100, '../secret.txt');
    expect(table.path_open!(3, 0, 100, len, 0, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_NOTCAPABLE);
    const abs = putString(100, '/secret.txt');
    expect(table.path_open!(3, 0, 100, abs, 0, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_NOTCAPABLE);
    const deep = putString(100, 'a/../../secret.txt');
    expect(table.path_filestat_get!(3, 0, 100, deep, 300)).toBe(C.ERRNO_NOTCAPABLE);
    // Folded lexically as uvwasi does: "a" need not exist.
    const inside = putString(100, 'a/..//./b');
    expect(table.path_create_directory!(3, 100, inside)).toBe(C.ERRNO_SUCCESS);
    const b = putString(100, 'b');
    expect(table.path_filestat_get!(3, 0, 100, b, 300)).toBe(C.ERRNO_SUCCESS);
    // A symlink may not lead out either: refused when made.
    const target = putString(500, '../../secret.txt');
    const link = putString(100, 'b/link');
    expect(table.path_symlink!(500, target, 3, 100, link)).toBe(C.ERRNO_NOTCAPABLE);
    const ok = putString(500, '../b');
    expect(table.path_symlink!(500, ok, 3, 100, link)).toBe(C.ERRNO_SUCCESS);
    const through = putString(100, 'b/link/link/link');
    expect(table.path_filestat_get!(3, C.LOOKUPFLAGS_SYMLINK_FOLLOW, 100, through, 300)).toBe(C.ERRNO_SUCCESS);
    const empty = putString(100, '');
    expect(table.path_filestat_get!(3, 0, 100, empty, 300)).toBe(C.ERRNO_INVAL);
  });

  it('checks rights before the kind of descriptor: a directory fd cannot read, write or seek', () => {
    const { table, open } = setup({ files: [{ path: '/sandbox/f', data: new Uint8Array(4) }] });
    expect(table.fd_read!(3, 0, 0, 16)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.fd_write!(3, 0, 0, 16)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.fd_seek!(3, 0n, C.WHENCE_SET, 16)).toBe(C.ERRNO_NOTCAPABLE);
    const fd = open('f', 0, C.RIGHTS_FD_READ);
    expect(table.fd_readdir!(fd, 0, 100, 0n, 16)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.fd_write!(fd, 0, 0, 16)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.fd_filestat_get!(fd, 16)).toBe(C.ERRNO_NOTCAPABLE);
    expect(table.path_open!(3, 0, 0, 0, C.OFLAGS_DIRECTORY, 0n, 0n, 0, 200)).toBe(C.ERRNO_INVAL); // empty path
  });

  it('path_open: DIRECTORY on a file, EXCL, TRUNC, APPEND', () => {
    const { table, view, open, write, putString } = setup({ files: [{ path: '/sandbox/f', data: new TextEncoder().encode('abc') }] });
    const f = putString(100, 'f');
    expect(table.path_open!(3, 0, 100, f, C.OFLAGS_DIRECTORY, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_NOTDIR);
    expect(table.path_open!(3, 0, 100, f, C.OFLAGS_CREAT | C.OFLAGS_EXCL, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_EXIST);
    const fd = open('f', 0, C.RIGHTS_FD_WRITE | C.RIGHTS_FD_TELL | C.RIGHTS_FD_FILESTAT_GET, C.FDFLAGS_APPEND);
    expect(write(fd, 'de')).toBe(C.ERRNO_SUCCESS);
    expect(table.fd_tell!(fd, 16)).toBe(C.ERRNO_SUCCESS);
    expect(view.getBigUint64(16, true)).toBe(5n);
    expect(table.fd_fdstat_get!(fd, 16)).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint16(18, true)).toBe(C.FDFLAGS_APPEND);
    const t = open('f', C.OFLAGS_TRUNC, C.RIGHTS_FD_WRITE | C.RIGHTS_FD_FILESTAT_GET);
    expect(table.fd_filestat_get!(t, 16)).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint8(16 + 16)).toBe(C.FILETYPE_REGULAR_FILE);
    expect(view.getBigUint64(16 + 32, true)).toBe(0n);
    // ino is stable per node: the same through both descriptors, and path_filestat_get.
    const ino = view.getBigUint64(16 + 8, true);
    expect(table.path_filestat_get!(3, 0, 100, f, 16)).toBe(C.ERRNO_SUCCESS);
    expect(view.getBigUint64(16 + 8, true)).toBe(ino);
    expect(table.fd_close!(t)).toBe(C.ERRNO_SUCCESS);
    expect(table.fd_close!(t)).toBe(C.ERRNO_BADF);
  });

  it('sockets: BADF for a bad fd, NOTSOCK for any other', () => {
    const { table } = setup();
    expect(table.sock_recv!(42, 0, 0, 0, 0, 0)).toBe(C.ERRNO_BADF);
    expect(table.sock_send!(1, 0, 0, 0, 0)).toBe(C.ERRNO_NOTSOCK);
    expect(table.sock_accept!(3, 0, 0)).toBe(C.ERRNO_NOTSOCK);
    expect(table.sock_shutdown!(0, 0)).toBe(C.ERRNO_NOTSOCK);
  });

  it('caps stdout and reports the truncation; the program is told all was written', () => {
    const { wasi, table, view, write } = setup();
    expect(write(1, 'hello, world')).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint32(308, true)).toBe(12);
    expect(write(2, 'exactly8')).toBe(C.ERRNO_SUCCESS);
    expect(table.fd_write!(2, 0, 0, 308)).toBe(C.ERRNO_SUCCESS); // nothing more: not truncated
    const result = wasi.start({ exports: { memory: new WebAssembly.Memory({ initial: 1 }), _start: () => {} } } as unknown as WebAssembly.Instance);
    expect(new TextDecoder().decode(result.stdout)).toBe('hello, w');
    expect(result.truncated).toEqual({ stdout: true, stderr: false });
  });

  it('fails file writes past the output budget: NOSPC for all files together, FBIG for one alone', () => {
    const { wasi, table, open, write } = setup({ files: [{ path: '/sandbox/input', data: new Uint8Array(100) }] });
    const a = open('a.bin', C.OFLAGS_CREAT);
    expect(write(a, '0123456789ab')).toBe(C.ERRNO_SUCCESS); // 12 of 16 bytes
    const b = open('b.bin', C.OFLAGS_CREAT, C.RIGHTS_FD_WRITE | C.RIGHTS_FD_FILESTAT_SET_SIZE);
    expect(write(b, '01234')).toBe(C.ERRNO_NOSPC); // 17 > 16
    expect(write(a, '0123456789ab')).toBe(C.ERRNO_FBIG); // a alone would hold 24
    expect(table.fd_filestat_set_size!(b, 100n)).toBe(C.ERRNO_FBIG);
    // An input file left alone does not count; one changed comes back whole, so it counts whole (100 > 16).
    const input = open('input', 0, C.RIGHTS_FD_WRITE | C.RIGHTS_FD_SEEK);
    expect(write(input, 'xy')).toBe(C.ERRNO_FBIG);
    // Deleting a file the program made frees its bytes (test/wasi/budget.test.ts: inputs do not).
    expect(table.fd_close!(a)).toBe(C.ERRNO_SUCCESS);
    const name = new TextEncoder().encode('a.bin');
    new Uint8Array((wasi as unknown as { memory: WebAssembly.Memory }).memory.buffer).set(name, 600);
    expect(table.path_unlink_file!(3, 600, name.length)).toBe(C.ERRNO_SUCCESS);
    expect(write(b, '0123456789abcdef')).toBe(C.ERRNO_SUCCESS);
  });

  it('reports as output only files that are new or changed, sorted by path', () => {
    const { wasi, open, write } = setup({ files: [{ path: '/sandbox/same', data: new Uint8Array([1]) }, { path: '/sandbox/changed', data: new Uint8Array([1]) }] });
    write(open('z', C.OFLAGS_CREAT), 'z');
    write(open('changed'), 'x');
    open('same', C.OFLAGS_TRUNC);
    write(open('same'), '\x01');
    const result = wasi.start({ exports: { memory: new WebAssembly.Memory({ initial: 1 }), _start: () => {} } } as unknown as WebAssembly.Instance);
    expect(result.files.map((f) => f.path)).toEqual(['/sandbox/changed', '/sandbox/z']);
  });

  it('reads inputs in place and never writes to the bytes it was given: a write, a truncation and a rename leave them as they were', () => {
    const given = { written: new Uint8Array([1, 2, 3]), truncated: new Uint8Array([4, 5, 6]), renamed: new Uint8Array([7]), read: new Uint8Array([8, 9]) };
    const files = Object.entries(given).map(([name, data]) => ({ path: `/sandbox/${name}`, data }));
    const { wasi, table, open, write, putString, bytes, view } = setup({ files });
    write(open('written'), 'xy');
    open('truncated', C.OFLAGS_TRUNC);
    const from = putString(500, 'renamed');
    const to = putString(600, 'moved');
    expect(table.path_rename!(3, 500, from, 3, 600, to)).toBe(C.ERRNO_SUCCESS);
    // Read back through the shim: the file's bytes, not the input's.
    const fd = open('written');
    view.setUint32(300, 700, true);
    view.setUint32(304, 3, true);
    expect(table.fd_read!(fd, 300, 1, 308)).toBe(C.ERRNO_SUCCESS);
    expect([...bytes.subarray(700, 703)]).toEqual([0x78, 0x79, 3]);
    const result = wasi.start({ exports: { memory: new WebAssembly.Memory({ initial: 1 }), _start: () => {} } } as unknown as WebAssembly.Instance);
    expect(result.files.map((f) => [f.path, [...f.data]])).toEqual([
      ['/sandbox/moved', [7]],
      ['/sandbox/truncated', []],
      ['/sandbox/written', [0x78, 0x79, 3]],
    ]);
    expect(Object.fromEntries(Object.entries(given).map(([name, data]) => [name, [...data]]))).toEqual({ written: [1, 2, 3], truncated: [4, 5, 6], renamed: [7], read: [8, 9] });
  });

  /** fd_readdir on `fd` from `cookie` into 1000.., parsed: [d_next, d_ino, d_type, name] each. */
  const readdir = ({ table, view, bytes }: ReturnType<typeof setup>, fd: number, cookie: bigint, len = 200) => {
    bytes.fill(0xee, 1000, 1400);
    expect(table.fd_readdir!(fd, 1000, len, cookie, 0)).toBe(C.ERRNO_SUCCESS);
    const used = view.getUint32(0, true);
    const out: [bigint, bigint, number, string][] = [];
    for (let at = 1000; at + 24 <= 1000 + used; ) {
      const namlen = view.getUint32(at + 16, true);
      out.push([view.getBigUint64(at, true), view.getBigUint64(at + 8, true), view.getUint8(at + 20), new TextDecoder().decode(bytes.subarray(at + 24, at + 24 + namlen))]);
      at += 24 + namlen;
    }
    return { used, out };
  };
  /** The inode number of the directory or file behind `fd`. */
  const inoOf = ({ table, view }: ReturnType<typeof setup>, fd: number) => {
    expect(table.fd_filestat_get!(fd, 1600)).toBe(C.ERRNO_SUCCESS);
    return view.getBigUint64(1608, true);
  };

  it('lays out dirents as the witx says: "." and ".." first, then the names sorted, and continues from a cookie', () => {
    const s = setup({ files: [{ path: '/sandbox/b', data: new Uint8Array(0) }, { path: '/sandbox/a', data: new Uint8Array(3) }] });
    const { view, bytes } = s;
    const read = (cookie: bigint, len = 200) => readdir(s, 3, cookie, len);
    const all = read(0n);
    expect(all.used).toBe(24 + 1 + 24 + 2 + 24 + 1 + 24 + 1);
    expect(all.out.map(([next, , type, name]) => [next, type, name])).toEqual([
      [1n, C.FILETYPE_DIRECTORY, '.'],
      [2n, C.FILETYPE_DIRECTORY, '..'],
      [3n, C.FILETYPE_REGULAR_FILE, 'a'],
      [4n, C.FILETYPE_REGULAR_FILE, 'b'],
    ]);
    expect(bytes[1000 + all.used]).toBe(0xee); // nothing written past bufused
    // "." is the directory itself; so is "..", the preopen being the top of what fd 3 reaches.
    expect(all.out[0]![1]).toBe(inoOf(s, 3));
    expect(all.out[1]![1]).toBe(inoOf(s, 3));
    expect(new Set(all.out.map(([, ino]) => ino)).size).toBe(3);
    // From a cookie: the rest only, whichever entry's d_next it is.
    for (const [i, [next]] of all.out.entries()) expect(read(next).out).toEqual(all.out.slice(i + 1));
    expect(read(4n).used).toBe(0);
    // A buffer too small for the next entry comes back full, the entry cut short.
    const cut = read(0n, 30);
    expect(cut.used).toBe(30);
    expect(view.getBigUint64(1000, true)).toBe(1n);
    // Resuming after a cut entry, from the last whole entry's d_next, gives that entry whole.
    expect(read(1n, 200).out[0]![3]).toBe('..');
  });

  it('fd_readdir: ".." is the parent in a subdirectory, the directory itself at a preopen and at "/"; an empty or removed directory', () => {
    const s = setup({ files: [{ path: '/sandbox/sub/deep/x', data: new Uint8Array(0) }], preopens: ['/sandbox', '/'] });
    const { table, putString, view } = s;
    const openDir = (at: number, path: string) => {
      const len = putString(100, path);
      expect(table.path_open!(at, 0, 100, len, C.OFLAGS_DIRECTORY, C.RIGHTS_FD_READDIR | C.RIGHTS_FD_FILESTAT_GET | C.RIGHTS_PATH_OPEN, C.RIGHTS_FD_READDIR | C.RIGHTS_FD_FILESTAT_GET | C.RIGHTS_PATH_OPEN, 0, 200)).toBe(C.ERRNO_SUCCESS);
      return view.getUint32(200, true);
    };
    const dots = (fd: number) => readdir(s, fd, 0n).out.slice(0, 2).map(([, ino, type, name]) => [name, type, ino]);
    const sub = openDir(3, 'sub');
    const deep = openDir(sub, 'deep');
    expect(dots(deep)).toEqual([['.', C.FILETYPE_DIRECTORY, inoOf(s, deep)], ['..', C.FILETYPE_DIRECTORY, inoOf(s, sub)]]);
    expect(dots(sub)).toEqual([['.', C.FILETYPE_DIRECTORY, inoOf(s, sub)], ['..', C.FILETYPE_DIRECTORY, inoOf(s, 3)]]);
    // The preopen /sandbox, and the same directory opened through it: ".." is itself.
    expect(dots(3)).toEqual([['.', C.FILETYPE_DIRECTORY, inoOf(s, 3)], ['..', C.FILETYPE_DIRECTORY, inoOf(s, 3)]]);
    expect(dots(openDir(3, '.'))).toEqual(dots(3));
    // Reached through the preopen "/" instead, /sandbox's parent is "/", and "/.." is "/".
    expect(dots(openDir(4, 'sandbox'))[1]).toEqual(['..', C.FILETYPE_DIRECTORY, inoOf(s, 4)]);
    expect(dots(4)).toEqual([['.', C.FILETYPE_DIRECTORY, inoOf(s, 4)], ['..', C.FILETYPE_DIRECTORY, inoOf(s, 4)]]);
    // An empty directory lists the two dot entries only; a removed one lists nothing (they went with it).
    const len = putString(100, 'sub/deep/x');
    expect(table.path_unlink_file!(3, 100, len)).toBe(C.ERRNO_SUCCESS);
    expect(readdir(s, deep, 0n).out.map(([, , , name]) => name)).toEqual(['.', '..']);
    expect(table.path_remove_directory!(3, 100, putString(100, 'sub/deep'))).toBe(C.ERRNO_SUCCESS);
    expect(readdir(s, deep, 0n).used).toBe(0);
  });

  it('path_readlink places as many bytes of the target as fit and returns their count (POSIX readlink), never NOBUFS', () => {
    const s = setup({ files: [{ path: '/sandbox/file', data: new Uint8Array(0) }] });
    const { table, putString, view, bytes } = s;
    const target = putString(100, 'file');
    const link = putString(120, 'link');
    expect(table.path_symlink!(100, target, 3, 120, link)).toBe(C.ERRNO_SUCCESS);
    const readlink = (bufLen: number) => {
      bytes.fill(0xee, 1000, 1100);
      view.setUint32(0, 77, true);
      const errno = table.path_readlink!(3, 120, link, 1000, bufLen, 0);
      const n = view.getUint32(0, true);
      return { errno, n, text: new TextDecoder().decode(bytes.subarray(1000, 1000 + n)), after: bytes[1000 + n] };
    };
    expect(readlink(100)).toEqual({ errno: C.ERRNO_SUCCESS, n: 4, text: 'file', after: 0xee }); // no NUL written
    expect(readlink(4)).toEqual({ errno: C.ERRNO_SUCCESS, n: 4, text: 'file', after: 0xee }); // an exact fit
    expect(readlink(3)).toEqual({ errno: C.ERRNO_SUCCESS, n: 3, text: 'fil', after: 0xee });
    expect(readlink(1)).toEqual({ errno: C.ERRNO_SUCCESS, n: 1, text: 'f', after: 0xee });
    expect(readlink(0)).toEqual({ errno: C.ERRNO_SUCCESS, n: 0, text: '', after: 0xee });
    // Not a link, or missing: errors as before, whatever the buffer.
    expect(table.path_readlink!(3, 100, target, 1000, 0, 0)).toBe(C.ERRNO_INVAL);
    expect(table.path_readlink!(3, 140, putString(140, 'nope'), 1000, 10, 0)).toBe(C.ERRNO_NOENT);
    // A buffer past the end of memory is FAULT, even when the target would fit in less.
    expect(table.path_readlink!(3, 120, link, 65535, 4, 0)).toBe(C.ERRNO_FAULT);
  });

  it('sees memory grown between calls (the views the calls keep are made again)', () => {
    const { table, memory, wasi } = setup();
    expect(table.args_sizes_get!(100, 104)).toBe(C.ERRNO_SUCCESS); // views of the memory as it was
    memory.grow(1);
    expect(table.args_sizes_get!(65536 + 100, 65536 + 104)).toBe(C.ERRNO_SUCCESS);
    const view = new DataView(memory.buffer);
    expect([view.getUint32(65536 + 100, true), view.getUint32(65536 + 104, true)]).toEqual([1, 2]);
    expect(wasi).toBeDefined();
  });

  it('keeps nothing of a run once it ended: an idle worker does not hold the last task\u2019s memory and files', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const refs = (() => {
      const wasi = new Wasi({ args: ['p'], env: [], stdin: new Uint8Array(0), files: [{ path: '/in/a', data: new Uint8Array(8) }], preopens: ['/in'], maxStdoutBytes: 8, maxStderrBytes: 8, maxOutputFileBytes: 16 });
      const memory = new WebAssembly.Memory({ initial: 1 });
      const table = wasi.imports.wasi_snapshot_preview1 as unknown as Table;
      // A call that makes views of the memory, and one whose context is the shim's file system.
      wasi.start({ exports: { memory, _start: () => (table.args_sizes_get!(0, 4), table.fd_prestat_get!(3, 8)) } } as unknown as WebAssembly.Instance);
      return { memory: new WeakRef(memory), wasi: new WeakRef(wasi) };
    })();
    await new Promise((resolve) => setTimeout(resolve, 0)); // WeakRefs hold their targets until the turn ends
    gc();
    expect(refs.memory.deref()).toBeUndefined();
    expect(refs.wasi.deref()).toBeUndefined();
  });

  it('sees a shared memory grown between calls (its old buffer stays usable, at its old length)', () => {
    const wasi = new Wasi({ args: ['p'], env: [], stdin: new Uint8Array(0), files: [], preopens: [], maxStdoutBytes: 8, maxStderrBytes: 8, maxOutputFileBytes: 16 });
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    wasi.start({ exports: { memory, _start: () => {} } } as unknown as WebAssembly.Instance);
    const table = wasi.imports.wasi_snapshot_preview1 as unknown as Table;
    expect(table.args_sizes_get!(100, 104)).toBe(C.ERRNO_SUCCESS);
    memory.grow(1);
    expect(table.args_sizes_get!(65536 + 100, 65536 + 104)).toBe(C.ERRNO_SUCCESS);
    expect(new DataView(memory.buffer).getUint32(65536 + 100, true)).toBe(1);
  });

  it('poll_oneoff on a clock really sleeps, then reports the event', () => {
    const { table, view } = setup();
    expect(table.clock_time_get!(C.CLOCKID_MONOTONIC, 1n, 0)).toBe(C.ERRNO_SUCCESS);
    const before = view.getBigUint64(0, true);
    // subscription at 100: userdata 7, tag clock, clock id monotonic, timeout 10 s, relative
    view.setBigUint64(100, 7n, true);
    view.setUint8(108, C.EVENTTYPE_CLOCK);
    view.setUint32(116, C.CLOCKID_MONOTONIC, true);
    view.setBigUint64(124, 50_000_000n, true); // 50 ms
    view.setUint16(140, 0, true);
    const started = performance.now();
    expect(table.poll_oneoff!(100, 200, 1, 300)).toBe(C.ERRNO_SUCCESS);
    expect(performance.now() - started).toBeGreaterThanOrEqual(49);
    expect(view.getUint32(300, true)).toBe(1);
    expect(view.getBigUint64(200, true)).toBe(7n);
    expect(view.getUint16(208, true)).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint8(210)).toBe(C.EVENTTYPE_CLOCK);
    expect(table.clock_time_get!(C.CLOCKID_MONOTONIC, 1n, 0)).toBe(C.ERRNO_SUCCESS);
    expect(view.getBigUint64(0, true) - before).toBeGreaterThanOrEqual(49_000_000n);
    expect(table.poll_oneoff!(100, 200, 0, 300)).toBe(C.ERRNO_INVAL);
    expect(table.clock_time_get!(9, 1n, 0)).toBe(C.ERRNO_INVAL);
  });

  it('calls onSyscall at the start of every syscall', () => {
    let calls = 0;
    const { table } = setup({}, { onSyscall: () => calls++ });
    const before = calls;
    table.sched_yield!();
    table.fd_close!(99);
    table.fd_fdstat_set_rights!(3, 0n, 0n);
    expect(calls - before).toBe(3);
  });

  it('proc_exit ends start() with the code; a trap propagates', () => {
    const { wasi, table } = setup();
    const memory = new WebAssembly.Memory({ initial: 1 });
    const exited = wasi.start({ exports: { memory, _start: () => table.proc_exit!(42) } } as unknown as WebAssembly.Instance);
    expect(exited.exitCode).toBe(42);
    const trap = new WebAssembly.RuntimeError('unreachable');
    expect(() => wasi.start({ exports: { memory, _start: () => { throw trap; } } } as unknown as WebAssembly.Instance)).toThrow(trap);
  });

  it('reports a pointer outside memory as FAULT', () => {
    const { table } = setup();
    expect(table.args_sizes_get!(70000, 0)).toBe(C.ERRNO_FAULT);
  });

  it('fails a write or read whole when any of its iovecs is outside memory: nothing written or read', () => {
    const { table, view, bytes, open } = setup();
    const fd = open('f', C.OFLAGS_CREAT, C.RIGHTS_FD_READ | C.RIGHTS_FD_WRITE | C.RIGHTS_FD_SEEK | C.RIGHTS_FD_FILESTAT_GET);
    bytes.set([1, 2, 3], 400);
    // Two iovecs at 300: 3 bytes at 400, then 4 bytes that end past the memory's 65536.
    view.setUint32(300, 400, true);
    view.setUint32(304, 3, true);
    view.setUint32(308, 65534, true);
    view.setUint32(312, 4, true);
    expect(table.fd_write!(fd, 300, 2, 500)).toBe(C.ERRNO_FAULT);
    expect(table.fd_filestat_get!(fd, 600)).toBe(C.ERRNO_SUCCESS);
    expect(view.getBigUint64(600 + 32, true)).toBe(0n); // size
    expect(table.fd_write!(fd, 300, 1, 500)).toBe(C.ERRNO_SUCCESS);
    expect(table.fd_seek!(fd, 0n, C.WHENCE_SET, 500)).toBe(C.ERRNO_SUCCESS);
    bytes.fill(9, 400, 403);
    expect(table.fd_read!(fd, 300, 2, 500)).toBe(C.ERRNO_FAULT);
    expect([...bytes.subarray(400, 403)]).toEqual([9, 9, 9]);
    expect(table.fd_read!(fd, 300, 1, 500)).toBe(C.ERRNO_SUCCESS); // the position did not move
    expect([...bytes.subarray(400, 403)]).toEqual([1, 2, 3]);
  });
});

describe('fd_read with iovecs that its own reads overwrite', () => {
  // readv(2) and uvwasi take every iovec before reading into any (Linux's import_iovec copies the
  // array in), and so did this shim until its iovecs were taken one at a time: a read into a
  // buffer that holds the iovec array itself must still go where the array said when the call began.
  const input = () => {
    const data = new Uint8Array(20);
    const dv = new DataView(data.buffer);
    // Bytes 8..15 land on the second iovec: they would send its 4 bytes to 500, or outside memory.
    return { data, dv };
  };
  for (const [name, at] of [['in memory', 500], ['outside memory', 0xfffffff0]] as const) {
    it(`reads into the buffers the iovecs named when the call began (overwritten with an iovec ${name})`, () => {
      const { data, dv } = input();
      dv.setUint32(8, at, true);
      dv.setUint32(12, 4, true);
      data.set([87, 88, 89, 90], 16); // "WXYZ"
      const { table, view, bytes, open } = setup({ files: [{ path: '/sandbox/in', data }] });
      const fd = open('in', 0, C.RIGHTS_FD_READ);
      // Two iovecs at 300: 16 bytes over the array itself, then 4 bytes at 400.
      view.setUint32(300, 300, true);
      view.setUint32(304, 16, true);
      view.setUint32(308, 400, true);
      view.setUint32(312, 4, true);
      expect(table.fd_read!(fd, 300, 2, 600)).toBe(C.ERRNO_SUCCESS);
      expect(view.getUint32(600, true)).toBe(20);
      expect([...bytes.subarray(400, 404)]).toEqual([87, 88, 89, 90]);
      expect([...bytes.subarray(500, 504)]).toEqual([0, 0, 0, 0]);
    });
  }
});
