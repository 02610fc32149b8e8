// What a task can make the shim hold (worker/wasi/budget.ts, issue #13 item 5): every attack the
// hostile suite runs in the browser, made here call by call against the import table, with the
// budget's books and V8's heap compared before and after.
import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Wasi, CHECKPOINT_INTERVAL_MS, type WasiFile, type WasiOptions } from '../../worker/wasi/index.ts';
import { COST, MAX_OPEN_FDS, NAME_MAX, shimBudgetBytes, SYMLINK_MAX, type ShimBudget } from '../../worker/wasi/budget.ts';
import * as C from '../../worker/wasi/constants.ts';

type Table = Record<string, (...args: (number | bigint)[]) => number>;
const KiB = 1024;
const MiB = 2 ** 20;
const RW = C.RIGHTS_FD_READ | C.RIGHTS_FD_WRITE | C.RIGHTS_FD_SEEK | C.RIGHTS_FD_TELL | C.RIGHTS_FD_FILESTAT_SET_SIZE;

/** A shim with a 64 KiB memory of its own and helpers that put their strings at fixed places in it. */
function setup(partial: Partial<WasiOptions> = {}, onCheckpoint?: (file: WasiFile) => void) {
  const wasi = new Wasi(
    { args: ['p'], env: [], stdin: new Uint8Array(0), files: [], preopens: ['/out'], maxStdoutBytes: 64, maxStderrBytes: 64, maxOutputFileBytes: 64 * KiB, maxHeldBytes: 256 * KiB, ...partial },
    { onCheckpoint },
  );
  const memory = new WebAssembly.Memory({ initial: 2 });
  wasi.start({ exports: { memory, _start: () => {} } } as unknown as WebAssembly.Instance);
  const table = wasi.imports.wasi_snapshot_preview1 as unknown as Table;
  const budget = (wasi as unknown as { fs: { budget: ShimBudget } }).fs.budget;
  const bytes = new Uint8Array(memory.buffer);
  const view = new DataView(memory.buffer);
  /** Puts `s` at `at` and returns [at, its length]. */
  const str = (s: string, at = 100): [number, number] => {
    const b = new TextEncoder().encode(s);
    bytes.set(b, at);
    return [at, b.length];
  };
  const call = {
    open: (path: string, oflags = 0, rights = RW, dir = 3): number | { errno: number } => {
      const errno = table.path_open!(dir, 0, ...str(path), oflags, rights, 0n, 0, 200);
      return errno === C.ERRNO_SUCCESS ? view.getUint32(200, true) : { errno };
    },
    /** Writes `n` bytes of 'w' from 64 KiB on at the fd's position; returns the errno. */
    write: (fd: number, n: number) => {
      bytes.fill(0x77, 65536, 65536 + n);
      view.setUint32(300, 65536, true);
      view.setUint32(304, n, true);
      return table.fd_write!(fd, 300, 1, 308);
    },
    mkdir: (path: string) => table.path_create_directory!(3, ...str(path)),
    symlink: (target: string, path: string) => table.path_symlink!(...str(target, 20000), 3, ...str(path)),
    link: (from: string, to: string) => table.path_link!(3, 0, ...str(from, 20000), 3, ...str(to)),
    rename: (from: string, to: string) => table.path_rename!(3, ...str(from, 20000), 3, ...str(to)),
    unlink: (path: string) => table.path_unlink_file!(3, ...str(path)),
    rmdir: (path: string) => table.path_remove_directory!(3, ...str(path)),
    close: (fd: number) => table.fd_close!(fd),
  };
  const finish = () => wasi.start({ exports: { memory, _start: () => {} } } as unknown as WebAssembly.Instance);
  return { wasi, table, budget, call, finish };
}

const fdOf = (opened: number | { errno: number }): number => {
  if (typeof opened !== 'number') throw new Error(`path_open: errno ${opened.errno}`);
  return opened;
};

describe("the shim's budget", () => {
  it('comes from the manifest: the output limit plus a sixteenth of the memory limit, at least 64 KiB', () => {
    expect(shimBudgetBytes({ memoryBytes: 32 * MiB, outputBytes: MiB })).toBe(3 * MiB);
    expect(shimBudgetBytes({ memoryBytes: 64 * KiB, outputBytes: 0 })).toBe(64 * KiB);
  });

  it('refuses a symbolic link target past 4095 bytes, and holds every target it keeps', () => {
    const { call, budget } = setup();
    const before = budget.held;
    expect(call.symlink('a'.repeat(SYMLINK_MAX + 1), 'long')).toBe(C.ERRNO_NAMETOOLONG);
    expect(budget.held).toBe(before);
    expect(call.symlink('a'.repeat(SYMLINK_MAX), 'longest')).toBe(C.ERRNO_SUCCESS);
    expect(budget.held - before).toBe(COST.entry + 2 * 'longest'.length + COST.symlink + 2 * SYMLINK_MAX);
    // Distinct targets until the budget says no, not until the donor's memory does.
    let made = 0;
    let errno: number = C.ERRNO_SUCCESS;
    while (made < 1000 && (errno = call.symlink(`${made}/${'t'.repeat(4000)}`, `l${made}`)) === C.ERRNO_SUCCESS) made++;
    expect(errno).toBe(C.ERRNO_NOSPC);
    expect(budget.held).toBeLessThanOrEqual(budget.heldCap);
    expect(made).toBeLessThan(40); // 256 KiB at about 8 KiB a link
    // Removing a link gives its bytes back: one more fits.
    expect(call.unlink('l0')).toBe(C.ERRNO_SUCCESS);
    expect(call.symlink(`again/${'t'.repeat(4000)}`, 'l0')).toBe(C.ERRNO_SUCCESS);
  });

  it('refuses names past 255 bytes wherever a name is made', () => {
    const { call, budget } = setup({ files: [{ path: '/out/in', data: new Uint8Array(1) }] });
    const long = 'n'.repeat(NAME_MAX + 1);
    const before = budget.held;
    expect(call.mkdir(long)).toBe(C.ERRNO_NAMETOOLONG);
    expect(call.open(long, C.OFLAGS_CREAT)).toEqual({ errno: C.ERRNO_NAMETOOLONG });
    expect(call.symlink('in', long)).toBe(C.ERRNO_NAMETOOLONG);
    expect(call.link('in', long)).toBe(C.ERRNO_NAMETOOLONG);
    expect(call.rename('in', long)).toBe(C.ERRNO_NAMETOOLONG);
    expect(call.mkdir(`ok/${long}`)).toBe(C.ERRNO_NOENT); // a missing parent is still NOENT
    expect(budget.held).toBe(before);
    // Three bytes a character: 85 of them fit, 86 do not.
    expect(call.mkdir('€'.repeat(85))).toBe(C.ERRNO_SUCCESS);
    expect(call.mkdir('€'.repeat(86))).toBe(C.ERRNO_NAMETOOLONG);
  });

  it('stops making directories and files at the budget with NOSPC, and removing them gives the room back', () => {
    const { call, budget } = setup();
    const start = budget.held;
    let dirs = 0;
    let errno: number = C.ERRNO_SUCCESS;
    const name = (i: number) => `${String(i).padStart(6, '0')}${'d'.repeat(249)}`;
    while (dirs < 100_000 && (errno = call.mkdir(name(dirs))) === C.ERRNO_SUCCESS) dirs++;
    expect(errno).toBe(C.ERRNO_NOSPC);
    expect(dirs).toBe(Math.floor((256 * KiB) / (COST.directory + COST.entry + 2 * 255))); // the manifest's own (stdio, /out) came on top
    // Nor a file; and a refused open leaves nothing behind.
    const full = budget.held;
    expect(call.open('file', C.OFLAGS_CREAT)).toEqual({ errno: C.ERRNO_NOSPC });
    expect(budget.held).toBe(full);
    expect(call.unlink('file')).toBe(C.ERRNO_NOENT);
    for (let i = 0; i < dirs; i++) expect(call.rmdir(name(i))).toBe(C.ERRNO_SUCCESS);
    expect(budget.held).toBe(start);
    expect(typeof call.open('file', C.OFLAGS_CREAT)).toBe('number');
  });

  it(`opens at most ${MAX_OPEN_FDS} descriptors (EMFILE), makes nothing when it cannot open, and closing one lets one more open`, () => {
    const { call, budget } = setup({ maxHeldBytes: MiB });
    const first = fdOf(call.open('f', C.OFLAGS_CREAT));
    let open = 5; // stdin, stdout, stderr, /out, and `first`
    for (; open < MAX_OPEN_FDS; open++) fdOf(call.open('f'));
    expect(call.open('f')).toEqual({ errno: C.ERRNO_MFILE });
    expect(call.open('new', C.OFLAGS_CREAT)).toEqual({ errno: C.ERRNO_MFILE });
    expect(call.unlink('new')).toBe(C.ERRNO_NOENT); // not made
    expect(call.close(first)).toBe(C.ERRNO_SUCCESS);
    expect(call.open('f')).toBe(first); // the lowest free number
    // A smaller budget runs out first, also with EMFILE.
    const small = setup({ maxHeldBytes: 8 * KiB });
    let n = 0;
    while (typeof small.call.open('.', 0, C.RIGHTS_FD_READDIR) === 'number') n++;
    expect(small.call.open('.', 0, C.RIGHTS_FD_READDIR)).toEqual({ errno: C.ERRNO_MFILE });
    expect(n).toBeLessThan(8 * KiB / COST.descriptor);
    expect(budget.held).toBeLessThanOrEqual(budget.heldCap);
  });

  it('keeps counting a deleted file while it is open, and frees it when the last descriptor closes', () => {
    const { call, budget } = setup({ maxOutputFileBytes: 64 * KiB });
    const a = fdOf(call.open('a', C.OFLAGS_CREAT));
    expect(call.write(a, 64 * KiB)).toBe(C.ERRNO_SUCCESS);
    expect(call.unlink('a')).toBe(C.ERRNO_SUCCESS);
    // Its 64 KiB are still held (and still readable through `a`): a second file has no room.
    const b = fdOf(call.open('b', C.OFLAGS_CREAT));
    expect(call.write(b, 1)).toBe(C.ERRNO_NOSPC);
    expect(call.write(a, 1)).toBe(C.ERRNO_FBIG); // it could grow no further either
    expect(budget.output).toBe(64 * KiB);
    expect(call.close(a)).toBe(C.ERRNO_SUCCESS);
    expect(budget.output).toBe(0);
    expect(call.write(b, 64 * KiB)).toBe(C.ERRNO_SUCCESS);
  });

  it('does not give a deleted or truncated input file\u2019s bytes to the output budget (4 MiB input, 1 MiB cap)', () => {
    const inputs = [{ path: '/out/a', data: new Uint8Array(4 * MiB) }, { path: '/out/b', data: new Uint8Array(4 * MiB) }, { path: '/out/c', data: new Uint8Array(4 * MiB) }];
    const { call, budget, finish } = setup({ files: inputs, maxOutputFileBytes: MiB, maxHeldBytes: 2 * MiB });
    expect(budget.output).toBe(0); // inputs left alone do not count
    expect(call.unlink('a')).toBe(C.ERRNO_SUCCESS);
    expect(budget.output).toBe(0);
    let written = 0;
    for (let i = 0; i < 5; i++) {
      const fd = fdOf(call.open(`new${i}`, C.OFLAGS_CREAT));
      for (let j = 0; j < 16 && call.write(fd, 64 * KiB) === C.ERRNO_SUCCESS; j++) written += 64 * KiB;
      expect(call.close(fd)).toBe(C.ERRNO_SUCCESS);
    }
    expect(written).toBe(MiB);
    for (let i = 0; i < 5; i++) expect(call.unlink(`new${i}`)).toBe(C.ERRNO_SUCCESS);
    expect(budget.output).toBe(0);
    // Truncated, an input is output from then on, counted whole: 1 MiB and no more.
    const b = fdOf(call.open('b', C.OFLAGS_TRUNC));
    for (let j = 0; j < 16; j++) expect(call.write(b, 64 * KiB)).toBe(C.ERRNO_SUCCESS);
    expect(call.write(b, 1)).toBe(C.ERRNO_FBIG);
    // Renamed, an input comes back under its new name: it would be 4 MiB of output.
    expect(call.rename('c', 'c2')).toBe(C.ERRNO_NOSPC);
    expect(call.link('c', 'c3')).toBe(C.ERRNO_NOSPC);
    const result = finish();
    expect(result.files.map((f) => [f.path, f.data.length])).toEqual([['/out/b', MiB]]);
  });

  it('grows a file\u2019s buffer ahead of its length only as far as the budget has room', () => {
    const { call, budget } = setup({ maxOutputFileBytes: 64 * KiB, maxHeldBytes: 64 * KiB + 8 * KiB });
    const fd = fdOf(call.open('f', C.OFLAGS_CREAT));
    // Doubling would reach 128 KiB of buffer for 64 KiB of file; the budget holds it to what fits.
    for (let i = 0; i < 64; i++) {
      expect(call.write(fd, KiB)).toBe(C.ERRNO_SUCCESS);
      expect(budget.held).toBeLessThanOrEqual(budget.heldCap);
    }
  });

  it('keeps stdout in one buffer: a million 1-byte writes hold about what they keep', () => {
    const gc = gcFunction();
    const { table, wasi } = setup({ maxStdoutBytes: MiB });
    const memory = (wasi as unknown as { memory: WebAssembly.Memory }).memory;
    const view = new DataView(memory.buffer);
    view.setUint32(300, 400, true);
    view.setUint32(304, 1, true);
    new Uint8Array(memory.buffer)[400] = 0x6f;
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < 2 ** 20 + 10; i++) table.fd_write!(1, 300, 1, 308);
    gc();
    const after = process.memoryUsage();
    const grew = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    expect(grew).toBeLessThan(3 * MiB); // 1 MiB kept (and, as it grew, the buffer before it); 240 MB as one array per write
    const result = (wasi as unknown as { stdout: { bytes(): Uint8Array; truncated: boolean } }).stdout;
    expect(result.bytes().length).toBe(MiB);
    expect(result.truncated).toBe(true);
  });

  it('gives the page a checkpoint at most once a second, the newest bytes of each', async () => {
    const kept: WasiFile[] = [];
    const { call } = setup({ preopens: ['/checkpoint'], maxOutputFileBytes: MiB, maxHeldBytes: 2 * MiB }, (file) => kept.push(file));
    const save = (i: number) => {
      const fd = fdOf(call.open('state', C.OFLAGS_CREAT | C.OFLAGS_TRUNC));
      expect(call.write(fd, 1000 + i)).toBe(C.ERRNO_SUCCESS);
      expect(call.close(fd)).toBe(C.ERRNO_SUCCESS);
    };
    for (let i = 0; i < 500; i++) save(i);
    expect(kept.map((f) => [f.path, f.data.length])).toEqual([['/checkpoint/state', 1000]]);
    await new Promise((resolve) => setTimeout(resolve, CHECKPOINT_INTERVAL_MS + 50));
    // The next close keeps the newest: here the one it closes.
    save(999);
    expect(kept.map((f) => f.data.length)).toEqual([1000, 1999]);
  });

  it('holds at least what V8 holds for each kind of thing (measured again here)', () => {
    const gc = gcFunction();
    const N = 20_000;
    const kinds: Record<string, (call: ReturnType<typeof setup>['call'], i: number) => number> = {
      file: (call, i) => {
        const fd = call.open(`f${String(i).padStart(7, '0')}`, C.OFLAGS_CREAT);
        return typeof fd === 'number' ? call.close(fd) : fd.errno;
      },
      directory: (call, i) => call.mkdir(`d${String(i).padStart(7, '0')}`),
      symlink: (call, i) => call.symlink('tttttttt', `s${String(i).padStart(7, '0')}`),
      'hard link': (call, i) => call.link('target', `h${String(i).padStart(7, '0')}`),
    };
    for (const [kind, make] of Object.entries(kinds)) {
      const { call, budget } = setup({ maxHeldBytes: 256 * MiB, files: [{ path: '/out/target', data: new Uint8Array(1) }] });
      call.link('target', 'warm-up'); // the target is output from the first link on
      gc();
      const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
      const heldBefore = budget.held;
      for (let i = 0; i < N; i++) expect(make(call, i)).toBe(C.ERRNO_SUCCESS);
      gc();
      const heap = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
      expect(budget.held - heldBefore, `${kind}: held for ${N}, against ${heap} bytes of heap`).toBeGreaterThanOrEqual(heap);
    }
  });
});

/** V8's gc(), without starting Node with --expose-gc. */
function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
