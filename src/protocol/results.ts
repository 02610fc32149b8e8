/**
 * Signed results and what the server compares: a device signs each result with its own ed25519
 * key (its id is derived from that key, so nobody can claim another's), over the hashes of the
 * outputs rather than the outputs themselves; the server checks the signature against the hashes
 * of what it received, and groups results by their output digest to find a quorum.
 */
import { CHECKPOINT_DIR } from './api.ts';
import { sha256, sha256Hex, toHex, utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import type { ResultSubmission } from './schema.ts';

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

export async function outputDigests(outputs: { stdout: Uint8Array; stderr: Uint8Array; files: { path: string; data: Uint8Array }[] }): Promise<OutputDigests> {
  return {
    stdout: await sha256Hex(outputs.stdout),
    stderr: await sha256Hex(outputs.stderr),
    files: await Promise.all(outputs.files.map(async (f) => ({ path: f.path, sha256: await sha256Hex(f.data) }))),
  };
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
