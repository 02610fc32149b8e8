// The yield hook (worker/instrument.ts): an instrumented module behaves exactly like the
// original, on every Wasm program in the repo and on a hand-built module with the constructs a
// rewriter can get wrong (imports, a start function, tables and elements, call_indirect, br_table,
// a loop with a result, branches out of wrapped loops); its probes fire in an endless loop; and
// its work count is the same however often the host is called.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { BUDGET_EXPORT, instrument, InstrumentError, workDone, YIELD_IMPORT } from '../../worker/instrument.ts';
import { runJob, INITIAL_ALLOWANCE } from '../../worker/run-job.ts';
import { capMemory } from '../../src/scheduler/memory-cap.ts';
import { conformancePrograms } from '../helpers/conformance.ts';
import type { WorkerJob } from '../../src/protocol/worker-api.ts';

const read = (path: string) => new Uint8Array(readFileSync(new URL(`../../${path}`, import.meta.url)));
const MiB = 2 ** 20;

function job(module: WebAssembly.Module, partial: Partial<WorkerJob> = {}): WorkerJob {
  return {
    taskId: 'equivalence',
    engine: 'wasi-preview1',
    module,
    args: ['prog'],
    env: [],
    stdin: new Uint8Array(0),
    files: [],
    preopens: ['/out'],
    limits: { memoryBytes: 64 * MiB, outputBytes: MiB },
    cpu: 1,
    // Deterministic, so programs that read clocks or random bytes give the same bytes twice.
    deterministic: true,
    ...partial,
  };
}

/** Every .wasm in the repo that runs to an end, with arguments that make it do real work. */
function programs(): { name: string; wasm: Uint8Array; job: Partial<WorkerJob> }[] {
  const list: { name: string; wasm: Uint8Array; job: Partial<WorkerJob> }[] = [
    { name: 'demo/fractal', wasm: read('demo/fractal/fractal.wasm'), job: { args: ['fractal', '960', '720', '300', '200', '64', '64', '3000'] } },
    { name: 'bench/syscalls', wasm: read('bench/fixtures/syscalls.wasm'), job: { args: ['syscalls', '/out/f', '200'] } },
    { name: 'bench/sha256', wasm: read('bench/fixtures/sha256.wasm'), job: { args: ['sha256', '1'] } },
    { name: 'bench/sieve', wasm: read('bench/fixtures/sieve.wasm'), job: { args: ['sieve', '200000'] } },
    { name: 'wasi/checkpointed', wasm: read('test/fixtures/wasi/checkpointed.wasm'), job: { args: ['checkpointed', '20000'], preopens: ['/checkpoint'] } },
    { name: 'wasi/clockrand', wasm: read('test/fixtures/wasi/clockrand.wasm'), job: { args: ['clockrand'] } },
    { name: 'wasi/nondeterminism', wasm: read('test/fixtures/wasi/nondeterminism.wasm'), job: { args: ['nondeterminism'] } },
    { name: 'wasi/wordfreq', wasm: read('test/fixtures/wasi/wordfreq.wasm'), job: { args: ['wordfreq', '/data', '/out/r.txt'], files: [{ path: '/data/a.txt', data: new TextEncoder().encode('a b a c b a\n') }], preopens: ['/data', '/out'], stdin: new TextEncoder().encode('x y x\n') } },
    { name: 'hostile/bomb', wasm: read('test/fixtures/hostile/bomb.wasm'), job: { args: ['bomb'], limits: { memoryBytes: 16 * MiB, outputBytes: MiB } } },
    { name: 'hostile/recursion', wasm: read('test/fixtures/hostile/recursion.wasm'), job: { args: ['recursion'] } },
    { name: 'hostile/deep', wasm: read('test/fixtures/hostile/deep.wasm'), job: { args: ['deep'] } },
    { name: 'hostile/deep (bounded)', wasm: read('test/fixtures/hostile/deep.wasm'), job: { args: ['deep', '1000'] } },
    { name: 'hostile/trap', wasm: read('test/fixtures/hostile/trap.wasm'), job: { args: ['trap'] } },
    { name: 'hostile/flood', wasm: read('test/fixtures/hostile/flood.wasm'), job: { args: ['flood'] } },
    { name: 'hostile/fsflood', wasm: read('test/fixtures/hostile/fsflood.wasm'), job: { args: ['fsflood'] } },
  ];
  for (const p of conformancePrograms()) list.push({ name: `${p.language} ${p.name}`, wasm: p.wasm, job: p.options });
  return list;
}

describe('instrumented modules behave exactly like the originals', () => {
  it('covers every preview1 .wasm the repo holds, or says where it is tested instead', () => {
    const listed = programs().map((p) => Buffer.from(p.wasm));
    const elsewhere: Record<string, string> = {
      'loop.wasm': 'never ends: "fire inside an endless loop" below',
      'invalid.wasm': 'not a module: "refuses what is not a module" below',
      'truncated.wasm': 'not a module: "refuses what is not a module" below',
      'imports.wasm': 'cannot link: the hostile browser suite (test/e2e/hostile.test.ts)',
    };
    for (const dir of ['demo/fractal', 'bench/fixtures', 'test/fixtures/wasi', 'test/fixtures/conformance', 'test/fixtures/hostile']) {
      for (const file of readdirSync(new URL(`../../${dir}`, import.meta.url)).filter((f) => f.endsWith('.wasm'))) {
        if (elsewhere[file]) continue;
        const bytes = Buffer.from(read(`${dir}/${file}`));
        expect(listed.some((b) => b.equals(bytes)), `${dir}/${file} is not in programs()`).toBe(true);
      }
    }
  });

  // Both capped at the task's memory limit, as the client runs every module.
  const compiled = (bytes: Uint8Array, limits: WorkerJob['limits']) => {
    const capped = capMemory(bytes, limits.memoryBytes);
    if (!capped.ok) throw new Error(capped.message);
    return new WebAssembly.Module(capped.bytes as Uint8Array<ArrayBuffer>);
  };
  for (const program of programs()) {
    it(`${program.name}: same exit code, stdout, stderr, files and error, and a work count`, () => {
      const limits = job(null as unknown as WebAssembly.Module, program.job).limits;
      const original = runJob(job(compiled(program.wasm, limits), program.job));
      const instrumented = runJob(job(compiled(instrument(program.wasm, INITIAL_ALLOWANCE), limits), program.job));
      expect(instrumented.exitCode).toBe(original.exitCode);
      expect(instrumented.error?.code ?? null).toBe(original.error?.code ?? null);
      expect(instrumented.stdout).toEqual(original.stdout);
      expect(instrumented.stderr).toEqual(original.stderr);
      expect(instrumented.files).toEqual(original.files);
      expect(instrumented.truncated).toEqual(original.truncated);
      expect(original.work).toBeNull();
      if (!instrumented.error) expect(instrumented.work).toBeGreaterThan(0);
    });
  }

  it('the same program counts the same work twice, in different runs', () => {
    const module = new WebAssembly.Module(instrument(read('demo/fractal/fractal.wasm'), INITIAL_ALLOWANCE) as Uint8Array<ArrayBuffer>);
    const args = ['fractal', '960', '720', '0', '0', '48', '48', '5000'];
    const a = runJob(job(module, { args }));
    const b = runJob(job(module, { args }));
    expect(a.work).toBe(b.work);
    expect(a.work).toBeGreaterThan(48 * 48);
  });
});

describe('the probes', () => {
  it('fire inside an endless loop, so even it yields to the host', () => {
    const module = new WebAssembly.Module(instrument(read('test/fixtures/hostile/loop.wasm'), 1000) as Uint8Array<ArrayBuffer>);
    const wasi = Object.fromEntries(WebAssembly.Module.imports(module).filter((i) => i.module === 'wasi_snapshot_preview1').map((i) => [i.name, () => 0]));
    let yields = 0;
    const stop = new Error('enough');
    const instance = new WebAssembly.Instance(module, {
      wasi_snapshot_preview1: wasi,
      [YIELD_IMPORT.module]: {
        [YIELD_IMPORT.name]: () => {
          if (++yields === 5) throw stop;
          return 1000;
        },
      },
    });
    expect(() => (instance.exports._start as () => void)()).toThrow(stop);
    expect(yields).toBe(5);
  });

  it('count the same work whatever allowances the host hands out', () => {
    const bytes = instrument(handBuiltModule(), 7);
    for (const allowance of [1, 2, 3, 7, 1000]) {
      const { exports, work } = instantiate(bytes, allowance);
      expect(exports.count!(20)).toBe(210);
      expect(work()).toBe(referenceWork());
    }
  });
});

describe('the rewrite on a hand-built module', () => {
  it('keeps imports, the start function, tables, elements, call_indirect, br_table and a loop with a result working', () => {
    const original = instantiate(handBuiltModule(), 0);
    const instrumented = instantiate(instrument(handBuiltModule(), 5), 3);
    for (const { exports, logged } of [original, instrumented]) {
      expect(logged).toEqual([42]); // the start function ran, and called the import
      expect(exports.count!(10)).toBe(55);
      expect(exports.count!(0)).toBe(0);
      expect([0, 1, 2, 3, 99].map((i) => exports.dispatch!(i))).toEqual([10, 20, 30, 30, 30]);
      expect(exports.indirect!(4)).toBe(10); // table[0] is count
    }
    expect(instrumented.work()).toBeGreaterThan(0);
  });

  it('refuses what is not a module, with an InstrumentError', () => {
    expect(() => instrument(read('test/fixtures/hostile/truncated.wasm'), 10)).toThrow(InstrumentError);
    expect(() => instrument(new Uint8Array([1, 2, 3]), 10)).toThrow(/not a WebAssembly module/);
  });
});

// ---- A module assembled by hand --------------------------------------------------------------

let expectedWork: number | null = null;
/** The probes count(20) executes, from a run that yields at every probe (allowance 1). */
function referenceWork(): number {
  if (expectedWork === null) {
    const { exports, work } = instantiate(instrument(handBuiltModule(), 1), 1);
    exports.count!(20);
    expectedWork = work();
  }
  return expectedWork;
}

function instantiate(bytes: Uint8Array, allowance: number) {
  const logged: number[] = [];
  let usedUp = 0;
  let last = 0;
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  const instance = new WebAssembly.Instance(module, {
    env: { log: (v: number) => void logged.push(v) },
    [YIELD_IMPORT.module]: {
      [YIELD_IMPORT.name]: () => {
        usedUp += last;
        last = allowance;
        return allowance;
      },
    },
  });
  const budget = instance.exports[BUDGET_EXPORT] as WebAssembly.Global | undefined;
  const initial = (budget?.value as number) ?? 0;
  last = initial;
  usedUp = 0;
  const exports = instance.exports as Record<string, ((n: number) => number) | undefined>;
  // Work from the start: what the start function used is counted from the first allowance too.
  const work = () => workDone(usedUp, last, budget!.value as number);
  return { exports, logged, work };
}

/**
 * (import "env" "log" (func (param i32)))          ;; func 0
 * (func $count (param i32) (result i32) (local i32) ;; func 1: n + (n-1) + ... + 1
 *   block (result i32) loop (result i32)
 *     local.get 0 i32.eqz if local.get 1 br 2 end
 *     local.get 1 local.get 0 i32.add local.set 1
 *     local.get 0 i32.const 1 i32.sub local.set 0
 *     br 0
 *   end end)
 * (func $start i32.const 42 call 0)                 ;; func 2
 * (func $dispatch (param i32) (result i32)          ;; func 3
 *   block block block local.get 0 br_table 0 1 2 end i32.const 10 return end i32.const 20 return end i32.const 30)
 * (func $indirect (param i32) (result i32) local.get 0 i32.const 0 call_indirect (type 1))  ;; func 4
 * (table 1 funcref) (elem (i32.const 0) func 1) (start 2)
 */
function handBuiltModule(): Uint8Array {
  const vec = (items: number[][]) => [items.length, ...items.flat()];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const str = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const body = (locals: number[][], code: number[]) => {
    const content = [...vec(locals), ...code, 0x0b];
    return [...leb(content.length), ...content];
  };
  const types = vec([[0x60, 0, 0], [0x60, 1, 0x7f, 1, 0x7f], [0x60, 1, 0x7f, 0]]);
  const imports = vec([[...str('env'), ...str('log'), 0x00, 2]]);
  const functions = vec([[1], [0], [1], [1]]);
  const table = vec([[0x70, 0x00, 1]]);
  const exportsSection = vec([[...str('count'), 0, 1], [...str('dispatch'), 0, 3], [...str('indirect'), 0, 4]]);
  const elements = vec([[0x00, 0x41, 0x00, 0x0b, ...vec([[1]])]]);
  const count = body([[1, 0x7f]], [
    0x02, 0x7f, 0x03, 0x7f,
    0x20, 0, 0x45, 0x04, 0x40, 0x20, 1, 0x0c, 2, 0x0b,
    0x20, 1, 0x20, 0, 0x6a, 0x21, 1,
    0x20, 0, 0x41, 1, 0x6b, 0x21, 0,
    0x0c, 0,
    0x0b, 0x0b,
  ]);
  const start = body([], [0x41, 42, 0x10, 0]);
  const dispatch = body([], [0x02, 0x40, 0x02, 0x40, 0x02, 0x40, 0x20, 0, 0x0e, 2, 0, 1, 2, 0x0b, 0x41, 10, 0x0f, 0x0b, 0x41, 20, 0x0f, 0x0b, 0x41, 30]);
  const indirect = body([], [0x20, 0, 0x41, 0, 0x11, 1, 0]);
  const code = [4, ...count, ...start, ...dispatch, ...indirect];
  return Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, types), ...section(2, imports), ...section(3, functions), ...section(4, table),
    ...section(7, exportsSection), ...section(8, [2]), ...section(9, elements), ...section(10, code),
  ]);
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
