/**
 * The yield hook: rewrites a verified module so that it counts its own work and calls the host
 * every so often, the idea of Wasmtime's fuel. Version 6 (docs/scheduling.md, section 1):
 *
 * - a **loop probe** at every loop header adds one to a local of its function; every LOOP_BATCH
 *   iterations it leaves the loop (each loop is wrapped in three blocks, so that the call is
 *   outside it) to call the module's own `$flush`, which takes LOOP_BATCH from the budget (a
 *   global) and, when the budget is spent, calls the host (`dewgrid.yield`: it naps, pauses or
 *   returns at once, and answers the next allowance);
 * - in a loop nest that makes no call of its own and uses float or vector locals (version 5), the
 *   wrapped loops take the batch from the budget inline and, around the host call, save those
 *   locals to globals and read them back: no value the nest carries is then live across a call,
 *   which SpiderMonkey's optimizing tier would keep in memory in the inner loops too; a nest
 *   without float or vector locals does the same for the integer locals it carries from one
 *   iteration to the next (read before written), when they are at most 4 (version 6);
 * - the local count is added to the budget before every way out of a function that has passed a
 *   loop, and before every import's call, so the count is exact whatever the allowances;
 * - an **entry probe** only in functions that can recurse (in a cycle of the call graph; an
 *   indirect call reaches every function of its signature that a table or `ref.func` can hold),
 *   or that can make more than 256 activations of functions without one. Every cycle of calls
 *   passes a probe, every way back to a loop's top passes one, and the work between two probes
 *   is bounded.
 *
 * The rewrite itself is C compiled to WebAssembly (worker/rewriter/: rewriter.c, build.sh): one
 * pass over the code that copies the bytes between insertions as they are, then the call graph,
 * then the bodies put together. It reads a 27 MB code section in tens of milliseconds, where the
 * same pass in JavaScript (version 3, bench/legacy/instrument-v3.ts) took as long as the engine's
 * compile. Its module is compiled synchronously on first use: call it in a worker or in Node, not
 * on a page's main thread.
 *
 * The probes executed are a measure of work that depends only on the program and its inputs: the
 * same on every device, so credit can use it (see `workDone`).
 *
 * Runs on the client, in the prepare worker, while the module's hash is checked against its
 * signed manifest; what it makes is used only once the hash matched (the publisher signs exactly
 * what they built, docs/scheduling.md; why unchecked bytes may be rewritten: docs/security.md). It
 * must withstand any input. No DOM, no Node API.
 */
import { REWRITER_WASM_BASE64 } from './rewriter/rewriter-wasm.ts';
import { concatBytes, fromBase64, readLeb128U32 } from '../src/protocol/bytes.ts';

export { BUDGET_EXPORT, INSTRUMENTER_VERSION, workDone, YIELD_IMPORT } from '../src/protocol/throttle.ts';

export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

/** Loop iterations a function counts in its local before it takes them from the budget. */
export const LOOP_BATCH = 64;

/** What the rewrite found and did, for benchmarks. */
export interface InstrumentStats {
  functions: number;
  /** Functions given an entry probe because they can make many unprobed calls. */
  probedForCalls: number;
  /** Functions given an entry probe because they are in a cycle of calls. */
  probedInCycles: number;
  /** Loops wrapped (the flush call outside them), and loops that keep it inside. */
  wrappedLoops: number;
  innerCallLoops: number;
  /** Indirect calls given a probe in front of them (their signature is in a cycle of calls). */
  probedIndirectCalls: number;
  /** Yield sites (wrapped loops' host calls) in call-free loop nests, which save the nest's locals around the call; and those saves. */
  savingSites: number;
  savedLocals: number;
}

interface Rewriter {
  memory: WebAssembly.Memory;
  rw_input(length: number): number;
  rw_instrument(input: number, length: number, allowance: number): number;
  rw_output(): number;
  rw_error(): number;
  rw_stat(i: number): number;
}

let compiled: WebAssembly.Module | null = null;

/** @throws InstrumentError for a module it cannot rewrite (malformed, or using GC types). */
export function instrument(bytes: Uint8Array, firstAllowance: number): Uint8Array {
  return instrumentWithStats(bytes, firstAllowance).bytes;
}

export function instrumentWithStats(bytes: Uint8Array, firstAllowance: number): { bytes: Uint8Array; stats: InstrumentStats } {
  return instrumentInto(bytes, firstAllowance, (pieces, stats) => ({ bytes: concatBytes(pieces), stats }));
}

/**
 * The rewrite, handed to `take` as the rewritten module in pieces, in order: the rewriter's output
 * (a view of its memory, valid only during the call), then the original's sections after the code
 * as they were (views of `bytes`). A caller that copies the module anyway (capping its memory
 * does) saves a copy of tens of megabytes. `rewriter`: another build of rewriter.c, for the
 * benchmarks to measure a candidate against this one (bench/peers.ts). @throws InstrumentError as `instrument`.
 */
export function instrumentInto<T>(bytes: Uint8Array, firstAllowance: number, take: (pieces: readonly Uint8Array[], stats: InstrumentStats) => T, rewriter?: WebAssembly.Module): T {
  if (!(firstAllowance > 0 && firstAllowance <= 0x7fffffff)) throw new RangeError(`the allowance must be from 1 to 2^31-1, got ${firstAllowance}`);
  compiled ??= new WebAssembly.Module(fromBase64(REWRITER_WASM_BASE64) as Uint8Array<ArrayBuffer>);
  // A fresh instance each time: its memory grows to about three times what it is given, and goes with it.
  const rw = new WebAssembly.Instance(rewriter ?? compiled).exports as unknown as Rewriter;
  const { head, trailing } = splitAfterCode(bytes);
  let length: number;
  let input: number;
  try {
    input = rw.rw_input(head.length);
    if (input === 0) throw new InstrumentError(`the module (${bytes.length} bytes) is too large to rewrite`);
    new Uint8Array(rw.memory.buffer, input, head.length).set(head);
    length = rw.rw_instrument(input, head.length, firstAllowance);
  } catch (error) {
    if (error instanceof InstrumentError) throw error;
    throw new InstrumentError(`the rewrite failed: ${(error as Error).message}`); // a trap on input it did not expect
  }
  if (length < 0) {
    const at = rw.rw_error();
    const text = new Uint8Array(rw.memory.buffer, at, 256);
    throw new InstrumentError(new TextDecoder().decode(text.subarray(0, text.indexOf(0))));
  }
  const stats = { functions: rw.rw_stat(0), probedForCalls: rw.rw_stat(1), probedInCycles: rw.rw_stat(2), wrappedLoops: rw.rw_stat(3), innerCallLoops: rw.rw_stat(4), probedIndirectCalls: rw.rw_stat(5), savingSites: rw.rw_stat(6), savedLocals: rw.rw_stat(7) };
  return take([new Uint8Array(rw.memory.buffer, rw.rw_output(), length), ...trailing], stats);
}

/** Sections the rewriter takes at most (MAX_SECTIONS in rewriter.c). */
const MAX_SECTIONS = 256;

/**
 * The module up to the end of its code section, which the rewriter reads, and the sections after it
 * that it would copy as they are: the data section and custom sections, but "name" (its function
 * indices would be wrong in the rewrite). flite is 21.5 MB of which 0.2 MiB is code and the rest its
 * data: handed whole, the rewriter copied it in and out again in fresh memory, 3/4 of its time.
 * Anything else after the code (a module out of order, or cut short) goes to the rewriter whole,
 * which names the problem as before.
 */
function splitAfterCode(bytes: Uint8Array): { head: Uint8Array; trailing: Uint8Array[] } {
  const whole = { head: bytes, trailing: [] };
  const sections: { id: number; start: number; content: number; end: number }[] = [];
  let at = 8;
  while (at < bytes.length) {
    const size = readSize(bytes, at + 1);
    // More sections than the rewriter takes: it refuses the module, before this walk could fill
    // an array with millions of empty ones.
    if (!size || sections.length === MAX_SECTIONS) return whole;
    const end = size.content + size.value;
    if (end > bytes.length) return whole;
    sections.push({ id: bytes[at]!, start: at, content: size.content, end });
    at = end;
  }
  const code = sections.findIndex((s) => s.id === 10);
  if (code < 0) return whole;
  const after = sections.slice(code + 1);
  if (after.some((s) => s.id !== 0 && s.id !== 11) || after.filter((s) => s.id === 11).length > 1) return whole;
  const kept = after.filter((s) => !(s.id === 0 && isNameSection(bytes, s.content, s.end)));
  return { head: bytes.subarray(0, sections[code]!.end), trailing: kept.map((s) => bytes.subarray(s.start, s.end)) };
}

/** A section's size or a name's length: null where it is malformed (the rewriter then names the problem). */
function readSize(bytes: Uint8Array, at: number): { value: number; content: number } | null {
  try {
    const [value, content] = readLeb128U32(bytes, at);
    return { value, content };
  } catch {
    return null;
  }
}

/** As the rewriter tells it (is_name_section in rewriter.c): a custom section whose name is "name". */
function isNameSection(bytes: Uint8Array, content: number, end: number): boolean {
  const name = readSize(bytes, content);
  return name !== null && name.value === 4 && name.content + 4 <= end && String.fromCharCode(...bytes.subarray(name.content, name.content + 4)) === 'name';
}
