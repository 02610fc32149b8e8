/**
 * SHA-256, synchronous, for small inputs: WebCrypto's digest answers through a promise that
 * settles after a trip to another thread (about 0.1 ms in a Chromium worker, more than hashing a
 * few kilobytes here takes), and most tasks' stdout and stderr are that small. Large inputs still
 * go to WebCrypto (src/protocol/results.ts, SMALL_DIGEST_BYTES). The hashing is WebAssembly
 * (sha256/sha256.c): in JavaScript, run a few times per worker, it stayed in the engines'
 * interpreters, 0.05 ms for one block in Chromium (docs/benchmarks.md, "(l) peers").
 */
import { fromBase64 } from './bytes.ts';
import { SHA256_WASM_BASE64 } from './sha256/sha256-wasm.ts';

/** What this file uses of WebAssembly: the server's Node-only types (server/tsconfig.json) have no such namespace. */
declare const WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (module: object) => { exports: unknown } };

interface Hasher {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  sha256_hex(input: number, length: number, hex: number): void;
  /** Where the module's own data ends: the hex digest goes here, the input after it. */
  __heap_base: { value: number };
}

const PAGE = 65536;
const HEX_BYTES = 64;
let hasher: Hasher | null = null;
const ascii = new TextDecoder();

/** SHA-256 of `bytes`, as lowercase hex. Meant for inputs of kilobytes; any length is correct. */
export function sha256HexSync(bytes: Uint8Array): string {
  // Compiled on the first call, once per worker: 1.4 KB of WebAssembly.
  hasher ??= new WebAssembly.Instance(new WebAssembly.Module(fromBase64(SHA256_WASM_BASE64))).exports as unknown as Hasher;
  const { memory } = hasher;
  const hexAt = hasher.__heap_base.value;
  const inputAt = hexAt + HEX_BYTES;
  const short = inputAt + bytes.length - memory.buffer.byteLength;
  if (short > 0) memory.grow(Math.ceil(short / PAGE));
  new Uint8Array(memory.buffer, inputAt, bytes.length).set(bytes);
  hasher.sha256_hex(inputAt, bytes.length, hexAt);
  return ascii.decode(new Uint8Array(memory.buffer, hexAt, HEX_BYTES));
}
