// Edge cases straight against the import table, with a hand-made memory.
import { describe, expect, it } from 'vitest';
import { Wasi, type WasiOptions } from '../../worker/wasi/index.ts';
import * as C from '../../worker/wasi/constants.ts';

type Table = Record<string, (...args: (number | bigint)[]) => number>;

function setup(partial: Partial<WasiOptions> = {}) {
  const wasi = new Wasi({ args: ['p'], env: [], stdin: new Uint8Array(0), files: [], preopens: ['/sandbox'], maxStdoutBytes: 8, maxStderrBytes: 8, maxOutputFileBytes: 16, ...partial });
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
  return { wasi, table, bytes, view, putString };
}

describe('WASI import table', () => {
  it('defines every preview1 function; unsupported ones answer NOSYS', () => {
    const { table } = setup();
    for (const name of C.PREVIEW1_FUNCTIONS) expect(typeof table[name], name).toBe('function');
    expect(table.proc_raise!(1)).toBe(C.ERRNO_NOSYS);
  });

  it('answers BADF for an unknown fd and NOTDIR for path calls on a file fd', () => {
    const { table } = setup();
    expect(table.fd_close!(99)).toBe(C.ERRNO_BADF);
    expect(table.fd_write!(99, 0, 0, 0)).toBe(C.ERRNO_BADF);
    expect(table.fd_prestat_get!(1, 0)).toBe(C.ERRNO_BADF);
    expect(table.path_create_directory!(1, 0, 1)).toBe(C.ERRNO_NOTDIR);
  });

  it('never lets a path climb above its directory fd', () => {
    const { table, putString } = setup({ files: [{ path: '/secret.txt', data: new Uint8Array([1]) }] });
    const len = putString(100, '../secret.txt');
    expect(table.path_open!(3, 0, 100, len, 0, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_NOTCAPABLE);
    const abs = putString(100, '/secret.txt');
    expect(table.path_open!(3, 0, 100, abs, 0, C.RIGHTS_FD_READ, 0n, 0, 200)).toBe(C.ERRNO_NOTCAPABLE);
    const inside = putString(100, 'a/../b');
    expect(table.path_create_directory!(3, 100, inside)).toBe(C.ERRNO_NOENT); // "a" does not exist
  });

  it('sockets: BADF for a bad fd, NOTSOCK for any other', () => {
    const { table } = setup();
    expect(table.sock_recv!(42, 0, 0, 0, 0, 0)).toBe(C.ERRNO_BADF);
    expect(table.sock_send!(1, 0, 0, 0, 0)).toBe(C.ERRNO_NOTSOCK);
    expect(table.sock_accept!(3, 0, 0)).toBe(C.ERRNO_NOTSOCK);
    expect(table.sock_shutdown!(0, 0)).toBe(C.ERRNO_NOTSOCK);
  });

  it('caps stdout and reports the truncation; the program is told all was written', () => {
    const { wasi, table, view, putString } = setup();
    const len = putString(64, 'hello, world');
    view.setUint32(0, 64, true);
    view.setUint32(4, len, true);
    expect(table.fd_write!(1, 0, 1, 16)).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint32(16, true)).toBe(12);
    const result = wasi.start({ exports: { memory: new WebAssembly.Memory({ initial: 1 }), _start: () => {} } } as unknown as WebAssembly.Instance);
    expect(new TextDecoder().decode(result.stdout)).toBe('hello, w');
    expect(result.truncated).toEqual({ stdout: true, stderr: false });
  });

  it('fails file writes past the output budget with NOSPC', () => {
    const { table, view, putString } = setup();
    const name = putString(100, 'big.bin');
    expect(table.path_open!(3, 0, 100, name, C.OFLAGS_CREAT, C.RIGHTS_FD_WRITE, 0n, 0, 200)).toBe(C.ERRNO_SUCCESS);
    const fd = view.getUint32(200, true);
    view.setUint32(0, 300, true);
    view.setUint32(4, 12, true);
    expect(table.fd_write!(fd, 0, 1, 16)).toBe(C.ERRNO_SUCCESS); // 12 of 16 bytes
    expect(table.fd_write!(fd, 0, 1, 16)).toBe(C.ERRNO_NOSPC); // 24 > 16
  });

  it('lays out dirents as the witx says and continues from a cookie', () => {
    const { table, view, bytes } = setup({ files: [{ path: '/sandbox/b', data: new Uint8Array(0) }, { path: '/sandbox/a', data: new Uint8Array(3) }] });
    expect(table.fd_readdir!(3, 1000, 200, 0n, 0)).toBe(C.ERRNO_SUCCESS);
    expect(view.getUint32(0, true)).toBe(2 * (24 + 1));
    expect(view.getBigUint64(1000, true)).toBe(1n); // d_next
    expect(view.getUint32(1016, true)).toBe(1); // d_namlen
    expect(view.getUint8(1020)).toBe(C.FILETYPE_REGULAR_FILE);
    expect(String.fromCharCode(bytes[1024]!)).toBe('a');
    expect(table.fd_readdir!(3, 1000, 200, 1n, 0)).toBe(C.ERRNO_SUCCESS);
    expect(String.fromCharCode(bytes[1024]!)).toBe('b');
    expect(view.getUint32(0, true)).toBe(25);
  });

  it('reports a pointer outside memory as FAULT', () => {
    const { table } = setup();
    expect(table.args_sizes_get!(70000, 0)).toBe(C.ERRNO_FAULT);
  });
});
