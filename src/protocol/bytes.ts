/**
 * Byte helpers shared by page, worker and server. Only globals that all three have
 * (TextEncoder, WebCrypto, btoa/atob) are used, so this file imports nothing.
 */

const utf8Encoder = new TextEncoder();
const strictUtf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Decodes UTF-8, or returns null when the bytes are not valid UTF-8. */
export function decodeUtf8OrNull(bytes: Uint8Array): string | null {
  try {
    return strictUtf8Decoder.decode(bytes);
  } catch {
    return null;
  }
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** @throws TypeError when `hex` is not an even-length lowercase or uppercase hex string. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError(`not a hex string: ${hex.slice(0, 40)}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The engine's own Uint8Array.prototype.toBase64 / Uint8Array.fromBase64 (ES2026), where it has them. */
const native = Uint8Array as unknown as { prototype: { toBase64?: () => string }; fromBase64?: (text: string) => Uint8Array };

export function toBase64(bytes: Uint8Array): string {
  // Native where there is one: 0.3 ms for 480 KB in Chromium, against 34-100 ms below.
  if (native.prototype.toBase64) return (bytes as unknown as { toBase64(): string }).toBase64();
  // Chunked so large outputs do not overflow the argument limit of String.fromCharCode.
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** @throws TypeError when `text` is not valid base64. */
export function fromBase64(text: string): Uint8Array {
  if (native.fromBase64) {
    try {
      return native.fromBase64(text);
    } catch {
      throw new TypeError('not valid base64');
    }
  }
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new TypeError('not valid base64');
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(await sha256(bytes));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The parts one after another, in one new buffer. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * An unsigned LEB128 number of at most 32 bits at `at` (the WebAssembly binary format's u32), and
 * where the next byte is. @throws RangeError when it runs past the end, over 5 bytes or over 2^32-1.
 */
export function readLeb128U32(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  for (let i = 0; i < 5 && at + i < bytes.length; i++) {
    const byte = bytes[at + i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (value > 0xffffffff) break;
      return [value, at + i + 1];
    }
  }
  throw new RangeError(`malformed LEB128 at byte ${at}`);
}
