/**
 * Signed results and what the server compares: a device signs each result with its own ed25519
 * key (its id is derived from that key, so nobody can claim another's), over the hashes of the
 * outputs rather than the outputs themselves; the server checks the signature against the hashes
 * of what it received, and groups results by their output digest to find a quorum.
 */
import { CHECKPOINT_DIR } from './api.ts';
import { sha256, sha256Hex, toHex, utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import { sha256HexSync } from './sha256-small.ts';
import type { ResultHead, ResultSubmission } from './schema.ts';

export const RESULT_SIGNING_DOMAIN = 'dewgrid/result/v1\n';

/** A device's id: the first 16 bytes of SHA-256 of its 32-byte ed25519 public key, as hex. */
export async function deviceIdOf(publicKey: Uint8Array): Promise<string> {
  return toHex((await sha256(publicKey)).subarray(0, 16));
}

/** SHA-256 (hex) of each output, as the worker reports them (WorkerOutcome.digests). */
export interface OutputDigests {
  stdout: string;
  stderr: string;
  files: { path: string; sha256: string }[];
}

/** SHA-256 of no bytes: the digest of an empty output. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Outputs up to this many bytes are hashed here, synchronously (src/protocol/sha256-small.ts): for
 * them WebCrypto's trip to another thread and back takes longer than the hashing.
 */
export const SMALL_DIGEST_BYTES = 4096;

/** SHA-256 (hex) of one output: none for an empty one, here (WebAssembly, at once) for a small one, else WebCrypto's. */
function outputDigest256(bytes: Uint8Array): string | Promise<string> {
  if (bytes.length === 0) return EMPTY_SHA256;
  return bytes.length <= SMALL_DIGEST_BYTES ? sha256HexSync(bytes) : sha256Hex(bytes);
}

type Outputs = { stdout: Uint8Array; stderr: Uint8Array; files: { path: string; data: Uint8Array }[] };

/**
 * The digests, at once if every output is small (then nothing waits for a promise: a task worker
 * answers in the same turn, docs/benchmarks.md "(l) peers"), else a promise of them.
 */
export function outputDigests(outputs: Outputs): OutputDigests | Promise<OutputDigests> {
  const digests = [outputs.stdout, outputs.stderr, ...outputs.files.map((f) => f.data)].map(outputDigest256);
  const named = ([stdout, stderr, ...files]: string[]): OutputDigests => ({ stdout: stdout!, stderr: stderr!, files: outputs.files.map((f, i) => ({ path: f.path, sha256: files[i]! })) });
  // All at once: WebCrypto hashes each large one off the calling thread, so they overlap.
  return digests.every((d) => typeof d === 'string') ? named(digests as string[]) : Promise.all(digests).then(named);
}

/** The submission without its signature, and with each output replaced by its digest. */
export type ResultClaim = Omit<ResultSubmission, 'signature' | 'stdout' | 'stderr' | 'files'> & { outputs: OutputDigests };

/** The exact bytes a result signature covers: everything in the submission, outputs by their SHA-256. */
export function resultSigningBytes(claim: ResultClaim): Uint8Array {
  return utf8(RESULT_SIGNING_DOMAIN + canonicalJson(claim));
}

/**
 * What two honest devices running the same task must agree on: exit code, outputs and whether any
 * were cut short. Not the work count (credit takes the smallest claim), not timings.
 */
export async function outputDigest(result: OutputDigestInput): Promise<string> {
  return sha256Hex(outputDigestBytes(result));
}

export type OutputDigestInput = { exitCode: number | null; truncated: ResultSubmission['truncated']; outputs: OutputDigests };

/** The bytes outputDigest hashes (the server hashes them with node:crypto, synchronously). */
export function outputDigestBytes(result: OutputDigestInput): Uint8Array {
  return utf8(canonicalJson({ exitCode: result.exitCode, truncated: result.truncated, outputs: result.outputs }));
}

/** Credit for a validated result: one per million probes of work (the yield hook's count); one flat for work not counted (WASIX). */
export function creditFor(work: number | null): number {
  return work === null ? 1 : Math.round(work / 1000) / 1000;
}

/** Longest name of one file or folder a task's file system takes, in UTF-8 bytes (Linux's NAME_MAX). */
export const OUTPUT_NAME_MAX = 255;

/**
 * What is wrong with a result's output file paths, or null: paths a task's file system could not
 * have made, which an owner's disk could not hold side by side (issue #13, items 4 and 10). Each
 * path has passed the schema (absolute, no `.` or `..`). Refused: `/` (a folder); a name longer
 * than OUTPUT_NAME_MAX bytes; files under /checkpoint (the device keeps those, they are never
 * outputs); a path twice; a file where another path needs a folder (`/a` and `/a/b`).
 * @returns the index of the first bad path and what is wrong with it.
 */
export function outputPathProblem(paths: readonly string[]): { index: number; message: string } | null {
  const seen = new Map<string, number>();
  for (const [index, path] of paths.entries()) {
    if (path === '/') return { index, message: '/ is the root folder, not a file' };
    const long = path.split('/').find((name) => utf8(name).length > OUTPUT_NAME_MAX);
    if (long !== undefined) return { index, message: `a name of ${utf8(long).length} bytes is longer than ${OUTPUT_NAME_MAX}` };
    if (path === CHECKPOINT_DIR || path.startsWith(`${CHECKPOINT_DIR}/`)) return { index, message: `files under ${CHECKPOINT_DIR} are the device's own, never outputs` };
    const earlier = seen.get(path);
    if (earlier !== undefined) return { index, message: `${path} is also files.${earlier}.path` };
    seen.set(path, index);
  }
  for (const [index, path] of paths.entries()) {
    for (let cut = path.indexOf('/', 1); cut !== -1; cut = path.indexOf('/', cut + 1)) {
      const folder = seen.get(path.slice(0, cut));
      if (folder !== undefined) return { index, message: `files.${folder}.path ${path.slice(0, cut)} is a file, so ${path} cannot be one` };
    }
  }
  return null;
}

/**
 * A result posted as bytes, not base64 in JSON (docs/protocol.md, "POST /api/results"): a 4-byte
 * big-endian length, that many bytes of UTF-8 JSON (a ResultHead: the submission with each
 * output's size), then stdout, stderr and each file's bytes, back to back, nothing after. The
 * signature is the same as for the JSON form: over the outputs' SHA-256.
 */
export const RESULT_BODY_TYPE = 'application/vnd.dewgrid.result';

/** The body's parts in order, for a Blob: outputs go in as they are (Blobs by reference, no copy). */
export function resultBodyParts(head: ResultHead, outputs: (Blob | Uint8Array)[]): (Blob | Uint8Array)[] {
  const json = utf8(JSON.stringify(head));
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, json.length);
  return [length, json, ...outputs];
}

/** The head and the outputs of a binary result body, or what is wrong with it. */
export function parseResultBody(body: Uint8Array): { ok: true; head: unknown; outputs: Uint8Array[] } | { ok: false; message: string } {
  if (body.length < 4) return { ok: false, message: `a binary result starts with the 4-byte length of its head; the body has ${body.length} bytes` };
  const headLength = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  if (4 + headLength > body.length) return { ok: false, message: `the head is ${headLength} bytes long, but the body has ${body.length - 4} after its length` };
  let head: { stdout?: { size?: unknown }; stderr?: { size?: unknown }; files?: { size?: unknown }[] };
  try {
    head = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(4, 4 + headLength)));
  } catch (error) {
    return { ok: false, message: `the head is not UTF-8 JSON (${(error as Error).message})` };
  }
  const sizes = [head?.stdout?.size, head?.stderr?.size, ...(Array.isArray(head?.files) ? head.files.map((f) => f?.size) : [])];
  const outputs: Uint8Array[] = [];
  let at = 4 + headLength;
  for (const size of sizes) {
    if (!Number.isSafeInteger(size) || (size as number) < 0) return { ok: false, message: 'the head gives an output size that is not a whole number of bytes' };
    if (at + (size as number) > body.length) return { ok: false, message: `the head's output sizes add up to more than the ${body.length - 4 - headLength} bytes after it` };
    outputs.push(body.subarray(at, at + (size as number)));
    at += size as number;
  }
  if (at !== body.length) return { ok: false, message: `${body.length - at} bytes follow the outputs the head names` };
  return { ok: true, head, outputs };
}
