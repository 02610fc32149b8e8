/**
 * Building a batch: tasks as data (args, env, stdin, files, folders) become signed manifests and
 * the blobs they name. The publisher signs; the server stores and serves what was signed. The
 * client library (project.ts), the CLI and the demo all come through here.
 */
import {
  sha256Hex,
  signTask,
  toBase64,
  utf8,
  type BlobRef,
  type Engine,
  type PublishRequest,
  type SignedTask,
  type TaskManifest,
} from '../src/protocol/index.ts';

/** One task before signing: what it runs with, as the manifest holds it. */
export interface TaskSpec {
  args: string[];
  env: [string, string][];
  stdin: Uint8Array | null;
  files: { path: string; data: Uint8Array }[];
  preopens: string[];
}

export interface BatchSpec {
  batchId?: string;
  name: string;
  module: Uint8Array;
  tasks: TaskSpec[];
  limits: TaskManifest['limits'];
  redundancy: number;
  /** Virtual clocks and seeded randomness; absent means "when redundancy > 1". */
  deterministic?: boolean;
  /** Default `wasi-preview1`. */
  engine?: Engine;
  /** How long the tasks stay valid, ms. */
  expiresInMs: number;
}

const ID_FIRST = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A new batch id: 12 characters of base64url, never starting with `-` or `_` (an id that starts
 * with `-` reads as a flag to every command line).
 */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  const text = toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_');
  return ID_FIRST[bytes[0]! % ID_FIRST.length]! + text.slice(1);
}

/**
 * Signs one manifest per task spec and gathers the blobs they name.
 * @param onSigned called after each task is signed, with how many are and of how many
 */
export async function buildBatch(
  spec: BatchSpec,
  key: { keyId: string; secretKey: Uint8Array },
  now = Date.now(),
  onSigned?: (signed: number, total: number) => void,
): Promise<PublishRequest> {
  const batchId = spec.batchId ?? randomId();
  const blobs: Record<string, string> = {};
  const refs = new Map<Uint8Array, BlobRef>();
  const ref = async (bytes: Uint8Array): Promise<BlobRef> => {
    let known = refs.get(bytes); // the same bytes given to every task are hashed once
    if (!known) {
      known = { sha256: await sha256Hex(bytes), size: bytes.length };
      refs.set(bytes, known);
      blobs[known.sha256] ??= toBase64(bytes);
    }
    return known;
  };
  const module = await ref(spec.module);
  const tasks: SignedTask[] = [];
  for (const [index, task] of spec.tasks.entries()) {
    const manifest: TaskManifest = {
      v: 1,
      keyId: key.keyId,
      taskId: `${batchId}-${index}`,
      batchId,
      name: spec.name,
      issuedAt: now,
      expiresAt: now + spec.expiresInMs,
      engine: spec.engine ?? 'wasi-preview1',
      module,
      args: task.args,
      env: task.env,
      stdin: task.stdin ? await ref(task.stdin) : null,
      files: await Promise.all(task.files.map(async (f) => ({ path: f.path, blob: await ref(f.data) }))),
      preopens: task.preopens,
      limits: spec.limits,
      redundancy: spec.redundancy,
      ...(spec.deterministic === undefined ? {} : { deterministic: spec.deterministic }),
    };
    tasks.push(await signTask(manifest, key.secretKey));
    onSigned?.(tasks.length, spec.tasks.length);
  }
  return { batch: { batchId, name: spec.name }, tasks, blobs };
}

// ---- Tasks as data -------------------------------------------------------------------------

/** Bytes, or text (its UTF-8 bytes). */
export type Data = Uint8Array | string;

/**
 * One task of a batch, as data: what the program gets besides the module. Everything is
 * optional; `{}` is a task with no arguments.
 */
export interface TaskInput {
  /** The program's arguments after argv[0] (which is the batch's `argv0`). */
  args?: readonly string[];
  /** Its environment, in order. */
  env?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  /** Its standard input. */
  stdin?: Data | null;
  /** Input files at absolute guest paths. Their folders are preopened for the program. */
  files?: Readonly<Record<string, Data>> | readonly { path: string; data: Data }[];
  /**
   * Guest folders to preopen even when no input file is in them: where the program writes its
   * output files (`['/out']`). Files it writes anywhere it may are returned as its output files.
   */
  dirs?: readonly string[];
}

const GUEST_PATH = /^(\/(?!\.\.?(\/|$))[^/\0]+)+$/;

/** An absolute guest path as the manifest wants it; a trailing slash is dropped. @throws TypeError naming the field */
export function guestPath(path: string, field: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError(`${field}: guest path ${JSON.stringify(path)} must be absolute (start with /)`);
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  if (trimmed !== '/' && !GUEST_PATH.test(trimmed)) throw new TypeError(`${field}: guest path ${JSON.stringify(path)} must not hold ., .. or empty segments`);
  if (trimmed.length > 1024) throw new TypeError(`${field}: guest path is ${trimmed.length} characters, at most 1024`);
  return trimmed;
}

function bytesOf(data: Data, field: string): Uint8Array {
  if (typeof data === 'string') return utf8(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError(`${field}: must be a Uint8Array or a string`);
}

function underPreopen(path: string, preopens: readonly string[]): boolean {
  return preopens.some((p) => p === '/' || path === p || path.startsWith(`${p}/`));
}

/**
 * A task as data, checked and put as the manifest holds it: argv[0] first, env as pairs, files
 * with their bytes, and the folders to preopen (the `dirs`, then each input file's folder not
 * already under one, in order).
 * @throws TypeError naming the task and field that is wrong
 */
export function taskSpec(input: TaskInput, argv0: string, field: string): TaskSpec {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${field}: a task is an object ({ args, env, stdin, files, dirs })`);
  const args = input.args ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new TypeError(`${field}.args: must be an array of strings`);
  const envPairs = input.env === undefined ? [] : Array.isArray(input.env) ? input.env : Object.entries(input.env);
  const env = envPairs.map(([name, value], i): [string, string] => {
    if (typeof name !== 'string' || !/^[^=\0]+$/.test(name)) throw new TypeError(`${field}.env.${i}: the name ${JSON.stringify(name)} must be non-empty, without = or NUL`);
    if (typeof value !== 'string') throw new TypeError(`${field}.env.${name}: the value must be a string`);
    return [name, value];
  });
  const preopens: string[] = [];
  for (const [i, dir] of (input.dirs ?? []).entries()) {
    const path = guestPath(dir, `${field}.dirs.${i}`);
    if (!preopens.includes(path)) preopens.push(path);
  }
  const fileList = input.files === undefined ? [] : Array.isArray(input.files) ? input.files : Object.entries(input.files).map(([path, data]) => ({ path, data }));
  const files: { path: string; data: Uint8Array }[] = [];
  const seen = new Set<string>();
  for (const [i, file] of fileList.entries()) {
    const path = guestPath(file.path, `${field}.files.${i}`);
    if (path === '/') throw new TypeError(`${field}.files.${i}: / is a folder, not a file path`);
    if (seen.has(path)) throw new TypeError(`${field}.files: ${path} is given twice`);
    seen.add(path);
    files.push({ path, data: bytesOf(file.data, `${field}.files.${path}`) });
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    if (!underPreopen(path, preopens)) preopens.push(parent);
  }
  const stdin = input.stdin === undefined || input.stdin === null ? null : bytesOf(input.stdin, `${field}.stdin`);
  return { args: [argv0, ...args], env, stdin, files, preopens };
}
