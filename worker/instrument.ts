/**
 * The yield hook: rewrites a verified module so that it counts its own work and calls the host
 * every so often, the idea of Wasmtime's fuel. A probe at every function entry and every loop
 * header decrements a counter; when it reaches zero the module calls `dewgrid.yield`, which naps,
 * pauses or returns at once, and answers the next allowance. Between two probes there is only
 * straight-line code, so no task can run long without the host getting a word in.
 *
 * The counter lives in a global between functions and in a local of each function while it runs
 * (a register, where a global would cost a load and a store per loop iteration): the local is
 * loaded at entry and after every call, and stored back before every call and every way out of
 * the function (return, a branch to its outermost label, its final end). A trap leaves the global
 * behind, which only matters for the work count of a run that failed anyway.
 *
 * The probes executed are also a measure of work that depends only on the program and its inputs:
 * the same on every device, so credit can use it (see `workDone`).
 *
 * Runs on the client after the module's hash matched its signed manifest: the publisher signs
 * exactly what they built (docs/scheduling.md); in a worker of its own (worker/instrument-worker.ts),
 * as rewriting a large module would hold the page's main thread. Pure: no DOM, no Node API.
 */
import { BUDGET_EXPORT, YIELD_IMPORT } from '../src/protocol/throttle.ts';

export { BUDGET_EXPORT, INSTRUMENTER_VERSION, workDone, YIELD_IMPORT } from '../src/protocol/throttle.ts';

export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

/** @throws InstrumentError for a module it cannot rewrite (malformed, or using GC types). */
export function instrument(bytes: Uint8Array, firstAllowance: number): Uint8Array {
  if (!(firstAllowance > 0 && firstAllowance <= 0x7fffffff)) throw new RangeError(`the allowance must be from 1 to 2^31-1, got ${firstAllowance}`);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d || bytes[4] !== 1) {
    throw new InstrumentError('not a WebAssembly module (version 1)');
  }
  const sections = readSections(bytes);
  const has = (id: number) => sections.some((s) => s.id === id);

  const typeParams = has(1) ? parseTypes(section(sections, 1)) : [];
  const types = typeParams.length;
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
  const blockParams = (bt: Uint8Array) => {
    if (bt[0]! >= 0x40) return 0; // empty, or one value type
    return typeParams[new Reader(bt).u32()] ?? 0; // a type index (non-negative s33: plain LEB)
  };
  if (has(10)) {
    rewritten.set(10, rewriteCode(section(sections, 10), remap, { budget: budgetIndex, yieldFn: yieldIndex, params: functionTypes.map((t) => typeParams[t] ?? 0), blockParams }));
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
  blockParams: (bt: Uint8Array) => number;
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

/** `n -= 1; br_if 1 (n == 0)`: out of the loop to the wrapper that yields. */
function loopProbeCode(local: number): Uint8Array {
  const l = u32(local);
  return concat([Uint8Array.of(0x20), l, Uint8Array.of(0x41, 0x01, 0x6b, 0x22), l, Uint8Array.of(0x45, 0x0d, 0x01)]);
}

/** `br done; end; n = dewgrid.yield() + 1; br retry; end; unreachable; end` (see rewriteInstructions). */
function loopTailCode(local: number, yieldFn: number): Uint8Array {
  return concat([
    Uint8Array.of(0x0c, 0x02, 0x0b, 0x10), u32(yieldFn), // br 2; end; call yield
    Uint8Array.of(0x41, 0x01, 0x6a, 0x21), u32(local), // i32.const 1; i32.add; local.set
    Uint8Array.of(0x0c, 0x00, 0x0b, 0x00, 0x0b), // br 0; end; unreachable; end
  ]);
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

/** Each function type's parameter count; a module with GC type definitions (rec groups, structs) is not rewritten. */
function parseTypes(content: Uint8Array): number[] {
  const r = new Reader(content);
  const count = r.u32();
  const params: number[] = [];
  for (let i = 0; i < count; i++) {
    if (r.u8() !== 0x60) throw new InstrumentError('the module uses GC type definitions, which the yield hook does not rewrite');
    for (let list = 0; list < 2; list++) {
      const n = r.u32();
      if (list === 0) params.push(n);
      for (let j = 0; j < n; j++) r.valtype();
    }
  }
  return params;
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
      loopProbe: loopProbeCode(counter),
      loopTail: loopTailCode(counter, probes.yieldFn),
      store: storeCode(counter, probes.budget),
      load: loadCode(counter, probes.budget),
      blockParams: probes.blockParams,
    };
    const out: Uint8Array[] = [u32(groups + 1), body.bytes.subarray(groupsStart, body.pos), Uint8Array.of(0x01, 0x7f), code.load, code.probe];
    rewriteInstructions(body, remap, code, out, true);
    const rewrittenBody = concat(out);
    parts.push(u32(rewrittenBody.length), rewrittenBody);
  }
  return concat(parts);
}

/** The snippets a function body gets, for its own counter local. */
interface FunctionCode {
  /** At function entry, and in loops that are not wrapped: the call inside. */
  probe: Uint8Array;
  /** At the header of a wrapped loop: the call outside (see rewriteInstructions). */
  loopProbe: Uint8Array;
  /** After the end of a wrapped loop. */
  loopTail: Uint8Array;
  store: Uint8Array;
  load: Uint8Array;
  /** The parameter count of a block type (its raw bytes). */
  blockParams: (bt: Uint8Array) => number;
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
 * A loop's probe keeps its call to the host out of the loop: a call inside would make the engine
 * save every live register around it on each iteration (a quarter slower on the fractal's inner
 * loop). So each loop is wrapped, and the probe only branches out when the counter runs out:
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
 * Loops with parameters, and functions using exception handling (whose labels this does not
 * shift), keep the probe with its call inside the loop.
 */
function rewriteInstructions(r: Reader, remap: (f: number) => number, code: FunctionCode | null, out: Uint8Array[], wholeBody: boolean): void {
  /** Open blocks, outermost first: whether each is a wrapped loop (three labels of ours around it). */
  const frames: boolean[] = [];
  const wrapLoops = code !== null && !usesExceptionHandling(r.bytes.subarray(r.pos));
  let copyFrom = r.pos;
  const flush = () => out.push(r.bytes.subarray(copyFrom, r.pos));
  /** Copies up to the instruction that starts at `at`, then `snippet`, and goes on from `resume`. */
  const put = (at: number, snippet: Uint8Array, resume = at) => {
    out.push(r.bytes.subarray(copyFrom, at), snippet);
    copyFrom = resume;
  };
  /** A branch label, shifted past the wrappers it now crosses. */
  const shifted = (label: number) => {
    let extra = 0;
    for (let i = frames.length - 1; i > frames.length - 1 - label && i >= 0; i--) if (frames[i]) extra += 3;
    return label + extra;
  };
  const leavesFunction = (label: number) => label === frames.length;
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
        frames.push(false);
        break;
      case 0x03: { // loop
        r.blocktype();
        if (!code) {
          frames.push(false);
          break;
        }
        const bt = r.bytes.subarray(at + 1, r.pos);
        if (wrapLoops && code.blockParams(bt) === 0) {
          put(at, concat([Uint8Array.of(0x02), bt, Uint8Array.of(0x03, 0x40, 0x02, 0x40, 0x03), bt, code.loopProbe]), r.pos);
          frames.push(true);
        } else {
          flush();
          out.push(code.probe);
          copyFrom = r.pos;
          frames.push(false);
        }
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
        frames.push(false);
        break;
      }
      case 0x0b: // end
        if (frames.length === 0) {
          if (code) put(at, code.store);
          flush();
          return;
        }
        if (frames.pop() && code) put(r.pos, code.loopTail, r.pos);
        break;
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
        put(at, concat([leavesFunction(label) ? code.store : new Uint8Array(0), Uint8Array.of(op), u32(shifted(label))]), r.pos);
        break;
      }
      case 0x0e: { // br_table
        const n = r.u32();
        const labels = Array.from({ length: n + 1 }, () => r.u32());
        if (!code) break;
        const exit = labels.some(leavesFunction) ? code.store : new Uint8Array(0);
        put(at, concat([exit, Uint8Array.of(0x0e), u32(n), ...labels.map((l) => u32(shifted(l)))]), r.pos);
        break;
      }
      case 0x10: case 0x12: case 0xd2: { // call, return_call, ref.func: a function index
        const f = r.u32();
        const call = concat([Uint8Array.of(op), u32(remap(f))]);
        if (code && op !== 0xd2) put(at, concat([code.store, call, op === 0x10 ? code.load : new Uint8Array(0)]), r.pos);
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
