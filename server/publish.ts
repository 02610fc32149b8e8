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

/**
 * Signs one manifest per task spec and gathers the blobs they name.
 * @param onSigned called after each task is signed, with how many are and of how many (the CLI's progress)
 */
export async function buildBatch(spec: BatchSpec, key: SigningKey, now = Date.now(), onSigned?: (signed: number, total: number) => void): Promise<PublishRequest> {
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
    onSigned?.(tasks.length, spec.tasks.length);
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

/** Chunks of a body posted with progress: small enough for a smooth count, large enough to cost nothing. */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

/**
 * POSTs JSON; a PublishError with the server's message, or status 0 when the server cannot be reached.
 * @param onSent when given, the body is streamed and this is told the bytes handed to the connection so far, and the total
 */
export async function postJson(url: string, body: unknown, onSent?: (sent: number, total: number) => void): Promise<unknown> {
  let response: Response;
  try {
    const text = JSON.stringify(body);
    const init: RequestInit & { duplex?: 'half' } = { method: 'POST', headers: { 'content-type': 'application/json' }, body: text };
    if (onSent) {
      const bytes = Buffer.from(text);
      let sent = 0;
      // Pulled as the connection takes it (no queue ahead: highWaterMark 0), so `sent` follows the upload.
      init.body = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            if (sent >= bytes.length) return controller.close();
            const chunk = bytes.subarray(sent, sent + UPLOAD_CHUNK_BYTES);
            sent += chunk.length;
            onSent(sent, bytes.length);
            controller.enqueue(chunk);
          },
        },
        { highWaterMark: 0 },
      );
      init.headers = { 'content-type': 'application/json', 'content-length': String(bytes.length) };
      init.duplex = 'half'; // a streamed request body (Node's fetch requires saying so)
    }
    response = await fetch(url, init);
  } catch (error) {
    throw new PublishError(`cannot reach ${url}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`, 0);
  }
  const json = (await response.json().catch(() => null)) as { message?: string } | null;
  if (!response.ok) throw new PublishError(`${response.status} ${json?.message ?? response.statusText}`, response.status);
  return json;
}

/** How publishing goes, for the CLI's progress: the blobs to send, the upload, the server's checks. */
export interface PublishProgress {
  /** The server lacks `sending` of the batch's `blobs` blobs: those go with the tasks. */
  blobs(sending: number, blobs: number, sendingBytes: number): void;
  uploading(sent: number, total: number): void;
  /** Everything is sent; the server verifies and stores the batch. */
  uploaded(total: number): void;
}

/** Sends only the blobs the server lacks, then the batch (the blobs travel in its body). */
export async function publishBatch(serverUrl: string, request: PublishRequest, progress?: PublishProgress): Promise<BatchStatus> {
  const base = serverUrl.replace(/\/$/, '');
  const { missing } = (await postJson(base + API.missingBlobs, { hashes: Object.keys(request.blobs) })) as { missing: string[] };
  const wanted = new Set(missing);
  const blobs = Object.fromEntries(Object.entries(request.blobs).filter(([hash]) => wanted.has(hash)));
  progress?.blobs(Object.keys(blobs).length, Object.keys(request.blobs).length, Object.values(blobs).reduce((sum, b64) => sum + Buffer.byteLength(b64, 'base64'), 0));
  const onSent = progress
    ? (sent: number, total: number) => {
        progress.uploading(sent, total);
        if (sent === total) progress.uploaded(total);
      }
    : undefined;
  return (await postJson(base + API.batches, { ...request, blobs }, onSent)) as BatchStatus;
}
