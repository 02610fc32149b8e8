/**
 * The task server: the API of docs/protocol.md, blobs by hash, the trust file, and the built PWA.
 * Every body is validated with the shared protocol schemas; every error is `{ error, message }`.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as v from 'valibot';
import {
  API,
  canonicalJson,
  decodeUtf8OrNull,
  MissingBlobsRequest,
  parse,
  PublishRequest,
  RefusalReport,
  ResultSubmission,
  verifyEnvelope,
  WorkRequest,
  type BatchResults,
  type JsonBytes,
  type SignedTask,
} from '../src/protocol/index.ts';
import { BlobStore } from './blobs.ts';
import { trustedKeys, trustPath } from './keys.ts';
import { Store, StoreError } from './store.ts';

export interface ServerOptions {
  dataDir: string;
  /** The built PWA; served at / when the folder exists. */
  staticDir?: string;
  now?: () => number;
  logger?: boolean;
  /** Body limit for publishing (modules travel in it), bytes. */
  publishBodyLimit?: number;
  /** Body limit everywhere else, bytes. */
  bodyLimit?: number;
}

export interface DewgridServer {
  app: FastifyInstance;
  store: Store;
  blobs: BlobStore;
  close(): Promise<void>;
}

const ERROR_CODES: Record<number, string> = {
  400: 'bad-request',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  409: 'conflict',
  410: 'gone',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  500: 'internal',
};

function fail(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send({ error: ERROR_CODES[status] ?? 'error', message });
}

const SHA256 = /^[0-9a-f]{64}$/;

export function jsonBytes(bytes: Uint8Array): JsonBytes {
  const text = decodeUtf8OrNull(bytes);
  return text ?? { base64: Buffer.from(bytes).toString('base64') };
}

function isWasm(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

export async function createServer(options: ServerOptions): Promise<DewgridServer> {
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true });
  const store = new Store(join(options.dataDir, 'dewgrid.sqlite'));
  const blobs = new BlobStore(join(options.dataDir, 'blobs'));
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 8 * 2 ** 20 });

  // Cross-origin isolation for the page (SharedArrayBuffer, the WASIX engine); CORP so the
  // page's own resources load under COEP.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-embedder-policy', 'require-corp');
    reply.header('cross-origin-resource-policy', 'same-origin');
    reply.header('x-content-type-options', 'nosniff');
  });

  app.setErrorHandler((error: { statusCode?: number; message: string; code?: string }, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) app.log.error(error);
    let message = error.message;
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = 'the body must be application/json';
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'the body is larger than this endpoint accepts';
    else if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') message = 'the body is empty; JSON was expected';
    else if (status === 400 && error.code === undefined && /JSON/.test(message)) message = `malformed JSON: ${message}`;
    else if (status >= 500) message = 'internal error';
    return fail(reply, status, message);
  });
  // Every API body is JSON; Fastify would otherwise parse text/plain into a string.
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return;
    const type = request.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) return fail(reply, 415, `the body must be application/json, not ${type || 'untyped'}`);
  });
  app.setNotFoundHandler((request, reply) => fail(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`));

  /** Validates a body against a protocol schema, or answers 400 naming the field. */
  function body<S extends v.GenericSchema>(schema: S, input: unknown, reply: FastifyReply): v.InferOutput<S> | null {
    const parsed = parse(schema, input);
    if (parsed.ok) return parsed.value;
    fail(reply, 400, `body.${parsed.message}`);
    return null;
  }

  function storeCall<T>(reply: FastifyReply, call: () => T): T | FastifyReply {
    try {
      return call();
    } catch (error) {
      if (error instanceof StoreError) return fail(reply, error.status, error.message);
      throw error;
    }
  }

  app.post(API.work, async (request, reply) => {
    const work = body(WorkRequest, request.body, reply);
    if (!work) return reply;
    const leases = store.lease(work.deviceId, work.engines, work.max, now());
    return { leases: leases.map((l) => ({ leaseId: l.leaseId, expiresAt: l.expiresAt, task: JSON.parse(l.envelope) as SignedTask })) };
  });

  app.post(API.results, async (request, reply) => {
    const result = body(ResultSubmission, request.body, reply);
    if (!result) return reply;
    const bodyHash = createHash('sha256').update(canonicalJson(result)).digest('hex');
    return storeCall(reply, () => ({ status: store.submitResult(result, bodyHash, now()) }));
  });

  app.post(API.refusals, async (request, reply) => {
    const report = body(RefusalReport, request.body, reply);
    if (!report) return reply;
    return storeCall(reply, () => {
      store.recordRefusal(report, now());
      return { status: 'recorded' };
    });
  });

  app.get<{ Params: { sha256: string } }>('/api/blobs/:sha256', async (request, reply) => {
    const { sha256 } = request.params;
    if (!SHA256.test(sha256)) return fail(reply, 400, `not a SHA-256 hex digest: ${sha256.slice(0, 80)}`);
    const bytes = blobs.read(sha256);
    if (!bytes) return fail(reply, 404, `no blob ${sha256}`);
    return reply
      .header('content-type', isWasm(bytes) ? 'application/wasm' : 'application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('etag', `"${sha256}"`)
      .send(bytes);
  });

  app.post(API.missingBlobs, async (request, reply) => {
    const query = body(MissingBlobsRequest, request.body, reply);
    if (!query) return reply;
    return { missing: query.hashes.filter((h) => !blobs.has(h)) };
  });

  app.post(API.batches, { bodyLimit: options.publishBodyLimit ?? 256 * 2 ** 20 }, async (request, reply) => {
    const publish = body(PublishRequest, request.body, reply);
    if (!publish) return reply;
    const { batchId, name } = publish.batch;
    const keys = await trustedKeys(options.dataDir);
    const seen = new Set<string>();
    const needed = new Map<string, number>(); // sha256 -> size
    for (const [index, task] of publish.tasks.entries()) {
      const verdict = await verifyEnvelope(task, keys, now());
      if (!verdict.ok) return fail(reply, 400, `tasks.${index}: refused (${verdict.reason}): ${verdict.detail}`);
      const m = task.manifest;
      if (m.batchId !== batchId) return fail(reply, 400, `tasks.${index}: batchId ${m.batchId} is not the batch's ${batchId}`);
      if (seen.has(m.taskId)) return fail(reply, 400, `tasks.${index}: task id ${m.taskId} appears twice`);
      seen.add(m.taskId);
      for (const ref of [m.module, m.stdin, ...m.files.map((f) => f.blob)]) {
        if (!ref) continue;
        const size = needed.get(ref.sha256);
        if (size !== undefined && size !== ref.size) return fail(reply, 400, `tasks.${index}: blob ${ref.sha256} is named with two sizes`);
        needed.set(ref.sha256, ref.size);
      }
    }
    const incoming = new Map<string, Buffer>();
    for (const [sha256, base64] of Object.entries(publish.blobs)) {
      const bytes = Buffer.from(base64, 'base64');
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== sha256) return fail(reply, 400, `blobs.${sha256}: the bytes hash to ${actual}`);
      const size = needed.get(sha256);
      if (size === undefined) return fail(reply, 400, `blobs.${sha256}: no task names this blob`);
      if (size !== bytes.length) return fail(reply, 400, `blobs.${sha256}: ${bytes.length} bytes, but the tasks say ${size}`);
      incoming.set(sha256, bytes);
    }
    for (const sha256 of needed.keys()) {
      if (!incoming.has(sha256) && !blobs.has(sha256)) return fail(reply, 400, `blob ${sha256} is named by a task but was neither sent nor stored`);
    }
    const digest = createHash('sha256').update(canonicalJson(publish.tasks)).digest('hex');
    const existing = store.batchDigest(batchId);
    if (existing !== null) {
      if (existing !== digest) return fail(reply, 409, `batch ${batchId} already exists with other tasks`);
      return reply.code(200).send(store.batchStatus(batchId, now()));
    }
    const taken = store.existingTaskIds([...seen]);
    if (taken.length > 0) return fail(reply, 409, `task id ${taken[0]} already belongs to another batch`);
    // Blobs first: an orphan blob is harmless, a task without its blob is not.
    for (const [sha256, bytes] of incoming) blobs.write(sha256, bytes);
    store.addBatch(batchId, name, digest, publish.tasks, now());
    return reply.code(201).send(store.batchStatus(batchId, now()));
  });

  app.get(API.batches, async () => store.batchIds().map((id) => store.batchStatus(id, now())));

  app.get<{ Params: { batchId: string } }>('/api/batches/:batchId', async (request, reply) => {
    const status = store.batchStatus(request.params.batchId, now());
    return status ?? fail(reply, 404, `no batch ${request.params.batchId}`);
  });

  app.get<{ Params: { batchId: string } }>('/api/batches/:batchId/results', async (request, reply) => {
    const status = store.batchStatus(request.params.batchId, now());
    if (!status) return fail(reply, 404, `no batch ${request.params.batchId}`);
    const results: BatchResults = {
      batchId: status.batchId,
      name: status.name,
      tasks: store.tasks(status.batchId, now()).map((t) => ({
        taskId: t.taskId,
        name: t.envelope.manifest.name,
        state: t.state,
        args: t.envelope.manifest.args,
        exitCode: t.canonical?.exitCode ?? null,
        stdout: t.canonical ? jsonBytes(t.canonical.stdout) : null,
        stderr: t.canonical ? jsonBytes(t.canonical.stderr) : null,
        files: (t.canonical?.files ?? []).map((f) => ({ path: f.path, data: jsonBytes(Buffer.from(f.data, 'base64')) })),
        truncated: t.canonical?.truncated ?? null,
        error: t.canonical ? null : t.lastError,
        refusals: t.refusals,
        results: t.results,
        redundancy: t.redundancy,
      })),
    };
    return results;
  });

  app.get(API.trust, async (_request, reply) => {
    const file = trustPath(options.dataDir);
    if (!existsSync(file)) return fail(reply, 404, 'no trust.json in the data folder: run `dewgrid keygen`');
    return reply.header('content-type', 'application/json').header('cache-control', 'no-cache').send(readFileSync(file));
  });

  if (options.staticDir && existsSync(options.staticDir)) {
    await app.register(fastifyStatic, {
      root: resolve(options.staticDir),
      cacheControl: false,
      setHeaders(reply, path) {
        // Hashed asset names change with their content; index.html and the service worker must not be cached stale.
        reply.header('cache-control', /[/\\]assets[/\\]/.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }

  await app.ready();
  return {
    app,
    store,
    blobs,
    async close() {
      await app.close();
      store.close();
    },
  };
}
