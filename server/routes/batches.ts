/**
 * What project owners call: publish a batch (all or nothing), read the batch list, a batch's
 * status and results, and cancel it. Every route needs the owner's credential, checked before
 * the body is read (route-policy.ts); publishing and cancelling need a token of scope `all`.
 * A published task has passed the same envelope checks a client makes, so the server never
 * stores a task its own clients would refuse.
 */
import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import {
  API,
  canonicalJson,
  decodeUtf8OrNull,
  PublishRequest,
  verifyEnvelope,
  type BatchResults,
  type BatchStatus,
  type CancelResult,
  type JsonBytes,
  type TaskResultView,
} from '../../src/protocol/index.ts';
import { bodyOf, HttpError } from '../errors.ts';
import type { Keysets } from '../keyset.ts';
import type { Store, TaskRow } from '../store/index.ts';

export interface BatchRouteOptions {
  now: () => number;
  /** Body limit for publishing (modules travel in it), bytes. */
  publishBodyLimit: number;
}

/** At most this many task ids in `GET .../results?tasks=`. */
const MAX_TASKS_ASKED = 1000;

/** A task as `GET .../results` shows it. */
export function taskResultView(t: TaskRow): TaskResultView {
  return {
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
    quorum: t.quorum,
  };
}

/** Bytes as JSON: UTF-8 text where they are valid UTF-8, else `{ base64 }`. */
export function jsonBytes(bytes: Uint8Array): JsonBytes {
  return decodeUtf8OrNull(bytes) ?? { base64: Buffer.from(bytes).toString('base64') };
}

export function batchRoutes(app: FastifyInstance, store: Store, keysets: Keysets, options: BatchRouteOptions): void {
  const { now } = options;

  app.post(API.batches, { bodyLimit: options.publishBodyLimit }, async (request, reply): Promise<BatchStatus> => {
    const publish = bodyOf(PublishRequest, request.body);
    const { batchId, name } = publish.batch;
    // The same checks a client makes, against the keyset clients get: unknown, retired and revoked keys are refused here.
    const keys = await keysets.taskKeys();
    if (keys.size === 0) throw new HttpError(400, 'this server holds no keyset, so no task can be checked: push one with `dewgrid keys push`');
    const taskIds = new Set<string>();
    const needed = new Map<string, number>(); // sha256 -> size, as the manifests name them
    for (const [index, task] of publish.tasks.entries()) {
      const verdict = await verifyEnvelope(task, keys, now());
      if (!verdict.ok) throw new HttpError(400, `tasks.${index}: refused (${verdict.reason}): ${verdict.detail}`);
      const m = task.manifest;
      if (m.batchId !== batchId) throw new HttpError(400, `tasks.${index}: batchId ${m.batchId} is not the batch's ${batchId}`);
      if (taskIds.has(m.taskId)) throw new HttpError(400, `tasks.${index}: task id ${m.taskId} appears twice`);
      taskIds.add(m.taskId);
      for (const [where, ref] of [['module', m.module], ['stdin', m.stdin], ...m.files.map((f, i) => [`files.${i}`, f.blob] as const)] as const) {
        if (!ref) continue;
        const size = needed.get(ref.sha256);
        if (size !== undefined && size !== ref.size) {
          throw new HttpError(400, `tasks.${index}.manifest.${where}: blob ${ref.sha256} is named with sizes ${size} and ${ref.size}`);
        }
        needed.set(ref.sha256, ref.size);
      }
    }
    const incoming = new Map<string, Buffer>();
    for (const [sha256, base64] of Object.entries(publish.blobs)) {
      const bytes = Buffer.from(base64, 'base64');
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== sha256) throw new HttpError(400, `blobs.${sha256}: the bytes hash to ${actual}`);
      const size = needed.get(sha256);
      if (size === undefined) throw new HttpError(400, `blobs.${sha256}: no task names this blob`);
      if (size !== bytes.length) throw new HttpError(400, `blobs.${sha256}: ${bytes.length} bytes, but the tasks say ${size}`);
      incoming.set(sha256, bytes);
    }
    const unsent = [...needed.keys()].filter((sha256) => !incoming.has(sha256));
    const [missing] = await store.missingBlobs(unsent);
    if (missing) throw new HttpError(400, `blob ${missing} is named by a task but was neither sent nor stored`);
    const digest = createHash('sha256').update(canonicalJson(publish.tasks)).digest('hex');
    // Blobs first: an orphan blob is harmless, a task without its blob is not. (Blobs are never deleted.)
    await store.writeBlobs(incoming);
    const outcome = await store.publishBatch({ batchId, name, digest, adaptive: publish.batch.adaptive === true, tasks: publish.tasks });
    return reply.code(outcome === 'created' ? 201 : 200).send(await store.batchStatus(batchId));
  });

  app.get(API.batches, async (): Promise<BatchStatus[]> => store.batchStatuses());

  app.get<{ Params: { batchId: string } }>(API.batch(':batchId'), async (request): Promise<BatchStatus> => {
    const status = await store.batchStatus(request.params.batchId);
    if (!status) throw new HttpError(404, `no batch ${request.params.batchId}`);
    return status;
  });

  app.get<{ Params: { batchId: string }; Querystring: { tasks?: string } }>(
    API.batchResults(':batchId'),
    async (request): Promise<BatchResults> => {
      const status = await store.batchStatus(request.params.batchId);
      if (!status) throw new HttpError(404, `no batch ${request.params.batchId}`);
      const asked = request.query.tasks;
      const taskIds = typeof asked === 'string' ? asked.split(',').filter(Boolean) : undefined;
      if (taskIds && taskIds.length > MAX_TASKS_ASKED) throw new HttpError(400, `tasks: at most ${MAX_TASKS_ASKED} task ids at once, got ${taskIds.length}`);
      const tasks = (await store.tasks(status.batchId, taskIds)).map(taskResultView);
      return { batchId: status.batchId, name: status.name, tasks };
    },
  );

  app.post<{ Params: { batchId: string } }>(API.batchCancel(':batchId'), async (request): Promise<CancelResult> => {
    const { batchId } = request.params;
    const cancelled = await store.cancelBatch(batchId);
    if (cancelled === null) throw new HttpError(404, `no batch ${batchId}`);
    return { batchId, cancelled, status: (await store.batchStatus(batchId))! };
  });
}
