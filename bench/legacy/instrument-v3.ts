/**
 * The yield hook: rewrites a verified module so that it counts its own work and calls the host
 * every so often, the idea of Wasmtime's fuel. Version 3 (docs/scheduling.md, section 1):
 *
 * - a **loop probe** at every loop header adds one to a local of its function, `c`; every
 *   LOOP_BATCH iterations it branches out of the loop to call the module's own `$flush`, which
 *   takes LOOP_BATCH from the budget (a global) and, when the budget is spent, calls the host
 *   (`dewgrid.yield`: it naps, pauses or returns at once, and answers the next allowance); then the
 *   loop is entered again. Each loop is wrapped in three blocks for that, so that the call is
 *   outside it: a call inside a loop, however rarely taken, makes the engine keep the loop's values
 *   in memory instead of registers (1.8x on SHA-256, 2.8x on a sieve, in Chromium 156);
 * - an **entry probe** at the start of every function that calls anything takes one from the
 *   budget, and calls the host when it is spent. Functions that call nothing get none: without
 *   loops or calls they run a bounded time, and every cycle of calls passes a function that calls;
 * - `c` is added to the budget (and set to 0) before every way out of a function that has a loop
 *   ahead of it (return, a branch to the function's label, its end, a tail call) and before every
 *   call of an import (so `proc_exit` counts all), so the count is exact whatever the allowances.
 *
 * The rewrite is one pass over the code that copies the bytes between insertions as they are and
 * re-encodes only calls (defined functions move up by one, after the added import) and branches
 * that cross a wrapped loop (three labels more each). Nothing is stored or loaded around calls,
 * which made version 2 40% larger on a 30 MB C++ program (a store and a load per call site); loops
 * are neither unrolled nor copied. A loop with parameters, or in a function that uses exception
 * handling (whose labels this does not shift), keeps its probe's call inside.
 *
 * The probes executed are a measure of work that depends only on the program and its inputs: the
 * same on every device, so credit can use it (see `workDone`).
 *
 * Runs on the client after the module's hash matched its signed manifest: the publisher signs
 * exactly what they built (docs/scheduling.md); in the prepare worker, as rewriting a large module
 * would hold the page's main thread. Pure: no DOM, no Node API.
 */
import { BUDGET_EXPORT, YIELD_IMPORT } from '../../src/protocol/throttle.ts';

export { BUDGET_EXPORT, INSTRUMENTER_VERSION, workDone, YIELD_IMPORT } from '../../src/protocol/throttle.ts';

export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

/** Loop iterations a function counts in its local before it takes them from the budget. */
export const LOOP_BATCH = 64;

/** @throws InstrumentError for a module it cannot rewrite (malformed, or using GC types). */
export function instrument(bytes: Uint8Array, firstAllowance: number): Uint8Array {
  if (!(firstAllowance > 0 && firstAllowance <= 0x7fffffff)) throw new RangeError(`the allowance must be from 1 to 2^31-1, got ${firstAllowance}`);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d || bytes[4] !== 1) {
    throw new InstrumentError('not a WebAssembly module (version 1)');
  }
  const sections = readSections(bytes);
  const find = (id: number) => sections.find((s) => s.id === id)?.content ?? null;

  const params = find(1) ? typeParams(find(1)!) : [];
  const types = params.length;
  const imports = find(2) ? parseImports(find(2)!) : { count: 0, funcs: 0, globals: 0, bytes: new Uint8Array(0) };
  const funcTypes = find(3) ? functionTypes(find(3)!) : [];
  const definedFuncs = funcTypes.length;
  const definedGlobals = find(6) ? new Reader(find(6)!).u32() : 0;
  const yieldFn = imports.funcs; // appended after the imported functions: defined ones move up by one
  const flushFn = imports.funcs + 1 + definedFuncs; // appended after the defined ones
  const budget = imports.globals + definedGlobals;
  const remap = (f: number) => (f >= yieldFn ? f + 1 : f);

  const rewritten = new Map<number, Uint8Array>();
  // Two new types: (i32) -> i32 for `dewgrid.yield` (it takes what is left of the budget, zero or
  // less, and answers the next allowance), () -> i32 for $flush.
  rewritten.set(1, appendToVector(find(1), types, Uint8Array.of(0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f), 2));
  const yieldImport = concat([name(YIELD_IMPORT.module), name(YIELD_IMPORT.name), Uint8Array.of(0x00), u32(types)]);
  rewritten.set(2, concat([u32(imports.count + 1), imports.bytes, yieldImport]));
  rewritten.set(3, appendToVector(find(3), definedFuncs, u32(types + 1), 1));
  rewritten.set(6, find(6) ? rewriteGlobals(find(6)!, remap, firstAllowance) : concat([u32(1), budgetGlobal(firstAllowance)]));
  rewritten.set(7, rewriteExports(find(7), remap, budget));
  if (find(8)) rewritten.set(8, u32(remap(new Reader(find(8)!).u32())));
  if (find(9)) rewritten.set(9, rewriteElements(find(9)!, remap));
  const flushBody = flushCode(budget, yieldFn);
  rewritten.set(10, find(10) ? rewriteCode(find(10)!, { params: funcTypes.map((t) => params[t] ?? 0), typeParams: params, wrappedUpTo: new Int32Array(1024), isWrapped: new Uint8Array(1024), yieldFn, flushFn, budget, importedFuncs: imports.funcs }, flushBody) : concat([u32(1), u32(flushBody.length), flushBody]));

  // Sections in their required order; custom sections stay where they were, but "name" goes: its
  // function indices would be wrong now.
  const order = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]; // 13: tags (exception handling)
  const out: Uint8Array[] = [bytes.subarray(0, 8)];
  const emitted = new Set<number>();
  const has = (id: number) => sections.some((s) => s.id === id);
  const emitKnown = (id: number) => {
    const content = rewritten.get(id) ?? find(id);
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

// ---- The probes -----------------------------------------------------------------------------

/**
 * `$flush`, () -> i32: takes LOOP_BATCH from the budget, calls the host if it is spent (passing
 * what is left, zero or less), and answers 0, the loop counter's new value.
 */
function flushCode(budget: number, yieldFn: number): Uint8Array {
  const g = u32(budget);
  return concat([
    Uint8Array.of(0x00), // no locals
    Uint8Array.of(0x23), g, Uint8Array.of(0x41), s32(LOOP_BATCH), Uint8Array.of(0x6b, 0x24), g, // budget -= LOOP_BATCH
    spentCode(budget, yieldFn),
    Uint8Array.of(0x41, 0x00, 0x0b), // i32.const 0; end
  ]);
}

/** `if (budget < 1) budget = dewgrid.yield(budget)`. */
function spentCode(budget: number, yieldFn: number): Uint8Array {
  const g = u32(budget);
  return concat([Uint8Array.of(0x23), g, Uint8Array.of(0x41, 0x01, 0x48, 0x04, 0x40, 0x23), g, Uint8Array.of(0x10), u32(yieldFn), Uint8Array.of(0x24), g, Uint8Array.of(0x0b)]);
}

/** At the entry of a function that calls: `budget -= 1; if (budget < 1) budget = dewgrid.yield(budget)`. */
function entryProbeCode(budget: number, yieldFn: number): Uint8Array {
  const g = u32(budget);
  return concat([Uint8Array.of(0x23), g, Uint8Array.of(0x41, 0x01, 0x6b, 0x24), g, spentCode(budget, yieldFn)]);
}

/** At a loop header: `c += 1; if (c == LOOP_BATCH) c = $flush()`. */
function loopProbeCode(local: number, flushFn: number): Uint8Array {
  const l = u32(local);
  return concat([
    Uint8Array.of(0x20), l, Uint8Array.of(0x41, 0x01, 0x6a, 0x22), l, Uint8Array.of(0x41), s32(LOOP_BATCH), Uint8Array.of(0x46, 0x04, 0x40, 0x10), u32(flushFn),
    Uint8Array.of(0x21), l, Uint8Array.of(0x0b),
  ]);
}

/** At the header of a wrapped loop: `c += 1; br_if yield (c == LOOP_BATCH)`, out of the loop (label 1: the yield block). */
function wrappedProbeCode(local: number): Uint8Array {
  const l = u32(local);
  return concat([Uint8Array.of(0x20), l, Uint8Array.of(0x41, 0x01, 0x6a, 0x22), l, Uint8Array.of(0x41), s32(LOOP_BATCH), Uint8Array.of(0x46, 0x0d, 0x01)]);
}

/** Between `block bt` (done) and the original `loop bt`: `loop (retry) block (yield)`. */
const WRAPPER_OPENING = Uint8Array.of(0x03, 0x40, 0x02, 0x40);

/**
 * After a wrapped loop's `end`: `br done; end (yield); c = $flush() - 1; br retry; end; unreachable;
 * end (done)`. -1: the probe that ran out runs again when the loop is entered again.
 */
function wrappedTailCode(local: number, flushFn: number): Uint8Array {
  return concat([Uint8Array.of(0x0c, 0x02, 0x0b, 0x10), u32(flushFn), Uint8Array.of(0x41, 0x7f, 0x6a, 0x21), u32(local), Uint8Array.of(0x0c, 0x00, 0x0b, 0x00, 0x0b)]);
}

/** Thrown by rewriteBody when a function uses exception handling, whose labels it does not shift: the function is rewritten again without wrapping. */
const USES_EXCEPTIONS = new Error('exception handling');

/** Before a way out, or an import's call: `budget -= c; c = 0`. Stack-neutral, so valid anywhere. */
function settleCode(local: number, budget: number): Uint8Array {
  const l = u32(local);
  const g = u32(budget);
  return concat([Uint8Array.of(0x23), g, Uint8Array.of(0x20), l, Uint8Array.of(0x6b, 0x24), g, Uint8Array.of(0x41, 0x00, 0x21), l]);
}

function budgetGlobal(initial: number): Uint8Array {
  return concat([Uint8Array.of(0x7f, 0x01, 0x41), s32(initial), Uint8Array.of(0x0b)]); // mut i32 = i32.const initial
}

// ---- The code section: one pass ---------------------------------------------------------------

interface CodeContext {
  /** Each defined function's parameter count. */
  params: number[];
  /** Each type's parameter count (for block types given by index). */
  typeParams: number[];
  /** rewriteBody's scratch: per open block, the wrapped loops open up to it, and whether it is one. */
  wrappedUpTo: Int32Array;
  isWrapped: Uint8Array;
  yieldFn: number;
  flushFn: number;
  budget: number;
  importedFuncs: number;
}

/**
 * Each function body copied as it is, with the probes put in: the loop probe after each loop's
 * block type, the entry probe (when the body calls anything) before the first instruction, a
 * settle before each way out and each import call once a loop has been seen. (No loop ahead of an
 * instruction in the code means none has run in this call yet: code only goes back to a loop's
 * header.) Calls and ref.func get their index remapped; everything else is copied in runs.
 */
function rewriteCode(content: Uint8Array, ctx: CodeContext, flushBody: Uint8Array): Uint8Array {
  const r = new Reader(content);
  const count = r.u32();
  const out = new Writer(Math.ceil(content.length * 1.08) + 1024);
  out.u32(count + 1);
  const body = new Writer(1 << 16);
  const entryProbe = entryProbeCode(ctx.budget, ctx.yieldFn);
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    if (end > content.length) throw new InstrumentError('the module ends early');
    // The loop counter is one more i32 local after all the others (parameters, then declared).
    const groups = r.u32();
    let declared = 0;
    for (let j = 0; j < groups; j++) {
      declared += r.u32();
      r.valtype();
    }
    const localsEnd = r.pos;
    body.reset();
    const counter = (ctx.params[i] ?? 0) + declared;
    let shape: { loops: boolean; calls: boolean };
    try {
      shape = rewriteBody(content, localsEnd, end, ctx, body, counter, true);
    } catch (error) {
      if (error !== USES_EXCEPTIONS) throw error;
      body.reset(); // exception handling's labels are not shifted: loops keep their call inside
      shape = rewriteBody(content, localsEnd, end, ctx, body, counter, false);
    }
    r.pos = end;
    // The header: the locals (one group more when there is a loop), then the entry probe.
    const header = new Writer(32);
    if (shape.loops) {
      header.u32(groups + 1);
      header.bytes(content.subarray(start + lebLength(content, start), localsEnd));
      header.byte(0x01);
      header.byte(0x7f);
    } else {
      header.bytes(content.subarray(start, localsEnd));
    }
    if (shape.calls) header.bytes(entryProbe);
    out.u32(header.length + body.length);
    out.bytes(header.view());
    out.bytes(body.view());
  }
  out.u32(flushBody.length);
  out.bytes(flushBody);
  return out.view();
}

/**
 * Copies one function body's instructions (from `from` to `end`, its final `end` included) into
 * `out` with the probes put in; says whether it has loops and calls. Written as one loop with its
 * reads inlined, no closures and no array per instruction: it reads every byte of a 30 MB module.
 */
function rewriteBody(b: Uint8Array, from: number, end: number, ctx: CodeContext, out: Writer, counter: number, wrap: boolean): { loops: boolean; calls: boolean } {
  let p = from;
  let copyFrom = from;
  let depth = 0;
  let calls = false;
  let loops = false;
  let settle: Uint8Array | null = null;
  let loopProbe: Uint8Array | null = null;
  let wrappedProbe: Uint8Array | null = null;
  let wrappedTail: Uint8Array | null = null;
  // The open blocks: whether each is a wrapped loop, and how many wrapped loops are open up to and
  // including it: a branch's new label is its old one plus three per wrapped loop it crosses.
  // (A block takes two bytes at least, so a body nests at most half its size deep.)
  if (ctx.wrappedUpTo.length < end - from) ctx.wrappedUpTo = new Int32Array(Math.max(end - from, ctx.wrappedUpTo.length * 2));
  const wrappedUpTo = ctx.wrappedUpTo;
  const isWrapped = ctx.isWrapped.length >= end - from ? ctx.isWrapped : (ctx.isWrapped = new Uint8Array(wrappedUpTo.length));
  while (p < end) {
    const at = p;
    const op = b[p++]!;
    // The common instructions first: locals, constants, loads and stores, numeric operators.
    if (op >= 0x45 && op <= 0xc4) continue; // numeric: no immediates
    if (op >= 0x20 && op <= 0x24) { // local.get/set/tee, global.get/set
      while (b[p++]! & 0x80);
      continue;
    }
    if (op >= 0x28 && op <= 0x3e) { // loads and stores: memarg
      const align = b[p++]!;
      if (align & 0x80) while (b[p++]! & 0x80);
      if (align & 0x40) while (b[p++]! & 0x80); // multi-memory: a memory index
      while (b[p++]! & 0x80);
      continue;
    }
    switch (op) {
      case 0x41: case 0x42: // i32.const, i64.const
        while (b[p++]! & 0x80);
        break;
      case 0x02: case 0x04: case 0x06: // block, if, try
        if (op === 0x06 && wrap) throw USES_EXCEPTIONS;
        p = skipBlockType(b, p);
        wrappedUpTo[depth] = depth === 0 ? 0 : wrappedUpTo[depth - 1]!;
        isWrapped[depth++] = 0;
        break;
      case 0x03: { // loop
        const typeAt = p;
        p = skipBlockType(b, p);
        const t = b[typeAt]!;
        const params = t === 0x40 || (t >= 0x63 && t <= 0x7f) ? 0 : (ctx.typeParams[readLeb(b, typeAt)[0]] ?? 0);
        if (!loops) {
          loops = true;
          settle = settleCode(counter, ctx.budget);
        }
        const wrapped = wrap && params === 0;
        if (wrapped) {
          // block bt (done) / loop (retry) / block (yield) / loop bt (the original), its probe first
          wrappedProbe ??= wrappedProbeCode(counter);
          copyInto(out, b, copyFrom, at);
          out.byte(0x02);
          copyInto(out, b, typeAt, p);
          out.bytes(WRAPPER_OPENING);
          copyInto(out, b, at, p);
          out.bytes(wrappedProbe);
        } else {
          // A loop with parameters, or in a function with exception handling: the call inside.
          loopProbe ??= loopProbeCode(counter, ctx.flushFn);
          copyInto(out, b, copyFrom, p);
          out.bytes(loopProbe);
        }
        copyFrom = p;
        wrappedUpTo[depth] = (depth === 0 ? 0 : wrappedUpTo[depth - 1]!) + (wrapped ? 1 : 0);
        isWrapped[depth++] = wrapped ? 1 : 0;
        break;
      }
      case 0x0b: // end
        if (depth === 0) {
          if (settle) {
            copyInto(out, b, copyFrom, at);
            out.bytes(settle);
            copyFrom = at;
          }
          copyInto(out, b, copyFrom, p);
          if (p !== end) throw new InstrumentError('a function body does not end at its end');
          return { loops, calls };
        }
        depth--;
        if (isWrapped[depth]) {
          // br done; end (yield); $flush and re-enter: br retry; end; unreachable; end (done)
          wrappedTail ??= wrappedTailCode(counter, ctx.flushFn);
          copyInto(out, b, copyFrom, p);
          out.bytes(wrappedTail);
          copyFrom = p;
        }
        break;
      case 0x0a: case 0x19: // throw_ref, catch_all
        if (wrap) throw USES_EXCEPTIONS;
        break;
      case 0x05: case 0x00: case 0x01: case 0x1a: case 0x1b: case 0xd1: case 0xd3: case 0xd5:
        break; // else, unreachable, nop, drop, select, ref.is_null, ref.eq, ref.as_non_null
      case 0x0f: // return
        if (settle) {
          copyInto(out, b, copyFrom, at);
          out.bytes(settle);
          copyFrom = at;
        }
        break;
      case 0x0c: case 0x0d: case 0xd4: case 0xd6: { // br, br_if, br_on_null, br_on_non_null
        const [label, next] = readLeb(b, p);
        p = next;
        const below = depth === 0 ? 0 : wrappedUpTo[depth - 1]!;
        const crossed = label >= depth ? below : below - wrappedUpTo[depth - 1 - label]!;
        const exits = settle !== null && label === depth && op <= 0x0d; // to the function's label: a way out
        if (crossed > 0 || exits) {
          copyInto(out, b, copyFrom, at);
          if (exits) out.bytes(settle!);
          out.byte(op);
          out.u32(label + 3 * crossed);
          copyFrom = p;
        }
        break;
      }
      case 0x0e: { // br_table
        const [n, labelsAt] = readLeb(b, p);
        p = labelsAt;
        const below = depth === 0 ? 0 : wrappedUpTo[depth - 1]!;
        let exits = false;
        let crosses = false;
        for (let i = 0; i <= n; i++) {
          const [label, after] = readLeb(b, p);
          p = after;
          if (label >= depth) exits = true;
          if (below - (label >= depth ? 0 : wrappedUpTo[depth - 1 - label]!) > 0) crosses = true;
        }
        exits &&= settle !== null;
        if (exits || crosses) {
          copyInto(out, b, copyFrom, at);
          if (exits) out.bytes(settle!);
          out.byte(0x0e);
          out.u32(n);
          for (let i = 0, q = labelsAt; i <= n; i++) {
            const [label, after] = readLeb(b, q);
            q = after;
            out.u32(label + 3 * (below - (label >= depth ? 0 : wrappedUpTo[depth - 1 - label]!)));
          }
          copyFrom = p;
        }
        break;
      }
      case 0x10: case 0x12: case 0xd2: { // call, return_call, ref.func: a function index
        const [f, next] = readLeb(b, p);
        p = next;
        if (op !== 0xd2) {
          calls = true;
          if (settle && (op === 0x12 || f < ctx.importedFuncs)) {
            copyInto(out, b, copyFrom, at);
            out.bytes(settle);
            copyFrom = at;
          }
        }
        if (f >= ctx.yieldFn) {
          copyInto(out, b, copyFrom, at);
          out.byte(op);
          out.u32(f + 1);
          copyFrom = p;
        }
        break;
      }
      case 0x11: case 0x13: // call_indirect, return_call_indirect
        calls = true;
        if (settle && op === 0x13) {
          copyInto(out, b, copyFrom, at);
          out.bytes(settle);
          copyFrom = at;
        }
        while (b[p++]! & 0x80);
        while (b[p++]! & 0x80);
        break;
      case 0x14: case 0x15: // call_ref, return_call_ref
        calls = true;
        if (settle && op === 0x15) {
          copyInto(out, b, copyFrom, at);
          out.bytes(settle);
          copyFrom = at;
        }
        while (b[p++]! & 0x80);
        break;
      case 0x1f: { // try_table
        if (wrap) throw USES_EXCEPTIONS;
        p = skipBlockType(b, p);
        let [n, next] = readLeb(b, p);
        p = next;
        for (; n > 0; n--) {
          const kind = b[p++]!;
          if (kind <= 1) while (b[p++]! & 0x80);
          while (b[p++]! & 0x80);
        }
        wrappedUpTo[depth] = depth === 0 ? 0 : wrappedUpTo[depth - 1]!;
        isWrapped[depth++] = 0;
        break;
      }
      case 0x18: // delegate: ends its try
        if (wrap) throw USES_EXCEPTIONS;
        while (b[p++]! & 0x80);
        depth--;
        break;
      case 0x07: case 0x08: case 0x09: // catch, throw, rethrow
        if (wrap) throw USES_EXCEPTIONS;
        while (b[p++]! & 0x80);
        break;
      case 0x25: case 0x26: // table.get, table.set
      case 0x3f: case 0x40: // memory.size, memory.grow
        while (b[p++]! & 0x80);
        break;
      case 0x1c: { // select t*
        let [n, next] = readLeb(b, p);
        p = next;
        for (; n > 0; n--) {
          const t = b[p++]!;
          if (t === 0x63 || t === 0x64) p = skipHeapType(b, p);
        }
        break;
      }
      case 0x43: p += 4; break; // f32.const
      case 0x44: p += 8; break; // f64.const
      case 0xd0: p = skipHeapType(b, p); break; // ref.null
      case 0xfc: {
        const [sub, next] = readLeb(b, p);
        p = next;
        if (sub <= 7) break; // saturating truncations
        if (sub === 8 || sub === 10 || sub === 12 || sub === 14) {
          while (b[p++]! & 0x80);
          while (b[p++]! & 0x80);
        } else if (sub <= 17) while (b[p++]! & 0x80);
        else throw new InstrumentError(`opcode 0xfc ${sub} is not one the yield hook knows`);
        break;
      }
      case 0xfd: { // SIMD
        const [sub, next] = readLeb(b, p);
        p = next;
        if (sub <= 11 || sub === 92 || sub === 93) p = skipMemarg(b, p);
        else if (sub === 12 || sub === 13) p += 16;
        else if (sub >= 21 && sub <= 34) p++;
        else if (sub >= 84 && sub <= 91) p = skipMemarg(b, p) + 1;
        break;
      }
      case 0xfe: { // atomics
        const [sub, next] = readLeb(b, p);
        p = next;
        if (sub === 3) p++;
        else p = skipMemarg(b, p);
        break;
      }
      default:
        throw new InstrumentError(`opcode 0x${op.toString(16)} is not one the yield hook knows`);
    }
  }
  throw new InstrumentError('a function body ends without its end');
}

/** Copies b[from, to) into `out`: short runs byte by byte (a subarray costs more than they do). */
function copyInto(out: Writer, b: Uint8Array, from: number, to: number): void {
  if (to - from > 32) out.bytes(b.subarray(from, to));
  else for (let i = from; i < to; i++) out.byte(b[i]!);
}

/** An unsigned LEB128 at `p`: its value and where the next thing starts. */
function readLeb(b: Uint8Array, p: number): [number, number] {
  let byte = b[p++]!;
  if (byte < 0x80) return [byte, p];
  let value = byte & 0x7f;
  let scale = 0x80;
  for (let i = 1; i < 5; i++) {
    byte = b[p++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, p];
    scale *= 0x80;
  }
  throw new InstrumentError('a malformed LEB128 number');
}

function skipBlockType(b: Uint8Array, p: number): number {
  const t = b[p]!;
  if (t === 0x40 || (t >= 0x6a && t <= 0x7f)) return p + 1;
  if (t === 0x63 || t === 0x64) return skipHeapType(b, p + 1);
  while (b[p++]! & 0x80); // a type index (s33)
  return p;
}

function skipHeapType(b: Uint8Array, p: number): number {
  const t = b[p]!;
  if (t >= 0x40 && t < 0x80) return p + 1; // an abstract heap type (negative s33, one byte)
  while (b[p++]! & 0x80);
  return p;
}

function skipMemarg(b: Uint8Array, p: number): number {
  const [align, next] = readLeb(b, p);
  p = next;
  if (align & 0x40) while (b[p++]! & 0x80);
  while (b[p++]! & 0x80);
  return p;
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

function customName(content: Uint8Array): string {
  const r = new Reader(content);
  return new TextDecoder().decode(r.take(r.u32()));
}

/** Each function type's parameter count (a module with GC type definitions is not rewritten). */
function typeParams(content: Uint8Array): number[] {
  const r = new Reader(content);
  const count = r.u32();
  const params: number[] = [];
  for (let i = 0; i < count; i++) {
    if (r.u8() !== 0x60) throw new InstrumentError('the module uses GC type definitions, which the yield hook does not rewrite');
    const n = r.u32();
    params.push(n);
    for (let j = 0; j < n; j++) r.valtype();
    const results = r.u32();
    for (let j = 0; j < results; j++) r.valtype();
  }
  return params;
}

/** The type index of each defined function. */
function functionTypes(content: Uint8Array): number[] {
  const r = new Reader(content);
  return Array.from({ length: r.u32() }, () => r.u32());
}

/** `count` entries of a vector, then `extra` more (already encoded). */
function appendToVector(content: Uint8Array | null, count: number, entries: Uint8Array, added: number): Uint8Array {
  if (!content) return concat([u32(added), entries]);
  const r = new Reader(content);
  r.u32();
  return concat([u32(count + added), content.subarray(r.pos), entries]);
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

/** A constant expression (globals, element offsets and items), up to its `end`, function indices remapped. */
function rewriteExpr(r: Reader, remap: (f: number) => number): Uint8Array {
  const parts: Uint8Array[] = [];
  let from = r.pos;
  for (;;) {
    const op = r.u8();
    switch (op) {
      case 0x0b:
        parts.push(r.bytes.subarray(from, r.pos));
        return concat(parts);
      case 0xd2: { // ref.func
        parts.push(r.bytes.subarray(from, r.pos));
        parts.push(u32(remap(r.u32())));
        from = r.pos;
        break;
      }
      case 0x23: r.u32(); break; // global.get
      case 0x41: case 0x42: r.sleb(); break;
      case 0x43: r.take(4); break;
      case 0x44: r.take(8); break;
      case 0xd0: r.heaptype(); break;
      case 0xfd: r.u32(); r.take(16); break; // v128.const
      default:
        if (!(op >= 0x6a && op <= 0x7e)) throw new InstrumentError(`opcode 0x${op.toString(16)} in a constant expression is not one the yield hook knows`);
    }
  }
}

// ---- Bytes ----------------------------------------------------------------------------------

/** A growing byte buffer, for the code section: no array per instruction. */
class Writer {
  private buffer: Uint8Array;
  length = 0;

  constructor(capacity: number) {
    this.buffer = new Uint8Array(capacity);
  }

  reset(): void {
    this.length = 0;
  }

  private room(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const bigger = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
  }

  byte(value: number): void {
    this.room(1);
    this.buffer[this.length++] = value;
  }

  bytes(values: Uint8Array): void {
    this.room(values.length);
    this.buffer.set(values, this.length);
    this.length += values.length;
  }

  u32(value: number): void {
    this.room(5);
    do {
      let byte = value & 0x7f;
      value = Math.floor(value / 128);
      if (value !== 0) byte |= 0x80;
      this.buffer[this.length++] = byte;
    } while (value !== 0);
  }

  view(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

function lebLength(bytes: Uint8Array, at: number): number {
  let n = 1;
  while (bytes[at + n - 1]! & 0x80) n++;
  return n;
}

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

  limits(): void {
    const flags = this.u8();
    this.sleb(); // min (u32, or u64 for memory64)
    if (flags & 1) this.sleb();
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
