/**
 * Caps a module's own linear memory by rewriting the maximum in its memory section (Wasm binary
 * format, section 5: a vector of limits). The engine then refuses memory.grow past the cap, so a
 * memory bomb fails at the cap inside its worker instead of taking the tab down.
 */
import { concatBytes, readLeb128U32 as readU32 } from '../protocol/bytes.ts';

const PAGE = 65536;

export type CapResult = { ok: true; bytes: Uint8Array } | { ok: false; code: 'memory-limit' | 'invalid-module'; message: string };

function writeU32(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/**
 * @param module the module, or the module in pieces that each hold whole sections, the first with
 *   the module's preamble (the yield hook's rewrite hands it so: worker/instrument.ts)
 * @param capBytes the most linear memory the task may use; rounded down to whole 64 KiB pages.
 */
export function capMemory(module: Uint8Array | readonly Uint8Array[], capBytes: number): CapResult {
  const capPages = Math.floor(capBytes / PAGE);
  const pieces = module instanceof Uint8Array ? [module] : module;
  const parts: Uint8Array[] = [pieces[0]!.subarray(0, 8)];
  try {
    for (const [index, bytes] of pieces.entries()) {
      for (let at = index === 0 ? 8 : 0; at < bytes.length; ) {
        const id = bytes[at]!;
        const [size, contentStart] = readU32(bytes, at + 1);
        const end = contentStart + size;
        if (end > bytes.length) throw new RangeError('a section runs past the end of the module');
        if (id !== 5) {
          parts.push(bytes.subarray(at, end));
          at = end;
          continue;
        }
        const [count, first] = readU32(bytes, contentStart);
        const content: number[] = [...writeU32(count)];
        let p = first;
        for (let i = 0; i < count; i++) {
          const flags = bytes[p]!;
          if (flags & 0x04) return { ok: false, code: 'invalid-module', message: 'the module uses 64-bit memory, which this client does not run' };
          const [min, afterMin] = readU32(bytes, p + 1);
          let max = 65536;
          p = afterMin;
          if (flags & 0x01) [max, p] = readU32(bytes, p);
          if (min > capPages) return { ok: false, code: 'memory-limit', message: `the module starts with ${min * PAGE} bytes of memory; the limit is ${capPages * PAGE}` };
          content.push(flags | 0x01, ...writeU32(min), ...writeU32(Math.min(max, capPages)));
        }
        parts.push(Uint8Array.of(5, ...writeU32(content.length), ...content));
        at = end;
      }
    }
  } catch (error) {
    return { ok: false, code: 'invalid-module', message: `not a well-formed module: ${(error as Error).message}` };
  }
  return { ok: true, bytes: concatBytes(parts) };
}
