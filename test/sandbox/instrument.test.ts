// The yield hook (worker/instrument.ts): an instrumented module behaves exactly like the
// original, on every Wasm program in the repo and on hand-built modules with the constructs a
// rewriter can get wrong (imports, a start function, tables and elements, call_indirect, br_table,
// a loop with a result, loops left from the middle, branches and br_table to the loop from nested
// blocks, return and branches out of the function from loops, a loop with a parameter, loops in
// both arms of an if, an import called in a loop); its probes fire in endless loops and endless
// recursion; functions that neither loop nor call get none; and its work count is exact (every
// loop iteration, batches settled on every way out) and the same however often the host is called.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { BUDGET_EXPORT, instrument, InstrumentError, instrumentInto, instrumentWithStats, LOOP_BATCH, workDone, YIELD_IMPORT } from '../../worker/instrument.ts';
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
    { name: 'bench/hello', wasm: read('bench/fixtures/hello.wasm'), job: { args: ['hello'] } },
    { name: 'wasi/checkpointed', wasm: read('test/fixtures/wasi/checkpointed.wasm'), job: { args: ['checkpointed', '20000'], preopens: ['/checkpoint'] } },
    { name: 'wasi/clockrand', wasm: read('test/fixtures/wasi/clockrand.wasm'), job: { args: ['clockrand'] } },
    { name: 'wasi/phases', wasm: read('test/fixtures/wasi/phases.wasm'), job: { args: ['phases', '2000000', '200000'] } },
    { name: 'wasi/nondeterminism', wasm: read('test/fixtures/wasi/nondeterminism.wasm'), job: { args: ['nondeterminism'] } },
    { name: 'wasi/leftovers', wasm: read('test/fixtures/wasi/leftovers.wasm'), job: { args: ['leftovers', 'make'], preopens: ['/'], files: [{ path: '/in/a.txt', data: new TextEncoder().encode('a\n') }] } },
    { name: 'wasi/wordfreq', wasm: read('test/fixtures/wasi/wordfreq.wasm'), job: { args: ['wordfreq', '/data', '/out/r.txt'], files: [{ path: '/data/a.txt', data: new TextEncoder().encode('a b a c b a\n') }], preopens: ['/data', '/out'], stdin: new TextEncoder().encode('x y x\n') } },
    { name: 'hostile/bomb', wasm: read('test/fixtures/hostile/bomb.wasm'), job: { args: ['bomb'], limits: { memoryBytes: 16 * MiB, outputBytes: MiB } } },
    { name: 'hostile/recursion', wasm: read('test/fixtures/hostile/recursion.wasm'), job: { args: ['recursion'] } },
    { name: 'hostile/deep', wasm: read('test/fixtures/hostile/deep.wasm'), job: { args: ['deep'] } },
    { name: 'hostile/deep (bounded)', wasm: read('test/fixtures/hostile/deep.wasm'), job: { args: ['deep', '1000'] } },
    { name: 'hostile/trap', wasm: read('test/fixtures/hostile/trap.wasm'), job: { args: ['trap'] } },
    { name: 'hostile/flood', wasm: read('test/fixtures/hostile/flood.wasm'), job: { args: ['flood'] } },
    { name: 'hostile/fsflood', wasm: read('test/fixtures/hostile/fsflood.wasm'), job: { args: ['fsflood'] } },
    { name: 'hostile/symlinks', wasm: read('test/fixtures/hostile/symlinks.wasm'), job: { args: ['symlinks'] } },
    { name: 'hostile/names', wasm: read('test/fixtures/hostile/names.wasm'), job: { args: ['names'] } },
    { name: 'hostile/fds', wasm: read('test/fixtures/hostile/fds.wasm'), job: { args: ['fds'] } },
    { name: 'hostile/unlinked', wasm: read('test/fixtures/hostile/unlinked.wasm'), job: { args: ['unlinked'] } },
    {
      name: 'hostile/inputs',
      wasm: read('test/fixtures/hostile/inputs.wasm'),
      // A small output cap: comparing megabytes of output files takes the test runner seconds.
      job: { args: ['inputs'], preopens: ['/out', '/in'], files: [{ path: '/in/a', data: new Uint8Array(MiB) }, { path: '/in/b', data: new Uint8Array(MiB) }], limits: { memoryBytes: 64 * MiB, outputBytes: 64 * 1024 } },
    },
    { name: 'hostile/checkpoints', wasm: read('test/fixtures/hostile/checkpoints.wasm'), job: { args: ['checkpoints'], preopens: ['/checkpoint'] } },
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
      'stdio.wasm': 'a million one-byte fd_writes to stdout: the path hostile/flood takes above, a million times more slowly; the hostile browser suite runs it',
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
      // Bytes compared as Buffers: a deep toEqual of the floods' megabytes took a minute on a busy machine.
      const bytes = (o: typeof original) => ({ stdout: Buffer.from(o.stdout), stderr: Buffer.from(o.stderr), files: o.files.map((f) => ({ path: f.path, data: Buffer.from(f.data) })) });
      const [a, b] = [bytes(instrumented), bytes(original)];
      expect(a.stdout.equals(b.stdout), 'stdout').toBe(true);
      expect(a.stderr.equals(b.stderr), 'stderr').toBe(true);
      expect(a.files.map((f) => f.path)).toEqual(b.files.map((f) => f.path));
      a.files.forEach((f, i) => expect(f.data.equals(b.files[i]!.data), f.path).toBe(true));
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

  it('rewrites a function of a million local declaration groups and 40 000 loop nests at once, and it computes the same', () => {
    // Each nest carries local 1, whose type the rewrite looks up: a walk of the declarations per
    // lookup took 29 s for 20 000 nests here (minutes for a 30 MB module), a hostile module's way to
    // hold a donor's prepare; with the groups tabled once per function it takes milliseconds. The
    // timeout is that margin, not a performance target.
    const leb = (n: number) => {
      const out: number[] = [];
      do {
        const low = n & 0x7f;
        n >>>= 7;
        out.push(n ? low | 0x80 : low);
      } while (n);
      return out;
    };
    const groups = 1_000_000;
    const nests = 40_000;
    const body: number[] = [...leb(groups + 1)];
    for (let g = 0; g < groups; g++) body.push(0x00, 0x7f); // no locals, i32
    body.push(0x01, 0x7f); // local 1: i32
    // loop (local.set 1 (i32.add (local.get 1) (i32.const 1))) br_if 0 while local 1 < param 0 end
    for (let n = 0; n < nests; n++) body.push(0x03, 0x40, 0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01, 0x20, 0x00, 0x49, 0x0d, 0x00, 0x0b);
    body.push(0x20, 0x01, 0x0b);
    const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
    const wasm = new Uint8Array([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...section(1, [0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f]), // (i32) -> i32
      ...section(3, [0x01, 0x00]),
      ...section(7, [0x01, 0x01, 0x66, 0x00, 0x00]), // export "f"
      ...section(10, [0x01, ...leb(body.length), ...body]),
    ]);
    const run = (bytes: Uint8Array) => {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), { [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: () => 1000 } });
      return (instance.exports.f as (limit: number) => number)(5000);
    };
    expect(run(instrument(wasm, 1000))).toBe(run(wasm));
  }, 20_000);

  it('hands the data and custom sections after the code on as views of the input, not through the rewriter, and drops only "name"', () => {
    // flite is 21.5 MB of which 0.2 MiB is code: copied into the rewriter's fresh memory and out
    // again, its data took three quarters of the rewrite.
    const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
    const str = (s: string) => [s.length, ...new TextEncoder().encode(s)];
    // (func (param $n i32) (result i32) (local $sum i32) loop sum += mem[n]; n -= 1; br_if while n >= 0 end sum)
    const sum = [0x01, 0x01, 0x7f, 0x03, 0x40, 0x20, 1, 0x20, 0, 0x2d, 0, 0, 0x6a, 0x21, 1, 0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x41, 0, 0x4e, 0x0d, 0, 0x0b, 0x20, 1, 0x0b];
    const wasm = Uint8Array.from([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
      ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7f]), ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
      ...section(7, [1, ...str('sum'), 0, 0]),
      ...section(10, [1, ...leb(sum.length), ...sum]),
      ...section(0, [...str('name'), 1, 4, 1, 0, ...str('sum')]),
      ...section(11, [1, 0, 0x41, 16, 0x0b, ...str('hi!')]), // "hi!" at 16
      ...section(0, [...str('other'), 1, 2, 3]),
    ]);
    const trailing = instrumentInto(wasm, 1000, (pieces) => pieces.slice(1).map((piece) => ({ view: piece.buffer === wasm.buffer, id: piece[0] })));
    expect(trailing).toEqual([{ view: true, id: 11 }, { view: true, id: 0 }]);
    const rewritten = instrument(wasm, 1000);
    expect(instrumentInto(wasm, 1000, (pieces) => capMemory(pieces, 2 * 65536))).toEqual(capMemory(rewritten, 2 * 65536)); // as the preparer caps it
    const module = new WebAssembly.Module(rewritten as Uint8Array<ArrayBuffer>);
    expect(WebAssembly.Module.customSections(module, 'name')).toHaveLength(0); // its function indices would be wrong
    expect([...new Uint8Array(WebAssembly.Module.customSections(module, 'other')[0]!)]).toEqual([1, 2, 3]);
    const run = (m: WebAssembly.Module) => (new WebAssembly.Instance(m, { [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: () => 1000 } }).exports.sum as (n: number) => number)(18);
    expect(run(module)).toBe(104 + 105 + 33);
    expect(run(new WebAssembly.Module(wasm))).toBe(104 + 105 + 33);
  });

  it('refuses what is not a module, with an InstrumentError', () => {
    expect(() => instrument(read('test/fixtures/hostile/truncated.wasm'), 10)).toThrow(InstrumentError);
    // A million empty custom sections after the code: refused at the 257th, not walked to the end.
    const hello = read('bench/fixtures/hello.wasm');
    const sections = new Uint8Array(hello.length + 2 * 1_000_000);
    sections.set(hello);
    for (let at = hello.length; at < sections.length; at += 2) sections[at + 1] = 0; // id 0, size 0
    expect(() => instrument(sections, 10)).toThrow(/too many sections/);
    expect(() => instrument(new Uint8Array([1, 2, 3]), 10)).toThrow(/not a WebAssembly module/);
  });
});

describe('the rewrite of loops and calls', () => {
  const original = runTricky(trickyModule(), 0);

  it('every function returns what the original does, leaves the same memory, and counts the same work at any allowance', () => {
    const bytes = instrument(trickyModule(), 5);
    let reference: number[] | null = null;
    for (const allowance of [1, 2, 3, 7, 1000]) {
      const run = runTricky(bytes, allowance);
      expect(run.results).toEqual(original.results);
      expect(run.memory).toEqual(original.memory);
      reference ??= run.work;
      expect(run.work).toEqual(reference);
      if (allowance === 1) expect(run.yields).toBeGreaterThan(10);
    }
  });

  it('saves the f64 locals of a nest without calls around its host calls, and only there', () => {
    // floatNest's two loops each have a yield site; both save locals 4 and 6, the f64 ones the nest uses.
    expect(instrumentWithStats(trickyModule('floatNest'), 5).stats).toMatchObject({ wrappedLoops: 2, savingSites: 2, savedLocals: 4 });
    // A nest that calls saves nothing: its sites call $flush.
    expect(instrumentWithStats(trickyModule('nestWithCall'), 5).stats).toMatchObject({ savingSites: 0, savedLocals: 0 });
  });

  it('saves the integer locals that a nest without calls or floats carries around its loops (version 6), and not those it writes first', () => {
    // nest3's three loops each have a yield site; each saves locals 1, 3 and 0, read before they
    // are written; local 2 is set before it is read, so it carries nothing to a loop's top.
    expect(instrumentWithStats(trickyModule('nest3'), 5).stats).toMatchObject({ wrappedLoops: 3, savingSites: 3, savedLocals: 9 });
    // nestWithStack carries locals 1, 0, 2 and 3: four, still saved; floatNest's integers are not (its floats are).
    expect(instrumentWithStats(trickyModule('nestWithStack'), 5).stats).toMatchObject({ savingSites: 2, savedLocals: 8 });
  });

  it('counts every loop iteration, in batches that reach the budget however the function is left', () => {
    // count(n) loops n times; the loop probe runs once per iteration, and nothing is lost at its
    // return though n is no multiple of the batch.
    for (const n of [0, 1, LOOP_BATCH - 1, LOOP_BATCH, LOOP_BATCH + 1, 5 * LOOP_BATCH + 3]) {
      const { exports, work } = instantiate(instrument(handBuiltModule(), 100_000), 100_000);
      const before = work();
      exports.count!(n);
      const ran = work() - before;
      const again = instantiate(instrument(handBuiltModule(), 100_000), 100_000);
      const before2 = again.work();
      again.exports.count!(n + 1);
      expect(again.work() - before2 - ran, `count(${n})`).toBe(1); // one more iteration, one more probe
    }
  });

  it('puts no probe in a function that neither loops nor recurses, nor in one that only calls such functions', () => {
    const leaf = trickyModule('leafAdd');
    const caller = trickyModule('callerAdd');
    // Their bodies are copied as they are: each module grows by the same yield import, $flush,
    // budget and export alone (version 3 gave every function that calls an entry probe).
    expect(instrument(caller, 5).length - caller.length).toBe(instrument(leaf, 5).length - leaf.length);
    for (const [bytes, name] of [[leaf, 'leafAdd'], [caller, 'callerAdd']] as const) {
      const { exports } = instantiateTricky(instrument(bytes, 1), () => {
        throw new Error(`${name} yielded`);
      });
      expect(exports[name]!(41)).toBe(42);
    }
  });

  it('probes the functions of a call tree too large to run unprobed, and only those', () => {
    // fanout(k) calls fanout(k-1) twice: without a probe, 2^k calls between two yields.
    const { bytes, stats } = instrumentWithStats(trickyModule(), 1000);
    expect(stats.probedForCalls).toBeGreaterThan(0);
    expect(stats.probedForCalls).toBeLessThan(FANOUT_DEPTH);
    let yields = 0;
    const stop = new Error('enough');
    const { exports } = instantiateTricky(bytes, () => {
      if (++yields === 5) throw stop;
      return 1000;
    });
    const plain = instantiateTricky(trickyModule(), () => 0).exports;
    expect(exports.fanout12!(3)).toBe(plain.fanout12!(3));
    expect(() => exports.fanoutTop!(3)).toThrow(stop);
    expect(yields).toBe(5);
  });

  for (const fn of ['endlessInner', 'endlessOuter', 'endlessUnrolled', 'endlessRecursion', 'endlessMutualA', 'endlessIndirect']) {
    it(`${fn}: an endless loop or recursion still yields`, () => {
      const bytes = instrument(trickyModule(), 1000);
      let yields = 0;
      const stop = new Error('enough');
      const { exports } = instantiateTricky(bytes, () => {
        if (++yields === 5) throw stop;
        return 1000;
      });
      expect(() => exports[fn]!(7)).toThrow(stop);
      expect(yields).toBe(5);
    });
  }
});

// ---- A module of tricky loops, assembled from mnemonics ----------------------------------------

const TRICKY_INPUTS = [0, 1, 2, 3, 5, 17, 64, 101, 300];
/** The fanout functions' depth: fanoutTop makes 2^FANOUT_DEPTH calls. */
const FANOUT_DEPTH = 40;

/**
 * The functions of trickyModule(), each (param i32) (result i32), in their order; the endless ones
 * are not run by runTricky. `locals` i32 locals, then `floats` f64 ones.
 */
const TRICKY: { name: string; locals: number; floats?: number; code: string }[] = [
  // A loop with a result, left from the middle (a branch with a value out of an if) or by falling off its end.
  { name: 'midExit', locals: 3, code: `
    block i32
      loop i32
        local.get 1 local.get 0 i32.ge_s if - local.get 2 i32.const 1000 i32.add br 2 end
        local.get 2 local.get 1 i32.add local.set 2
        local.get 1 i32.const 1 i32.add local.set 1
        local.get 2
        local.get 1 i32.const 13 i32.rem_u br_if 0
      end
    end` },
  // Branches to the loop from nested blocks and an if, and a br_table to the loop, to blocks in it and out of it.
  { name: 'continueNested', locals: 3, code: `
    block -
      loop -
        local.get 1 i32.const 1 i32.add local.set 1
        local.get 1 local.get 0 i32.gt_s br_if 1
        block -
          block -
            local.get 1 i32.const 7 i32.rem_u
            br_table 0,1,2,2,0,1,2,3
          end
          local.get 2 local.get 1 i32.const 2 i32.mul i32.add local.set 2
          local.get 1 i32.const 5 i32.rem_u i32.eqz if - br 2 end
        end
        local.get 2 local.get 1 i32.xor local.set 2
        br 0
      end
    end
    local.get 2` },
  // A return inside a loop, and a branch out of the function from a loop.
  { name: 'returnInLoop', locals: 3, code: `
    loop -
      local.get 1 local.get 1 i32.mul local.get 0 i32.gt_u if - local.get 1 return end
      local.get 1 i32.const 1 i32.add local.set 1
      local.get 1 i32.const 1 i32.add local.get 1 i32.const 12 i32.eq br_if 1 drop
      br 0
    end
    i32.const -1` },
  // A loop with a parameter (multi-value): left as it was, its probe inside.
  { name: 'loopParams', locals: 3, code: `
    local.get 0
    loop t0
      i32.const 3 i32.mul i32.const 7 i32.add i32.const 65535 i32.and
      local.get 1 i32.const 1 i32.add local.tee 1 local.get 0 i32.lt_u br_if 0
    end` },
  // A nest: inner loops in a block, in an if's then arm and in its else arm, code after each; the inner
  // loops branch to the outer loop (continue), out of both (a value), and out of the function; the
  // outer loop has a result and returns from its middle; memory is written.
  { name: 'nest', locals: 3, code: `
    block i32
      loop i32
        local.get 1 i32.const 1 i32.add local.set 1
        local.get 1 local.get 0 i32.gt_u if - local.get 3 br 2 end
        local.get 1 i32.const 250 i32.eq if - local.get 3 i32.const 7 i32.xor return end
        block -
          local.get 1 i32.const 3 i32.rem_u i32.eqz br_if 0
          local.get 1 local.set 2
          loop -
            local.get 2 i32.const 255 i32.and
            local.get 2 i32.const 255 i32.and i32.load8_u local.get 1 i32.xor
            i32.store8
            local.get 2 i32.const 7 i32.and i32.eqz if - br 3 end
            local.get 2 local.get 1 i32.add local.tee 2 local.get 0 i32.const 4 i32.mul i32.lt_u br_if 0
          end
          local.get 3 local.get 2 i32.add local.set 3
        end
        local.get 1 i32.const 1 i32.and
        if -
          i32.const 0 local.set 2
          loop -
            local.get 3 local.get 2 i32.xor local.set 3
            local.get 2 i32.const 1 i32.add local.tee 2 local.get 1 i32.const 5 i32.rem_u i32.lt_u br_if 0
          end
          local.get 3 i32.const 1 i32.add local.set 3
        else
          local.get 1 local.set 2
          loop -
            local.get 3 i32.const 31 i32.mul local.get 2 i32.add local.set 3
            local.get 3 local.get 1 i32.const 98 i32.eq br_if 3 drop
            local.get 3 i32.const 11 i32.add local.get 1 i32.const 202 i32.eq br_if 4 drop
            local.get 2 i32.const 1 i32.sub local.tee 2 i32.const 0 i32.gt_s br_if 0
          end
        end
        local.get 3 i32.const 16777215 i32.and local.set 3
        br 0
      end
    end` },
  // A nest whose inner loop has a result and leaves from its middle, its outer loop falling off its end.
  { name: 'midExitNest', locals: 3, code: `
    loop i32
      local.get 1 i32.const 1 i32.add local.set 1
      block i32
        i32.const 0 local.set 2
        loop i32
          local.get 2 i32.const 1 i32.add local.set 2
          local.get 3 local.get 2 i32.add local.set 3
          local.get 2 local.get 2 local.get 1 i32.ge_u br_if 1 drop
          local.get 2
          local.get 2 i32.const 9 i32.lt_u br_if 0
        end
      end
      local.get 3 i32.add local.set 3
      local.get 3
      local.get 1 local.get 0 i32.lt_u br_if 0
    end` },
  // An outer loop with a value on the operand stack across its inner loop: no resume copy can start there.
  { name: 'nestWithStack', locals: 3, code: `
    block i32
      loop i32
        local.get 1 i32.const 1 i32.add local.tee 1 local.get 0 i32.gt_u if - local.get 2 br 2 end
        local.get 2
        loop - local.get 3 i32.const 1 i32.add local.tee 3 i32.const 3 i32.rem_u br_if 0 end
        local.get 3 i32.add local.set 2
        br 0
      end
    end` },
  // A nest without calls that carries f64 values (locals 4 and 6) through both loops: its yield
  // sites save them to globals around the host call and read them back (local 5 is never used).
  { name: 'floatNest', locals: 3, floats: 3, code: `
    loop -
      f64.const 0.5 local.set 4
      i32.const 0 local.set 2
      loop -
        local.get 4 f64.const 1.5 f64.mul local.get 2 f64.convert_i32_u f64.add local.set 4
        local.get 4 f64.const 1000 f64.gt if - local.get 4 f64.const 0.25 f64.mul local.set 4 end
        local.get 2 i32.const 1 i32.add local.tee 2 i32.const 100 i32.lt_u br_if 0
      end
      local.get 6 local.get 4 f64.add local.set 6
      local.get 1 i32.const 1 i32.add local.tee 1 local.get 0 i32.lt_u br_if 0
    end
    local.get 6 f64.const 8 f64.mul i32.trunc_f64_u` },
  // An outer loop that calls: left as it was.
  { name: 'nestWithCall', locals: 3, code: `
    block -
      loop -
        local.get 1 i32.const 1 i32.add local.tee 1 local.get 0 i32.gt_u br_if 1
        local.get 1 call 0
        i32.const 0 local.set 2
        loop - local.get 2 i32.const 1 i32.add local.tee 2 local.get 1 i32.lt_u br_if 0 end
        br 0
      end
    end
    global.get 0` },
  // Three loops deep: the middle one is a nest's outer loop, inside a wrapped loop.
  { name: 'nest3', locals: 3, code: `
    loop -
      i32.const 0 local.set 2
      loop -
        block -
          local.get 2 local.get 1 i32.and br_if 0
          loop -
            local.get 3 i32.const 1 i32.add local.tee 3 i32.const 7 i32.rem_u br_if 0
          end
        end
        local.get 2 i32.const 1 i32.add local.tee 2 i32.const 6 i32.lt_u br_if 0
      end
      local.get 1 i32.const 1 i32.add local.tee 1 local.get 0 i32.lt_u br_if 0
    end
    local.get 3` },
  { name: 'endlessInner', locals: 3, code: `
    loop -
      local.get 1 i32.const 1 i32.add local.set 1
      loop - local.get 2 i32.const 1 i32.add local.set 2 br 0 end
      br 0
    end
    i32.const 0` },
  { name: 'endlessOuter', locals: 3, code: `
    loop -
      i32.const 0 local.set 1
      loop - local.get 1 i32.const 1 i32.add local.tee 1 i32.const 10 i32.lt_u br_if 0 end
      br 0
    end
    i32.const 0` },
  // No loop, no call: no probe. And one that calls only the import: none either.
  { name: 'leafAdd', locals: 0, code: 'local.get 0 i32.const 1 i32.add' },
  { name: 'callerAdd', locals: 0, code: 'local.get 0 call 0 local.get 0 i32.const 1 i32.add' },
  // Recursion without a loop: only entry probes can yield in it (@name: that function's index,
  // #name: its slot in the table). Directly, through another function, and through the table.
  { name: 'endlessRecursion', locals: 0, code: 'local.get 0 call @endlessRecursion' },
  { name: 'endlessMutualA', locals: 0, code: 'local.get 0 call @endlessMutualB' },
  { name: 'endlessMutualB', locals: 0, code: 'local.get 0 i32.const 1 i32.add call @endlessMutualA' },
  { name: 'endlessIndirect', locals: 0, code: 'local.get 0 i32.const #endlessIndirect call_indirect 0' },
  // A call tree without loops or recursion, 2^FANOUT_DEPTH calls from its top.
  { name: 'fanout0', locals: 0, code: 'local.get 0 i32.const 1 i32.add' },
  ...Array.from({ length: FANOUT_DEPTH }, (_, k) => ({
    name: k === FANOUT_DEPTH - 1 ? 'fanoutTop' : `fanout${k + 1}`,
    locals: 0,
    code: `local.get 0 call @fanout${k} local.get 0 call @fanout${k} i32.add i32.const 16777215 i32.and`,
  })),
  { name: 'endlessUnrolled', locals: 3, code: `
    block -
      loop -
        local.get 1 i32.const 1 i32.add local.tee 1 i32.const -1 i32.eq br_if 1
        local.get 1 i32.const 1 i32.and br_if 0
        br 0
      end
    end
    i32.const 0` },
];

/**
 * (import "env" "log" (func (param i32)))  ;; func 0: adds to global 0
 * (type t0 (func (param i32) (result i32)))
 * (memory 1) (export "memory"), (global (mut i32)), and TRICKY's functions, exported by name
 * (all of them, or only `only`), and in a table in their order.
 */
function trickyModule(only?: string): Uint8Array {
  const fns = TRICKY.filter((f) => !only || f.name === only);
  const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const str = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const body = (locals: number, floats: number, code: number[]) => {
    const content = [...vec(floats ? [[locals, 0x7f], [floats, 0x7c]] : [[locals, 0x7f]]), ...code, 0x0b];
    return [...leb(content.length), ...content];
  };
  const types = vec([[0x60, 1, 0x7f, 1, 0x7f], [0x60, 1, 0x7f, 0]]);
  const imports = vec([[...str('env'), ...str('log'), 0x00, 1]]);
  const functions = vec(fns.map(() => [0]));
  const memory = vec([[0x00, 1]]);
  const globals = vec([[0x7f, 0x01, 0x41, 0x00, 0x0b]]);
  const exportsSection = vec([[...str('memory'), 2, 0], ...fns.map((f, i) => [...str(f.name), 0, i + 1])]);
  const named = (code: string) => code.replace(/([@#])(\w+)/g, (_, sigil: string, name: string) => {
    const i = fns.findIndex((f) => f.name === name);
    if (i < 0) throw new Error(`trickyModule: no function ${name}`);
    return String(sigil === '@' ? i + 1 : i);
  });
  const code = vec(fns.map((f) => body(f.locals, f.floats ?? 0, asm(named(f.code)))));
  const table = vec([[0x70, 0x00, ...leb(fns.length)]]);
  const elements = vec([[0x00, 0x41, 0x00, 0x0b, ...vec(fns.map((_, i) => leb(i + 1)))]]);
  return Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, types), ...section(2, imports), ...section(3, functions), ...section(4, table), ...section(5, memory),
    ...section(6, globals), ...section(7, exportsSection), ...section(9, elements), ...section(10, code),
  ]);
}

function instantiateTricky(bytes: Uint8Array, onYield: (left: number) => number) {
  let logged = 0;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {
    env: { log: (v: number) => void (logged += v) },
    [YIELD_IMPORT.module]: { [YIELD_IMPORT.name]: onYield },
  });
  const exports = instance.exports as Record<string, ((n: number) => number) | undefined>;
  return { exports, memory: instance.exports.memory as WebAssembly.Memory, budget: instance.exports[BUDGET_EXPORT] as WebAssembly.Global | undefined, logged: () => logged };
}

/** Every finite function of trickyModule() on every input, in a fresh instance each; `allowance` 0: not instrumented. */
function runTricky(bytes: Uint8Array, allowance: number) {
  const results: number[][] = [];
  const memory: number[][] = [];
  const work: number[] = [];
  let yields = 0;
  for (const { name } of TRICKY.filter((f) => !f.name.startsWith('endless') && !f.name.startsWith('fanout'))) {
    for (const n of TRICKY_INPUTS) {
      let usedUp = 0;
      let last = 0;
      let calls = 0;
      const { exports, memory: mem, budget, logged } = instantiateTricky(bytes, (left) => {
        // A rewrite that yields without going on would otherwise hang the suite.
        if (++calls > 10_000_000) throw new Error(`${name}(${n}) yields and yields`);
        if (left > 0) throw new Error(`${name}(${n}) yielded with ${left} left`);
        yields++;
        usedUp += last - left;
        last = allowance;
        return allowance;
      });
      last = (budget?.value as number) ?? 0;
      results.push([exports[name]!(n), logged()]);
      memory.push(Array.from(new Uint8Array(mem.buffer, 0, 256)));
      if (budget) work.push(workDone(usedUp, last, budget.value as number));
    }
  }
  return { results, memory, work, yields };
}

const OPCODES: Record<string, number> = {
  unreachable: 0x00, nop: 0x01, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, br_if: 0x0d, br_table: 0x0e,
  return: 0x0f, call: 0x10, call_indirect: 0x11, drop: 0x1a, select: 0x1b, 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22, 'global.get': 0x23,
  'global.set': 0x24, 'i32.load': 0x28, 'i32.load8_u': 0x2d, 'i32.store': 0x36, 'i32.store8': 0x3a, 'i32.const': 0x41, 'i32.eqz': 0x45,
  'i32.eq': 0x46, 'i32.ne': 0x47, 'i32.lt_s': 0x48, 'i32.lt_u': 0x49, 'i32.gt_s': 0x4a, 'i32.gt_u': 0x4b, 'i32.le_s': 0x4c,
  'i32.ge_s': 0x4e, 'i32.ge_u': 0x4f, 'i32.add': 0x6a, 'i32.sub': 0x6b, 'i32.mul': 0x6c, 'i32.rem_u': 0x70, 'i32.and': 0x71,
  'i32.xor': 0x73, 'f64.const': 0x44, 'f64.gt': 0x64, 'f64.add': 0xa0, 'f64.mul': 0xa2, 'i32.trunc_f64_u': 0xab, 'f64.convert_i32_u': 0xb8,
};

/** Mnemonics to bytes: a block type is `-`, `i32` or `tN` (a type index); br_table's labels are one comma-separated word, the default last. */
function asm(text: string): number[] {
  const words = text.trim().split(/\s+/);
  const out: number[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const op = OPCODES[word];
    if (op === undefined) throw new Error(`asm: unknown mnemonic ${word}`);
    out.push(op);
    const next = () => words[++i]!;
    if (op === 0x02 || op === 0x03 || op === 0x04) {
      const bt = next();
      out.push(bt === '-' ? 0x40 : bt === 'i32' ? 0x7f : Number(bt.slice(1)));
    } else if (op === 0x0e) {
      const labels = next().split(',').map(Number);
      out.push(...leb(labels.length - 1), ...labels.flatMap(leb));
    } else if (op === 0x41) {
      out.push(...sleb(Number(next())));
    } else if (op === 0x44) {
      out.push(...new Uint8Array(new Float64Array([Number(next())]).buffer));
    } else if (op === 0x11) {
      out.push(...leb(Number(next())), 0); // type, table 0
    } else if (op === 0x0c || op === 0x0d || op === 0x10 || (op >= 0x20 && op <= 0x24)) {
      out.push(...leb(Number(next())));
    } else if (op >= 0x28 && op <= 0x3e) {
      out.push(0, 0); // align, offset
    }
  }
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

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
  let calls = 0;
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  const instance = new WebAssembly.Instance(module, {
    env: { log: (v: number) => void logged.push(v) },
    [YIELD_IMPORT.module]: {
      [YIELD_IMPORT.name]: (left: number) => {
        if (++calls > 10_000_000) throw new Error('it yields and yields'); // a rewrite that never goes on would hang the suite
        usedUp += last - left;
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
