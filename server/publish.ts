/**
 * Building and publishing a batch: the CLI and the demo start script both come through here.
 * The publisher signs; the server stores and serves what was signed.
 */
import { randomBytes } from 'node:crypto';
import {
  API,
  sha256Hex,
  signTask,
  toBase64,
  type BatchStatus,
  type BlobRef,
  type Engine,
  type PublishRequest,
  type SignedTask,
  type TaskManifest,
} from '../src/protocol/index.ts';
import type { SigningKey } from './keys.ts';

/** One task before signing: what it runs with. */
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

export function randomId(): string {
  return randomBytes(9).toString('base64url');
}

/** Signs one manifest per task spec and gathers the blobs they name. */
export async function buildBatch(spec: BatchSpec, key: SigningKey, now = Date.now()): Promise<PublishRequest> {
  const batchId = spec.batchId ?? randomId();
  const blobs: Record<string, string> = {};
  const ref = async (bytes: Uint8Array): Promise<BlobRef> => {
    const sha256 = await sha256Hex(bytes);
    blobs[sha256] ??= toBase64(bytes);
    return { sha256, size: bytes.length };
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
  }
  return { batch: { batchId, name: spec.name }, tasks, blobs };
}

export class PublishError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** POSTs JSON; a PublishError with the server's message, or status 0 when the server cannot be reached. */
export async function postJson(url: string, body: unknown): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (error) {
    throw new PublishError(`cannot reach ${url}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`, 0);
  }
  const json = (await response.json().catch(() => null)) as { message?: string } | null;
  if (!response.ok) throw new PublishError(`${response.status} ${json?.message ?? response.statusText}`, response.status);
  return json;
}

/** Sends only the blobs the server lacks, then the batch. */
export async function publishBatch(serverUrl: string, request: PublishRequest): Promise<BatchStatus> {
  const base = serverUrl.replace(/\/$/, '');
  const { missing } = (await postJson(base + API.missingBlobs, { hashes: Object.keys(request.blobs) })) as { missing: string[] };
  const wanted = new Set(missing);
  const blobs = Object.fromEntries(Object.entries(request.blobs).filter(([hash]) => wanted.has(hash)));
  return (await postJson(base + API.batches, { ...request, blobs })) as BatchStatus;
}
