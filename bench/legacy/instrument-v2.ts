/**
 * The yield hook: rewrites a verified module so that it counts its own work and calls the host
 * every so often, the idea of Wasmtime's fuel. A probe at every function entry and every loop
 * header decrements a counter; when it reaches zero the module calls `dewgrid.yield`, which naps,
 * pauses or returns at once, and answers the next allowance. No code runs long without passing a
 * probe: every way back to the top of a loop passes its header's, or (in an unrolled loop) runs
 * forward through at most MAX_COPIES copies of the body to it.
 *
 * The counter lives in a global between functions and in a local of each function while it runs
 * (a register, where a global would cost a load and a store per loop iteration): the local is
 * loaded at entry and after every call, and stored back before every call and every way out of
 * the function (return, a branch to its outermost label, its final end). A trap leaves the global
 * behind, which only matters for the work count of a run that failed anyway.
 *
 * The host call stays out of hot loops: the engine saves every value a loop keeps in registers
 * around any call it can reach, however rarely, so a loop's probe branches out of the loop to
 * call, and a loop nest's inner loops branch out of the outer loop too. A tight innermost loop is
 * unrolled, so that its probe runs once every 2 to 4 iterations. A nest, before and after, in
 * outline (`n` the counter; see rewriteInstructions for the details and the conditions):
 *
 *     loop $outer                      block $done  loop $retry  block $resume  block $yield
 *       A                                loop $outer
 *       loop $inner                        n -= 1; br_if $yield (n == 0)
 *         B                                A
 *         br_if $inner (c)                 block $exit  loop $inner
 *       end                                  n -= 1; br_if $resume (n == 0)
 *       C                                    block  B; br_if 0 (c); br $exit  end   ;; copy 1: its
 *       br_if $outer (d)                     ...copies 2 and 3 likewise...         ;; "again" goes
 *     end                                    B; br_if $inner (c)                   ;; on to copy 2
 *                                          end end
 *                                          C
 *                                          br_if $outer (d)
 *                                        end
 *                                        br $done
 *                                      end  n = dewgrid.yield() + 1;  br $retry   ;; $outer's turn
 *                                    end  n = dewgrid.yield() + 1                 ;; $inner's turn:
 *                                    loop $inner (wrapped, its call outside it)    ;; the rest of
 *                                    C;  br_if $retry (d);  br $done               ;; the iteration
 *                                  end  unreachable  end
 *
 * The probes executed are also a measure of work that depends only on the program and its inputs:
 * the same on every device, so credit can use it (see `workDone`). Resume copies run the same
 * probes as the loop they stand for, so only unrolling changes the count (its scale: the version).
 *
 * Runs on the client after the module's hash matched its signed manifest: the publisher signs
 * exactly what they built (docs/scheduling.md); in a worker of its own (worker/instrument-worker.ts),
 * as rewriting a large module would hold the page's main thread. Pure: no DOM, no Node API.
 */
import { BUDGET_EXPORT, YIELD_IMPORT } from '../../src/protocol/throttle.ts';



export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

/** How the rewrite may differ, for tests and the benchmark: the client always uses the defaults. */
export interface InstrumentOptions {
  /** Copies of an innermost loop's body per probe, at most (1: no unrolling). */
  maxCopies?: number;
  /** Whether loop nests keep the host call out of their outer loop (false: every loop has its own). */
  nests?: boolean;
}

/** @throws InstrumentError for a module it cannot rewrite (malformed, or using GC types). */
export function instrument(bytes: Uint8Array, firstAllowance: number, options: InstrumentOptions = {}): Uint8Array {
  if (!(firstAllowance > 0 && firstAllowance <= 0x7fffffff)) throw new RangeError(`the allowance must be from 1 to 2^31-1, got ${firstAllowance}`);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d || bytes[4] !== 1) {
    throw new InstrumentError('not a WebAssembly module (version 1)');
  }
  const sections = readSections(bytes);
  const has = (id: number) => sections.some((s) => s.id === id);

  const typeArities = has(1) ? parseTypes(section(sections, 1)) : [];
  const types = typeArities.length;
  const functionTypes = has(3) ? parseFunctionSection(section(sections, 3)) : [];
  const imports = has(2) ? parseImports(section(sections, 2)) : { count: 0, funcs: 0, globals: 0, bytes: new Uint8Array(0) };
  const definedGlobals = has(6) ? new Reader(section(sections, 6)).u32() : 0;
  const yieldIndex = imports.funcs; // appended after the imported functions: defined ones move up by one
  const budgetIndex = imports.globals + definedGlobals;
  const remap = (f: number) => (f >= yieldIndex ? f + 1 : f);

  const rewritten = new Map<number, Uint8Array>();
  rewritten.set(1, appendToVector(has(1) ? section(sections, 1) : null, types, Uint8Array.of(0x60, 0x00, 0x01, 0x7f)));
  const yieldImport = concat([name(YIELD_IMPORT.module), name(YIELD_IMPORT.name), Uint8Array.of(0x00), u32(types)]);
  rewritten.set(2, concat([u32(imports.count + 1), imports.bytes, yieldImport]));
  if (has(6)) rewritten.set(6, rewriteGlobals(section(sections, 6), remap, firstAllowance));
  else rewritten.set(6, concat([u32(1), budgetGlobal(firstAllowance)]));
  rewritten.set(7, rewriteExports(has(7) ? section(sections, 7) : null, remap, budgetIndex));
  if (has(8)) rewritten.set(8, u32(remap(new Reader(section(sections, 8)).u32())));
  if (has(9)) rewritten.set(9, rewriteElements(section(sections, 9), remap));
  const blockType = (bt: Uint8Array): BlockArity => {
    const b = bt[0]!;
    if (b === 0x40) return { params: 0, results: 0 };
    if ((b >= 0x6a && b <= 0x7f) || b === 0x63 || b === 0x64) return { params: 0, results: 1 }; // one value type
    return typeArities[new Reader(bt).u32()] ?? { params: 0, results: 0 }; // a type index (non-negative s33: plain LEB)
  };
  if (has(10)) {
    rewritten.set(10, rewriteCode(section(sections, 10), remap, {
      budget: budgetIndex,
      yieldFn: yieldIndex,
      params: functionTypes.map((t) => typeArities[t]?.params ?? 0),
      blockType,
      maxCopies: options.maxCopies ?? MAX_COPIES,
      nests: options.nests ?? true,
    }));
  }

  // Sections in their required order; custom sections stay where they were, but "name" goes: its
  // function indices would be wrong now.
  const order = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]; // 13: tags (exception handling)
  const out: Uint8Array[] = [bytes.subarray(0, 8)];
  const emitted = new Set<number>();
  const emitKnown = (id: number) => {
    const content = rewritten.get(id) ?? (has(id) ? section(sections, id) : null);
    if (content && !emitted.has(id)) out.push(Uint8Array.of(id), u32(content.length), content);
    emitted.add(id);
  };
  for (const s of sections) {
    if (s.id === 0) {
      if (customName(s.content) !== 'name') out.push(Uint8Array.of(0), u32(s.content.length), s.content);
      continue;
    }
    // Before a present section, every missing one that must precede it.
    for (const id of order.slice(0, order.indexOf(s.id))) if (!has(id) && rewritten.has(id)) emitKnown(id);
    emitKnown(s.id);
  }
  for (const id of order) if (rewritten.has(id)) emitKnown(id);
  return concat(out);
}

// ---- The probe ------------------------------------------------------------------------------

/** Where a function body's probes keep their count, and what they call. */
interface Probes {
  budget: number;
  yieldFn: number;
  /** Parameter count of each defined function, by its index among defined functions. */
  params: number[];
  blockType: (bt: Uint8Array) => BlockArity;
  /** Copies of an innermost loop's body per probe, at most (InstrumentOptions). */
  maxCopies: number;
  /** Whether loop nests are written (InstrumentOptions). */
  nests: boolean;
}

/** How many values a block type takes and leaves. */
interface BlockArity {
  params: number;
  results: number;
}

/** `n -= 1; if (n == 0) n = dewgrid.yield();` on the function's counter local. Stack-neutral, so valid anywhere. */
function probeCode(local: number, yieldFn: number): Uint8Array {
  const l = u32(local);
  return concat([
    Uint8Array.of(0x20), l, Uint8Array.of(0x41, 0x01, 0x6b, 0x22), l, // local.get; i32.const 1; i32.sub; local.tee
    Uint8Array.of(0x45, 0x04, 0x40, 0x10), u32(yieldFn), // i32.eqz; if; call yield
    Uint8Array.of(0x21), l, Uint8Array.of(0x0b), // local.set; end
  ]);
}

/** `n -= 1; br_if out (n == 0)`: out of the loop, to where it yields. */
function loopProbeCode(local: number, out: number): Uint8Array {
  const l = u32(local);
  return concat([Uint8Array.of(0x20), l, Uint8Array.of(0x41, 0x01, 0x6b, 0x22), l, Uint8Array.of(0x45, 0x0d), u32(out)]);
}

/** `n = dewgrid.yield() + 1`: +1, as the probe that ran out runs again once the loop is re-entered. */
function reentryCode(local: number, yieldFn: number): Uint8Array {
  return concat([Uint8Array.of(0x10), u32(yieldFn), Uint8Array.of(0x41, 0x01, 0x6a, 0x21), u32(local)]);
}

/** global = local: before a call, and before leaving the function. */
function storeCode(local: number, budget: number): Uint8Array {
  return concat([Uint8Array.of(0x20), u32(local), Uint8Array.of(0x24), u32(budget)]);
}

/** local = global: at entry, and after a call. */
function loadCode(local: number, budget: number): Uint8Array {
  return concat([Uint8Array.of(0x23), u32(budget), Uint8Array.of(0x21), u32(local)]);
}

function budgetGlobal(initial: number): Uint8Array {
  return concat([Uint8Array.of(0x7f, 0x01, 0x41), s32(initial), Uint8Array.of(0x0b)]); // mut i32 = i32.const initial
}

// ---- Sections -------------------------------------------------------------------------------

interface Section {
  id: number;
  content: Uint8Array;
}

function readSections(bytes: Uint8Array): Section[] {
  const r = new Reader(bytes, 8);
  const sections: Section[] = [];
  while (!r.done()) {
    const id = r.u8();
    const size = r.u32();
    sections.push({ id, content: r.take(size) });
  }
  return sections;
}

function section(sections: Section[], id: number): Uint8Array {
  return sections.find((s) => s.id === id)!.content;
}

function customName(content: Uint8Array): string {
  const r = new Reader(content);
  return new TextDecoder().decode(r.take(r.u32()));
}

/** Each function type's parameter and result counts; a module with GC type definitions (rec groups, structs) is not rewritten. */
function parseTypes(content: Uint8Array): BlockArity[] {
  const r = new Reader(content);
  const count = r.u32();
  const types: BlockArity[] = [];
  for (let i = 0; i < count; i++) {
    if (r.u8() !== 0x60) throw new InstrumentError('the module uses GC type definitions, which the yield hook does not rewrite');
    const lists = [0, 0];
    for (let list = 0; list < 2; list++) {
      const n = r.u32();
      lists[list] = n;
      for (let j = 0; j < n; j++) r.valtype();
    }
    types.push({ params: lists[0]!, results: lists[1]! });
  }
  return types;
}

/** The type index of each defined function. */
function parseFunctionSection(content: Uint8Array): number[] {
  const r = new Reader(content);
  return Array.from({ length: r.u32() }, () => r.u32());
}

function appendToVector(content: Uint8Array | null, count: number, entry: Uint8Array): Uint8Array {
  if (!content) return concat([u32(1), entry]);
  const r = new Reader(content);
  r.u32();
  return concat([u32(count + 1), content.subarray(r.pos), entry]);
}

function parseImports(content: Uint8Array): { count: number; funcs: number; globals: number; bytes: Uint8Array } {
  const r = new Reader(content);
  const count = r.u32();
  const start = r.pos;
  let funcs = 0;
  let globals = 0;
  for (let i = 0; i < count; i++) {
    r.take(r.u32());
    r.take(r.u32());
    const kind = r.u8();
    if (kind === 0) {
      r.u32();
      funcs++;
    } else if (kind === 1) {
      r.valtype();
      r.limits();
    } else if (kind === 2) {
      r.limits();
    } else if (kind === 3) {
      r.valtype();
      r.u8();
      globals++;
    } else if (kind === 4) {
      r.u8();
      r.u32();
    } else {
      throw new InstrumentError(`unknown import kind ${kind}`);
    }
  }
  return { count, funcs, globals, bytes: content.subarray(start) };
}

function rewriteGlobals(content: Uint8Array, remap: (f: number) => number, firstAllowance: number): Uint8Array {
  const r = new Reader(content);
  const count = r.u32();
  const parts: Uint8Array[] = [u32(count + 1)];
  for (let i = 0; i < count; i++) {
    const start = r.pos;
    r.valtype();
    r.u8();
    parts.push(content.subarray(start, r.pos), rewriteExpr(r, remap));
  }
  parts.push(budgetGlobal(firstAllowance));
  return concat(parts);
}

function rewriteExports(content: Uint8Array | null, remap: (f: number) => number, budget: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let count = 0;
  if (content) {
    const r = new Reader(content);
    count = r.u32();
    for (let i = 0; i < count; i++) {
      const nameBytes = r.take(r.u32());
      if (new TextDecoder().decode(nameBytes) === BUDGET_EXPORT) throw new InstrumentError(`the module already exports ${BUDGET_EXPORT}`);
      const kind = r.u8();
      const index = r.u32();
      parts.push(u32(nameBytes.length), nameBytes, Uint8Array.of(kind), u32(kind === 0 ? remap(index) : index));
    }
  }
  parts.push(name(BUDGET_EXPORT), Uint8Array.of(0x03), u32(budget));
  return concat([u32(count + 1), ...parts]);
}

function rewriteElements(content: Uint8Array, remap: (f: number) => number): Uint8Array {
  const r = new Reader(content);
  const count = r.u32();
  const parts: Uint8Array[] = [u32(count)];
  for (let i = 0; i < count; i++) {
    const flags = r.u32();
    parts.push(u32(flags));
    const copy = (from: number) => parts.push(content.subarray(from, r.pos));
    if (flags === 2 || flags === 6) {
      const at = r.pos;
      r.u32(); // table index
      copy(at);
    }
    if ((flags & 1) === 0) parts.push(rewriteExpr(r, remap)); // active: offset expression
    const at = r.pos;
    if (flags & 4) {
      if (flags & 3) r.valtype(); // reftype
      copy(at);
      const n = r.u32();
      parts.push(u32(n));
      for (let j = 0; j < n; j++) parts.push(rewriteExpr(r, remap));
    } else {
      if (flags & 3) r.u8(); // elemkind
      copy(at);
      const n = r.u32();
      parts.push(u32(n));
      for (let j = 0; j < n; j++) parts.push(u32(remap(r.u32())));
    }
  }
  return concat(parts);
}

function rewriteCode(content: Uint8Array, remap: (f: number) => number, probes: Probes): Uint8Array {
  const r = new Reader(content);
  const count = r.u32();
  const parts: Uint8Array[] = [u32(count)];
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const body = new Reader(r.take(size));
    const groups = body.u32();
    let locals = probes.params[i] ?? 0;
    const groupsStart = body.pos;
    for (let j = 0; j < groups; j++) {
      locals += body.u32();
      body.valtype();
    }
    // One more i32 local, the counter, after all the others.
    const counter = locals;
    const code: FunctionCode = {
      probe: probeCode(counter, probes.yieldFn),
      loopProbe: (out) => loopProbeCode(counter, out),
      reentry: reentryCode(counter, probes.yieldFn),
      store: storeCode(counter, probes.budget),
      load: loadCode(counter, probes.budget),
      blockType: probes.blockType,
      maxCopies: probes.maxCopies,
      nests: probes.nests,
    };
    const out: Uint8Array[] = [u32(groups + 1), body.bytes.subarray(groupsStart, body.pos), Uint8Array.of(0x01, 0x7f), code.load, code.probe];
    rewriteInstructions(body, remap, code, out, true);
    const rewrittenBody = concat(out);
    parts.push(u32(rewrittenBody.length), rewrittenBody);
  }
  return concat(parts);
}

/** The snippets a function body gets, for its own counter local, and how its loops are rewritten. */
interface FunctionCode {
  /** At function entry, and in loops that are not wrapped: the call inside. */
  probe: Uint8Array;
  /** At the header of a wrapped loop: a branch out, to the label `out` levels up, when the counter runs out. */
  loopProbe: (out: number) => Uint8Array;
  /** Where a loop's probe branched out to: the call, before the loop is entered again. */
  reentry: Uint8Array;
  store: Uint8Array;
  load: Uint8Array;
  /** The parameters and results of a block type (its raw bytes). */
  blockType: (bt: Uint8Array) => BlockArity;
  /** Copies of an innermost loop's body per probe, at most. */
  maxCopies: number;
  /** Whether loop nests keep the host call out of their outer loop (see rewriteInstructions). */
  nests: boolean;
}

/** A constant expression (globals, element offsets and items), function indices remapped. */
function rewriteExpr(r: Reader, remap: (f: number) => number): Uint8Array {
  const out: Uint8Array[] = [];
  rewriteInstructions(r, remap, null, out, false);
  return concat(out);
}

/**
 * Copies instructions up to the `end` that closes the current body or expression, remapping
 * function indices; in a function body (`code`) it also adds the probes, and stores the counter
 * before and loads it after every call, and stores it before every way out.
 *
 * A loop is wrapped, so that its probe only branches out when the counter runs out and the call
 * is outside the loop (a call inside made the engine save every live register around it on each
 * iteration: a quarter slower on the fractal's inner loop):
 *
 *     block bt                        ;; done: the loop's results leave through here
 *       loop                          ;; retry
 *         block                       ;; yield
 *           loop bt                   ;; the original loop
 *             n -= 1; br_if yield (n == 0)
 *             ...body, its branches to labels outside the loop shifted by 3...
 *           end
 *           br done
 *         end
 *         n = dewgrid.yield() + 1      ;; +1: the header's probe runs again on re-entry
 *         br retry
 *       end
 *       unreachable
 *     end
 *
 * An innermost loop with a short body and no call is also unrolled (`unrolledCopies`): its body
 * is written K times and the probe runs once per K iterations. In each copy but the last, the
 * body is in a block of its own, `next`, ending right before the next copy: a branch to the loop
 * is one to `next` (go on with the next iteration, the next copy), and falling off the end of
 * the copy is leaving the loop (`br done`, with the loop's results). The last copy is the
 * original body, whose branches to the loop go back to the probe:
 *
 *             n -= 1; br_if yield (n == 0)
 *             block                   ;; next
 *               ...body: a branch to the loop is one to next, labels outside shifted by 4...
 *               br done               ;; fell off the end: the loop is over
 *             end
 *             ...copies 2 to K-1 likewise, then the body as above...
 *
 * The call in a wrapper is outside its loop but still inside any loop around it, which the
 * engine then treats the same way: the sieve's outer loop, whose iterations mostly skip the
 * inner loop, ran 15% slower for the inner loop's wrapper alone. So a loop whose inner loops are
 * all innermost, and that holds no call, becomes a nest (`planNest`): its inner loops get no
 * wrapper, and when the counter runs out at an inner loop's header, its probe leaves the outer
 * loop for that inner loop's resume block, after the outer loop's wrapper. There the module
 * yields, then runs the rest of the outer loop's iteration from that inner loop's header on, a
 * "resume copy": the inner loop (wrapped as above) and all that follows it in the outer loop's
 * body, in blocks standing for those around the inner loop (an if whose then arm holds it is a
 * block there, its else arm left out), where going on with the outer loop is `br retry` and
 * leaving it is `br done`. With m inner loops:
 *
 *     block bt                        ;; done
 *       loop                          ;; retry: back into the outer loop, at its probe
 *         block ... block             ;; resume m-1 ... resume 0
 *           block                     ;; yield
 *             loop bt                 ;; the outer loop, labels outside shifted by m + 3
 *               n -= 1; br_if yield (n == 0)
 *               ...
 *               block bt'             ;; exit (only if unrolled: copies leave through it)
 *                 loop bt'            ;; inner loop k, no wrapper
 *                   n -= 1; br_if resume k (n == 0)
 *                   ...body (copies as above, `br exit` for `br done`)...
 *               end end
 *               ...
 *             end
 *             br done
 *           end
 *           n = dewgrid.yield() + 1; br retry
 *         end
 *         n = dewgrid.yield() + 1; resume copy 0, ending in `br done`
 *       end ... resume copy m-1
 *       end
 *       unreachable
 *     end
 *
 * A resume copy runs the probes the outer loop would have run, so the work count is the same as
 * without nests. A resume copy can only start where nothing is on the operand stack of the outer
 * loop or of a block around the inner loop, which `planNest` checks; a nest costs at most
 * NEST_BYTES of copies, and is not written for loops with parameters or whose blocks have them.
 *
 * Loops with parameters, and functions using exception handling (whose labels this does not
 * shift), keep the probe with its call inside the loop, and are neither unrolled nor nests.
 */
function rewriteInstructions(r: Reader, remap: (f: number) => number, code: FunctionCode | null, out: Uint8Array[], wholeBody: boolean): void {
  /** Open blocks, outermost first, as the original has them. */
  const frames: Frame[] = [];
  const wrapLoops = code !== null && !usesExceptionHandling(r.bytes.subarray(r.pos));
  /** The nest being written, from its outer loop's header to the end of its last resume copy. */
  let nest: Nest | null = null;
  let copyFrom = r.pos;
  const flush = () => out.push(r.bytes.subarray(copyFrom, r.pos));
  /** Copies up to the instruction that starts at `at`, then `snippet`, and goes on from `resume`. */
  const put = (at: number, snippet: Uint8Array, resume = at) => {
    out.push(r.bytes.subarray(copyFrom, at), snippet);
    copyFrom = resume;
  };
  /** Reads on from `at`, earlier in the original: the body again for its next copy, or a nest's inner loop for its resume copy. */
  const readFrom = (at: number) => {
    r.pos = copyFrom = at;
  };
  /** A branch label, shifted past the labels of ours it now crosses, and those just inside its target. */
  const shifted = (label: number) => {
    let extra = 0;
    let i = frames.length - 1;
    for (; i > frames.length - 1 - label && i >= 0; i--) extra += frames[i]!.outer + frames[i]!.inner;
    if (i >= 0 && i === frames.length - 1 - label) extra += frames[i]!.inner;
    return label + extra;
  };
  const leavesFunction = (label: number) => label === frames.length;
  /** A nest's resume copy k: `n = dewgrid.yield() + 1`, then its inner loop k and all that follows it in the outer loop, in the blocks around it. */
  const startResumeCopy = (at: number, opening: Uint8Array, k: number) => {
    const plan: NestPlan = nest!.plan;
    nest!.writing = k;
    const { around, at: loopAt } = plan.inner[k]!;
    put(at, concat([opening, code!.reentry, ...around.map((a) => concat([Uint8Array.of(0x02), a.bt]))]));
    frames.push({ role: 'resume', outer: 1, inner: plan.inner.length - 1 - k });
    for (const a of around) frames.push(a.thenArm ? THEN_ARM : PLAIN);
    readFrom(loopAt);
  };
  for (;;) {
    const at = r.pos;
    if (r.done()) {
      if (wholeBody) throw new InstrumentError('a function body ends without its end');
      throw new InstrumentError('an expression ends without its end');
    }
    const op = r.u8();
    switch (op) {
      case 0x02: case 0x04: case 0x06: // block, if, try
        r.blocktype();
        frames.push(PLAIN);
        break;
      case 0x03: { // loop
        r.blocktype();
        if (!code) {
          frames.push(PLAIN);
          break;
        }
        const bt = r.bytes.subarray(at + 1, r.pos);
        const bodyStart = r.pos;
        if (!wrapLoops || code.blockType(bt).params > 0) {
          flush();
          out.push(code.probe);
          copyFrom = r.pos;
          frames.push(PLAIN);
          break;
        }
        if (nest?.writing === 'outer') {
          // An inner loop of a nest, in its outer loop: no call, its probe leaves the nest for the
          // inner loop's resume copy (after the outer loop: past it, its yield block and the
          // resume blocks of the inner loops before this one).
          const k = nest.plan.inner.findIndex((l) => l.at === at);
          if (k < 0) throw new Error('the yield hook lost track of an inner loop');
          const copies = unrolledCopies(r.bytes, bodyStart, code.maxCopies);
          const toOuter = shifted(frames.length - 1 - nest.outerFrame) + (copies > 1 ? 2 : 1);
          const header = concat([Uint8Array.of(0x03), bt, code.loopProbe(toOuter + 2 + k)]);
          if (copies > 1) {
            put(at, concat([Uint8Array.of(0x02), bt, header, NEXT]), bodyStart);
            frames.push({ role: 'copy', outer: 2, inner: 0, copy: 1, copies, bodyStart, exit: 2, last: { role: 'exit', outer: 1, inner: 0 } });
          } else {
            put(at, header, bodyStart);
            frames.push(PLAIN);
          }
          break;
        }
        const plan: NestPlan | null = nest === null && code.nests ? planNest(r.bytes, bodyStart, code.blockType) : null;
        if (plan) {
          const m = plan.inner.length;
          const resumeBlocks = new Uint8Array(2 * m).fill(0x40);
          for (let i = 0; i < m; i++) resumeBlocks[2 * i] = 0x02;
          put(at, concat([Uint8Array.of(0x02), bt, Uint8Array.of(0x03, 0x40), resumeBlocks, Uint8Array.of(0x02, 0x40, 0x03), bt, code.loopProbe(1)]), bodyStart);
          nest = { plan, writing: 'outer', outerFrame: frames.length, after: 0 };
          frames.push({ role: 'nest', outer: m + 3, inner: 0 });
          break;
        }
        const copies = unrolledCopies(r.bytes, bodyStart, code.maxCopies);
        put(at, concat([Uint8Array.of(0x02), bt, Uint8Array.of(0x03, 0x40, 0x02, 0x40, 0x03), bt, code.loopProbe(1), copies > 1 ? NEXT : EMPTY]), bodyStart);
        frames.push(copies > 1 ? { role: 'copy', outer: 4, inner: 0, copy: 1, copies, bodyStart, exit: 4, last: WRAPPED } : WRAPPED);
        break;
      }
      case 0x1f: { // try_table
        r.blocktype();
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const kind = r.u8();
          if (kind <= 1) r.u32();
          r.u32();
        }
        frames.push(PLAIN);
        break;
      }
      case 0x05: // else
        if (frames[frames.length - 1]?.role === 'then') {
          // In a resume copy, an if around the inner loop is a block: its else arm is not taken.
          frames.pop();
          skipToEnd(r);
          put(at, END, r.pos);
        }
        break;
      case 0x0b: { // end
        if (frames.length === 0) {
          if (code) put(at, code.store);
          flush();
          return;
        }
        const frame = frames.pop()!;
        switch (frame.role) {
          case 'copy': {
            // The end of a copy that is not the last: out of the loop, then the next copy.
            const copy = frame.copy + 1;
            put(at, concat([Uint8Array.of(0x0c, frame.exit, 0x0b), copy < frame.copies ? NEXT : EMPTY]));
            readFrom(frame.bodyStart);
            frames.push(copy < frame.copies ? { ...frame, copy } : frame.last);
            break;
          }
          case 'wrapped': // `br done; end; n = dewgrid.yield() + 1; br retry; end; unreachable; end`
            put(r.pos, concat([Uint8Array.of(0x0c, 0x02, 0x0b), code!.reentry, Uint8Array.of(0x0c, 0x00, 0x0b, 0x00, 0x0b)]), r.pos);
            break;
          case 'exit': // the block around an unrolled inner loop of a nest
            put(r.pos, END, r.pos);
            break;
          case 'nest': {
            // The outer loop's end: `br done`; its own yield (`br retry`, past the m resume
            // blocks); then the first resume copy.
            const m = nest!.plan.inner.length;
            nest!.after = r.pos;
            const yieldBlock = concat([Uint8Array.of(0x0b, 0x0c), u32(m + 2), Uint8Array.of(0x0b), code!.reentry, Uint8Array.of(0x0c), u32(m), Uint8Array.of(0x0b)]);
            startResumeCopy(at, yieldBlock, 0);
            break;
          }
          case 'resume': {
            // The end of the outer loop in resume copy k: out through done (past the resume
            // blocks still open, and retry), then the next resume copy, or the nest's end.
            const k = nest!.writing as number;
            const out = concat([Uint8Array.of(0x0c), u32(frame.inner + 1), Uint8Array.of(0x0b)]);
            if (k + 1 < nest!.plan.inner.length) {
              startResumeCopy(at, out, k + 1);
            } else {
              put(at, concat([out, Uint8Array.of(0x00, 0x0b)])); // end retry; unreachable; end done
              readFrom(nest!.after);
              nest = null;
            }
            break;
          }
        }
        break;
      }
      case 0x18: // delegate: ends its try block
        r.u32();
        frames.pop();
        break;
      case 0x0f: // return
        if (code) put(at, code.store);
        break;
      case 0x0c: case 0x0d: case 0xd4: case 0xd6: { // br, br_if, br_on_null, br_on_non_null
        const label = r.u32();
        if (!code) break;
        put(at, concat([leavesFunction(label) ? code.store : EMPTY, Uint8Array.of(op), u32(shifted(label))]), r.pos);
        break;
      }
      case 0x0e: { // br_table
        const n = r.u32();
        const labels = Array.from({ length: n + 1 }, () => r.u32());
        if (!code) break;
        const exit = labels.some(leavesFunction) ? code.store : EMPTY;
        put(at, concat([exit, Uint8Array.of(0x0e), u32(n), ...labels.map((l) => u32(shifted(l)))]), r.pos);
        break;
      }
      case 0x10: case 0x12: case 0xd2: { // call, return_call, ref.func: a function index
        const f = r.u32();
        const call = concat([Uint8Array.of(op), u32(remap(f))]);
        if (code && op !== 0xd2) put(at, concat([code.store, call, op === 0x10 ? code.load : EMPTY]), r.pos);
        else put(at, call, r.pos);
        break;
      }
      case 0x11: case 0x13: case 0x14: case 0x15: // call_indirect, return_call_indirect, call_ref, return_call_ref
        if (code) put(at, code.store);
        skipImmediates(r, op);
        if (code && (op === 0x11 || op === 0x14)) put(r.pos, code.load);
        break;
      default:
        skipImmediates(r, op);
    }
  }
}

/**
 * An open block of the original, as the rewrite sees it: how many labels of ours lie between its
 * own label and its parent's (`outer`: a branch out of it crosses them too) and just inside its
 * label (`inner`: a branch to it crosses them too), and what its `end` does.
 */
type Frame =
  | { role: 'plain' | 'then' | 'wrapped' | 'exit' | 'nest' | 'resume'; outer: number; inner: number }
  /** An unrolled loop's copy `copy` of `copies` (not the last, which is `last`): its end branches `exit` levels up, out of the loop. */
  | { role: 'copy'; outer: number; inner: number; copy: number; copies: number; bodyStart: number; exit: number; last: Frame };

/** A block, an if, or a loop whose probe has its call inside: no labels of ours. */
const PLAIN: Frame = { role: 'plain', outer: 0, inner: 0 };
/** A wrapped loop: done, retry and yield outside it. */
const WRAPPED: Frame = { role: 'wrapped', outer: 3, inner: 0 };
/** In a resume copy, an if whose then arm holds the inner loop, written as a block. */
const THEN_ARM: Frame = { role: 'then', outer: 0, inner: 0 };
const EMPTY = new Uint8Array(0);
const END = Uint8Array.of(0x0b);
/** `block`: around an unrolled copy, the target of its branches to the loop. */
const NEXT = Uint8Array.of(0x02, 0x40);

/** A loop nest being written: its plan, and which part of it (the outer loop, or resume copy k). */
interface Nest {
  plan: NestPlan;
  writing: 'outer' | number;
  /** The outer loop's index in `frames`. */
  outerFrame: number;
  /** Where the original goes on after the outer loop. */
  after: number;
}

/** The inner loops of a nest, in order: where each starts, and the blocks and ifs around it in the outer loop, outermost first. */
interface NestPlan {
  inner: { at: number; around: { bt: Uint8Array; thenArm: boolean }[] }[];
}

/**
 * Whether the loop whose body starts at `bodyStart` is the outer loop of a nest whose host calls
 * can all move out of it, and where its inner loops are. It must hold no call at all, only
 * innermost loops (at most NEST_LOOPS), and each inner loop must start where a resume copy can
 * start too: in blocks and ifs without parameters, each (and the outer loop) with nothing on its
 * operand stack there, on a reachable path. That takes the stack height of every instruction of
 * the outer loop outside its inner loops: an instruction this does not know (SIMD, atomics, GC)
 * leaves the loop as it was.
 */
function planNest(bytes: Uint8Array, bodyStart: number, blockType: (bt: Uint8Array) => BlockArity): NestPlan | null {
  const r = new Reader(bytes, bodyStart);
  interface Open { height: number; reachable: boolean; bt: Uint8Array; results: number; isIf: boolean; thenArm: boolean }
  const open: Open[] = [{ height: 0, reachable: true, bt: EMPTY, results: 0, isIf: false, thenArm: false }];
  const inner: NestPlan['inner'] = [];
  const change = (o: Open, pops: number, pushes: number) => {
    if (!o.reachable) return true;
    o.height -= pops;
    if (o.height < 0) return false; // not valid code: leave it to the engine to say so
    o.height += pushes;
    return true;
  };
  for (;;) {
    if (r.pos - bodyStart > NEST_BYTES) return null;
    const at = r.pos;
    const op = r.u8();
    const top = open[open.length - 1]!;
    switch (op) {
      case 0x02: case 0x04: { // block, if
        const start = r.pos;
        r.blocktype();
        const bt = bytes.subarray(start, r.pos);
        const arity = blockType(bt);
        if (arity.params > 0 || (op === 0x04 && !change(top, 1, 0))) return null;
        open.push({ height: 0, reachable: true, bt, results: arity.results, isIf: op === 0x04, thenArm: op === 0x04 });
        break;
      }
      case 0x05: // else
        top.height = 0;
        top.reachable = true;
        top.thenArm = false;
        break;
      case 0x03: { // an inner loop
        const start = r.pos;
        r.blocktype();
        const arity = blockType(bytes.subarray(start, r.pos));
        if (arity.params > 0 || inner.length === NEST_LOOPS || !open.every((o) => o.reachable && o.height === 0)) return null;
        inner.push({ at, around: open.slice(1).map((o) => ({ bt: o.bt, thenArm: o.thenArm })) });
        if (!skipInnermostBody(r)) return null;
        change(top, 0, arity.results);
        break;
      }
      case 0x0b: { // end
        const closed = open.pop()!;
        if (open.length === 0) return inner.length > 0 && inner.length * (r.pos - bodyStart) <= NEST_BYTES ? { inner } : null;
        change(open[open.length - 1]!, 0, closed.results);
        break;
      }
      case 0x00: case 0x0f: // unreachable, return
        top.reachable = false;
        break;
      case 0x0c: // br
        r.u32();
        top.reachable = false;
        break;
      case 0x0d: // br_if
        r.u32();
        if (!change(top, 1, 0)) return null;
        break;
      case 0x0e: { // br_table
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        top.reachable = false;
        break;
      }
      default: {
        const effect = stackEffect(r, op);
        if (!effect || !change(top, effect[0], effect[1])) return null;
      }
    }
  }
}

/** The resume copies of a nest take at most this many bytes of the original together; its outer loop's body too. */
const NEST_BYTES = 2048;
/** Inner loops in a nest, at most: each has its resume copy. */
const NEST_LOOPS = 4;

/** Reads an innermost loop's body to its end; false if it holds a loop or a call. */
function skipInnermostBody(r: Reader): boolean {
  let depth = 0;
  for (;;) {
    const op = r.u8();
    if (op === 0x03 || (op >= 0x10 && op <= 0x15)) return false; // a loop; a call of any kind
    if (op === 0x02 || op === 0x04) {
      r.blocktype();
      depth++;
    } else if (op === 0x0b) {
      if (depth-- === 0) return true;
    } else {
      skipImmediates(r, op);
    }
  }
}

/** Reads to the `end` of the block the reader is in (an if's else arm). Only for function bodies without exception handling. */
function skipToEnd(r: Reader): void {
  let depth = 0;
  for (;;) {
    const op = r.u8();
    if (op === 0x02 || op === 0x03 || op === 0x04) {
      r.blocktype();
      depth++;
    } else if (op === 0x0b) {
      if (depth-- === 0) return;
    } else {
      skipImmediates(r, op);
    }
  }
}

/**
 * What an instruction that neither branches nor calls takes from the operand stack and leaves on
 * it, reading its immediates; null for one not listed (a nest is then left as it was).
 */
function stackEffect(r: Reader, op: number): [number, number] | null {
  if (op >= 0x28 && op <= 0x35) return r.memarg(), [1, 1]; // loads
  if (op >= 0x36 && op <= 0x3e) return r.memarg(), [2, 0]; // stores
  if (op === 0x45 || op === 0x50 || (op >= 0x67 && op <= 0x69) || (op >= 0x79 && op <= 0x7b) || (op >= 0x8b && op <= 0x91) || (op >= 0x99 && op <= 0x9f) || (op >= 0xa7 && op <= 0xc4)) {
    return [1, 1]; // eqz, unary, conversions, sign extensions
  }
  if (op >= 0x46 && op <= 0xa6) return [2, 1]; // comparisons, binary (the unary ones in between are above)
  switch (op) {
    case 0x01: return [0, 0]; // nop
    case 0x1a: return [1, 0]; // drop
    case 0x1b: return [3, 1]; // select
    case 0x1c: skipImmediates(r, op); return [3, 1]; // select t
    case 0x20: case 0x23: r.u32(); return [0, 1]; // local.get, global.get
    case 0x21: case 0x24: r.u32(); return [1, 0]; // local.set, global.set
    case 0x22: r.u32(); return [1, 1]; // local.tee
    case 0x25: r.u32(); return [1, 1]; // table.get
    case 0x26: r.u32(); return [2, 0]; // table.set
    case 0x3f: r.u32(); return [0, 1]; // memory.size
    case 0x40: r.u32(); return [1, 1]; // memory.grow
    case 0x41: case 0x42: case 0x43: case 0x44: skipImmediates(r, op); return [0, 1]; // constants
    case 0xd0: r.heaptype(); return [0, 1]; // ref.null
    case 0xd1: return [1, 1]; // ref.is_null
    case 0xd2: r.u32(); return [0, 1]; // ref.func
    case 0xfc: {
      const sub = r.u32();
      if (sub <= 7) return [1, 1]; // saturating truncations
      if (sub === 8 || sub === 10 || sub === 12 || sub === 14) return r.u32(), r.u32(), [3, 0]; // memory.init, memory.copy, table.init, table.copy
      if (sub === 9 || sub === 13) return r.u32(), [0, 0]; // data.drop, elem.drop
      if (sub === 11 || sub === 17) return r.u32(), [3, 0]; // memory.fill, table.fill
      if (sub === 15) return r.u32(), [2, 1]; // table.grow
      if (sub === 16) return r.u32(), [0, 1]; // table.size
      return null;
    }
  }
  return null;
}

/**
 * How many copies of a loop's body to run per probe (1: not unrolled). Only innermost loops with
 * no call in them: there the probe's decrement and branch are a large share of an iteration,
 * while a call costs far more than a probe, and unrolling a loop that holds another would
 * multiply the inner one's copies. As many copies as fit in UNROLLED_BYTES, at most `maxCopies`:
 * a loop's code grows by at most that much, and big bodies, where a probe costs little, stay as
 * they are.
 */
function unrolledCopies(bytes: Uint8Array, bodyStart: number, maxCopies: number): number {
  if (maxCopies <= 1) return 1;
  const r = new Reader(bytes, bodyStart);
  let depth = 0;
  for (;;) {
    if (r.pos - bodyStart > UNROLLED_BYTES / 2) return 1;
    const op = r.u8();
    if (op === 0x03 || (op >= 0x10 && op <= 0x15)) return 1; // a loop; a call of any kind
    if (op === 0x02 || op === 0x04) {
      r.blocktype();
      depth++;
    } else if (op === 0x0b) {
      if (depth-- === 0) break;
    } else {
      skipImmediates(r, op);
    }
  }
  return Math.max(1, Math.min(maxCopies, Math.floor(UNROLLED_BYTES / (r.pos - bodyStart))));
}

/** The most bytes an unrolled loop's copies may take together (each copy adds a few of its own too). */
const UNROLLED_BYTES = 512;
/** Copies of an innermost loop per probe, at most. */
export const MAX_COPIES = 4;

/** Whether a function body uses exception handling, whose labels the loop wrapping would have to shift too. */
function usesExceptionHandling(body: Uint8Array): boolean {
  const r = new Reader(body);
  let depth = 0;
  while (!r.done()) {
    const op = r.u8();
    if (op === 0x06 || op === 0x07 || op === 0x08 || op === 0x09 || op === 0x0a || op === 0x18 || op === 0x19 || op === 0x1f) return true;
    if (op === 0x02 || op === 0x03 || op === 0x04) {
      r.blocktype();
      depth++;
    } else if (op === 0x0b) {
      if (depth-- === 0) return false;
    } else if (op === 0x0c || op === 0x0d || op === 0x10 || op === 0x12 || op === 0xd2) {
      r.u32();
    } else {
      skipImmediates(r, op);
    }
  }
  return false;
}

/** Skips the immediates of every other instruction (MVP, SIMD, threads, bulk memory, reference types, tail calls, exceptions). */
function skipImmediates(r: Reader, op: number): void {
  if (op <= 0x01 || op === 0x05 || op === 0x0a || op === 0x0f || op === 0x19 || op === 0x1a || op === 0x1b || op === 0xd1 || op === 0xd3 || op === 0xd5) return;
  if ((op >= 0x45 && op <= 0xc4)) return; // numeric operators
  switch (op) {
    case 0x07: case 0x08: case 0x09: case 0x18: // catch, throw, rethrow, delegate
    case 0x0c: case 0x0d: // br, br_if
    case 0x14: case 0x15: // call_ref, return_call_ref
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25: case 0x26: // locals, globals, tables
    case 0x3f: case 0x40: // memory.size, memory.grow
    case 0xd4: case 0xd6: // br_on_null, br_on_non_null
      r.u32();
      return;
    case 0x0e: { // br_table
      const n = r.u32();
      for (let i = 0; i <= n; i++) r.u32();
      return;
    }
    case 0x11: case 0x13: // call_indirect, return_call_indirect
      r.u32();
      r.u32();
      return;
    case 0x1c: { // select t*
      const n = r.u32();
      for (let i = 0; i < n; i++) r.valtype();
      return;
    }
    case 0x41: r.sleb(); return;
    case 0x42: r.sleb(); return;
    case 0x43: r.take(4); return;
    case 0x44: r.take(8); return;
    case 0xd0: r.heaptype(); return; // ref.null
    case 0xfc: return skipFc(r);
    case 0xfd: return skipSimd(r);
    case 0xfe: return skipAtomic(r);
  }
  if (op >= 0x28 && op <= 0x3e) return r.memarg(); // loads and stores
  throw new InstrumentError(`opcode 0x${op.toString(16)} is not one the yield hook knows`);
}

function skipFc(r: Reader): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  switch (sub) {
    case 8: case 10: case 12: case 14: r.u32(); r.u32(); return; // memory.init, memory.copy, table.init, table.copy
    case 9: case 11: case 13: case 15: case 16: case 17: r.u32(); return;
  }
  throw new InstrumentError(`opcode 0xfc ${sub} is not one the yield hook knows`);
}

function skipSimd(r: Reader): void {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) return r.memarg(); // loads, stores, load*_zero
  if (sub === 12 || sub === 13) return void r.take(16); // v128.const, i8x16.shuffle
  if (sub >= 21 && sub <= 34) return void r.u8(); // extract/replace lane
  if (sub >= 84 && sub <= 91) {
    r.memarg();
    r.u8();
  }
}

function skipAtomic(r: Reader): void {
  const sub = r.u32();
  if (sub === 3) return void r.u8(); // atomic.fence
  r.memarg();
}

// ---- Bytes ----------------------------------------------------------------------------------

class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
  ) {}

  done(): boolean {
    return this.pos >= this.bytes.length;
  }

  u8(): number {
    if (this.pos >= this.bytes.length) throw new InstrumentError('the module ends early');
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.u8();
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
    throw new InstrumentError('a malformed LEB128 number');
  }

  /** Any signed or 64-bit LEB128: only skipped. */
  sleb(): void {
    for (let i = 0; i < 10; i++) if ((this.u8() & 0x80) === 0) return;
    throw new InstrumentError('a malformed LEB128 number');
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) throw new InstrumentError('the module ends early');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A value type: one byte, or a (ref null? ht) of the typed references proposal. */
  valtype(): void {
    const b = this.u8();
    if (b === 0x63 || b === 0x64) this.heaptype();
  }

  heaptype(): void {
    const b = this.bytes[this.pos]!;
    if (b >= 0x40 && b < 0x80) this.pos++; // an abstract heap type, one byte (negative s33)
    else this.sleb(); // a type index
  }

  blocktype(): void {
    const b = this.bytes[this.pos]!;
    if (b === 0x40 || (b >= 0x6a && b <= 0x7f)) this.pos++;
    else if (b === 0x63 || b === 0x64) this.valtype();
    else this.sleb(); // a type index (s33)
  }

  limits(): void {
    const flags = this.u8();
    this.sleb(); // min (u32, or u64 for memory64)
    if (flags & 1) this.sleb();
  }

  memarg(): void {
    const align = this.u32();
    if (align & 0x40) this.u32(); // multi-memory: a memory index
    this.sleb(); // offset (u32, or u64 for memory64)
  }
}

function u32(value: number): Uint8Array {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return Uint8Array.from(out);
}

function s32(value: number): Uint8Array {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return Uint8Array.from(out);
    }
    out.push(byte | 0x80);
  }
}

function name(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  return concat([u32(bytes.length), bytes]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
