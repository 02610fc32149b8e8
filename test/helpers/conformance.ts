/**
 * The conformance programs in C, Rust and AssemblyScript (test/fixtures/wasi, test/fixtures/conformance),
 * with the inputs each runs on, and the few lines where Node's WASI (uvwasi) is not the reference
 * because it answers for its host rather than for the WASI spec. Used by the Node comparison
 * (test/wasi/conformance.test.ts) and by the browser run (test/e2e/wasi-conformance.test.ts).
 */
import { readFileSync } from 'node:fs';
import type { WasiOptions } from '../../worker/wasi/index.ts';

const text = (s: string) => new TextEncoder().encode(s);
const fixture = (path: string) => new Uint8Array(readFileSync(new URL(`../fixtures/${path}`, import.meta.url)));

export interface ConformanceProgram {
  name: string;
  language: 'C' | 'Rust' | 'AssemblyScript';
  wasm: Uint8Array;
  options: Pick<WasiOptions, 'args' | 'env' | 'stdin' | 'files' | 'preopens'>;
  /**
   * Lines of stdout where uvwasi is not the reference: what the shim must print there, and why.
   * Every other line must equal uvwasi's byte for byte.
   */
  differences: { line: RegExp; ours: string; why: string }[];
}

export function conformancePrograms(): ConformanceProgram[] {
  return [
    {
      name: 'fsops',
      language: 'C',
      wasm: fixture('wasi/fsops.wasm'),
      options: { args: ['fsops', '/work'], env: [], stdin: new Uint8Array(0), files: [{ path: '/work/keep.txt', data: text('kept\n') }], preopens: ['/work'] },
      differences: [],
    },
    {
      name: 'errnos',
      language: 'C',
      wasm: fixture('wasi/errnos.wasm'),
      options: {
        args: ['errnos'],
        env: [],
        stdin: new Uint8Array(0),
        files: [{ path: '/p/file.txt', data: text('hello') }, { path: '/p/dir/.keep', data: new Uint8Array(0) }],
        preopens: ['/p'],
      },
      differences: [],
    },
    {
      name: 'rustconf',
      language: 'Rust',
      wasm: fixture('conformance/rustconf.wasm'),
      options: {
        args: ['rustconf', '/work'],
        env: [['RUSTCONF_EXIT', '3'], ['LANG', 'C.UTF-8']],
        stdin: text('one\ntwo\nthree\n'),
        files: [{ path: '/work/keep.txt', data: text('kept\n') }],
        preopens: ['/work'],
      },
      differences: [],
    },
    {
      name: 'asconf',
      language: 'AssemblyScript',
      wasm: fixture('conformance/asconf.wasm'),
      options: { args: ['asconf', 'x'], env: [['A', '1']], stdin: text('stdin bytes\n'), files: [{ path: '/p/hello.txt', data: text('hello world\n') }], preopens: ['/p'] },
      differences: [
        {
          line: /^ {2}append now /,
          ours: '  append now 1',
          why: 'uvwasi returns the host\'s raw open flags (Linux O_APPEND is 0x400), not WASI fdflags: the APPEND bit reads 0 though appends happen',
        },
        {
          line: /^path_readlink short buffer /,
          ours: 'path_readlink short buffer 0 n=3 [hel]',
          why: 'POSIX readlink (the witx\'s model, and the upstream suite\'s readlink test) places as many bytes of the target as fit and returns their count; uvwasi answers NOBUFS',
        },
        {
          line: /^path_readlink exact fit /,
          ours: 'path_readlink exact fit 0 n=9 [hello.txt]',
          why: 'the target fills the buffer exactly, and POSIX places it all (readlink adds no NUL); uvwasi keeps room for a NUL it writes and answers NOBUFS',
        },
        {
          line: /^path_readlink empty buffer /,
          ours: 'path_readlink empty buffer 0 n=0 []',
          why: 'no byte fits, so none is placed and the count is 0 (POSIX defines no error for it; Linux alone says EINVAL); uvwasi answers NOBUFS',
        },
        {
          line: /^ {2}entries /,
          ours: '  entries .(3) ..(3) dir(3) linked.txt(4) made.txt(4) sym.txt(7)',
          why: 'POSIX readdir and the upstream suite\'s fd_readdir test list "." and ".." in every directory; uvwasi (libuv\'s scandir) leaves them out',
        },
        {
          line: /^ {2}\. at /,
          ours: '  . at 0 itself true, .. at 1 itself true; in dir/ .. at 1 the preopen true',
          why: 'as the line above: the shim lists "." (the directory) and ".." (its parent; at the preopen, the top, the directory itself, as "/.." is "/") first; uvwasi lists neither',
        },
        {
          line: /^poll_oneoff fd_write stdout /,
          ours: 'poll_oneoff fd_write stdout 0 nevents=1 userdata=9 error=0 type=2',
          why: 'uvwasi polls fds with epoll, which refuses regular files (EPERM); a regular file is always ready (POSIX poll), which the shim reports',
        },
        {
          line: /^sock_recv /,
          ours: 'sock_recv bad fd 8 not a socket 57',
          why: 'the spec\'s errno for a descriptor that is not a socket is NOTSOCK; uvwasi checks socket rights first and answers NOTCAPABLE',
        },
        {
          line: /^sock_send /,
          ours: 'sock_send bad fd 8 not a socket 57',
          why: 'as sock_recv',
        },
        {
          line: /^sock_shutdown /,
          ours: 'sock_shutdown bad fd 8 not a socket 57',
          why: 'uvwasi does not implement sock_shutdown (NOTSUP for any fd); the spec gives BADF for a bad descriptor and NOTSOCK for a non-socket',
        },
      ],
    },
  ];
}

/**
 * Compares two stdouts line by line: equal everywhere, except the program's known differences, where
 * the shim's line must be exactly the expected one. Returns the problems, empty when it conforms.
 */
export function compareStdout(program: ConformanceProgram, ours: string, reference: string): string[] {
  const a = ours.split('\n');
  const b = reference.split('\n');
  const problems: string[] = [];
  if (a.length !== b.length) problems.push(`${program.name}: ${a.length} lines, reference ${b.length}`);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const known = program.differences.find((d) => d.line.test(b[i] ?? '') || d.line.test(a[i] ?? ''));
    if (known) {
      if (a[i] !== known.ours) problems.push(`${program.name} line ${i + 1}: expected ${JSON.stringify(known.ours)}, got ${JSON.stringify(a[i])}`);
    } else if (a[i] !== b[i]) {
      problems.push(`${program.name} line ${i + 1}: ${JSON.stringify(a[i])} but uvwasi says ${JSON.stringify(b[i])}`);
    }
  }
  return problems;
}
