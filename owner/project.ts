/**
 * The project owner's client library: publish batches from code, follow them as their results are
 * agreed, read their status, cancel them. `dewgrid` (the CLI) is a thin layer over it. See
 * docs/client.md.
 *
 *   const project = await Project.open('.dewgrid');           // keys from a data folder
 *   const batch = await project.publish({ module, tasks: [{ args: ['1'] }, { args: ['2'] }] });
 *   for await (const result of batch.results()) console.log(result.taskId, result.stdoutText);
 */
import * as v from 'valibot';
import {
  API,
  BatchResultsSchema,
  BatchStatusListSchema,
  BatchStatusSchema,
  BatchEndEventSchema,
  CancelResultSchema,
  ENGINES,
  fromBase64,
  KeysetRefusalListSchema,
  keyIdOf,
  MAX_OUTPUT_BYTES,
  parse,
  PublishRequest,
  signOwnerToken,
  succeeded,
  TaskEventSchema,
  utf8,
  ed,
  type BatchStatus,
  type CancelResult,
  type Engine,
  type JsonBytes,
  type OwnerScope,
  type QuorumView,
  type ServerInfo,
  type TaskResultView,
  type TaskState,
} from '../src/protocol/index.ts';
import { currentSigningKey, readKey } from '../server/keys.ts';
import { buildBatch, randomId, taskSpec, type Data, type TaskInput } from './build.ts';
import { DewgridError, ServerRefusedError, ServerUnreachableError } from './errors.ts';
import { OwnerHttp, parseAnswer, type OwnerKey } from './http.ts';
import { readEventStream } from './sse.ts';

export const DEFAULT_SERVER = 'http://localhost:8787';
export const DEFAULT_DATA_DIR = '.dewgrid';

/** A batch to publish: one module, and its tasks as data. */
export interface PublishSpec {
  /** The WebAssembly module's bytes. */
  module: Uint8Array;
  /** The tasks, each with its own args, env, stdin, files and folders (build.ts, TaskInput). */
  tasks: readonly TaskInput[];
  /** A name people read (the status page, `dewgrid status`); default `argv0`. */
  name?: string;
  /** argv[0] of every task; default `name`, or `program`. */
  argv0?: string;
  /** The batch id (1-50 of A-Z a-z 0-9 _ -); default a new random one. */
  batchId?: string;
  /** How many distinct devices must agree on each task's result; default 1. */
  redundancy?: number;
  /** Adaptive replication: trusted devices may finish tasks alone, spot-checked. Default off. */
  adaptive?: boolean;
  /** Virtual clocks and seeded randomness; default when redundancy > 1. */
  deterministic?: boolean;
  /** Default `wasi-preview1`. */
  engine?: Engine;
  limits?: {
    /** Wall time of one run, ms; default 300 000. */
    wallTimeMs?: number;
    /** Linear memory, bytes; default 256 MiB. */
    memoryBytes?: number;
    /** Each of stdout, stderr and the output files together, bytes; default and at most 16 MiB. */
    outputBytes?: number;
  };
  /** How long the tasks stay valid, ms; default 7 days. */
  expiresInMs?: number;
}

/** How publishing goes, for a progress display. */
export type PublishProgress =
  | { step: 'signing'; signed: number; total: number }
  | { step: 'blobs'; sending: number; blobs: number; bytes: number }
  | { step: 'uploading'; sent: number; total: number }
  /** Everything is sent (`total` bytes); the server verifies and stores the batch. */
  | { step: 'verifying'; total: number };

export interface PublishOptions {
  onProgress?: (progress: PublishProgress) => void;
  signal?: AbortSignal;
}

export const DEFAULT_LIMITS = { wallTimeMs: 300_000, memoryBytes: 256 * 2 ** 20, outputBytes: MAX_OUTPUT_BYTES } as const;
export const DEFAULT_EXPIRY_MS = 7 * 24 * 3600_000;

/** Bytes as the server's JSON carries them. */
function bytesOf(data: JsonBytes): Uint8Array {
  return typeof data === 'string' ? utf8(data) : fromBase64(data.base64);
}

const lossy = new TextDecoder();

/** A task of a batch as the server holds it: its state and, once agreed, its canonical result. */
export class TaskResult {
  readonly taskId: string;
  /** The task's position in its batch (its id ends in `-<index>`). */
  readonly index: number;
  readonly state: TaskState;
  /** It succeeded: a quorum agreed on its result, and the program exited 0. */
  readonly ok: boolean;
  /** The program's exit code, or null without an agreed result. */
  readonly exitCode: number | null;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  /** Files the program wrote, by guest path. */
  readonly files: readonly { path: string; data: Uint8Array }[];
  /** Which outputs were cut at the task's output cap; null without an agreed result. */
  readonly truncated: { stdout: boolean; stderr: boolean; files: boolean } | null;
  /** Why it has no result, for a task whose runs failed (trap, timeout, ...). */
  readonly error: { code: string; message: string } | null;
  readonly args: readonly string[];
  readonly quorum: QuorumView;
  readonly refusals: TaskResultView['refusals'];
  /** The view as the server sent it. */
  readonly view: TaskResultView;

  constructor(view: TaskResultView) {
    this.view = view;
    this.taskId = view.taskId;
    this.index = Number(/-(\d+)$/.exec(view.taskId)?.[1] ?? NaN);
    this.state = view.state;
    this.ok = succeeded(view.state);
    this.exitCode = view.exitCode;
    this.stdout = view.stdout === null ? new Uint8Array(0) : bytesOf(view.stdout);
    this.stderr = view.stderr === null ? new Uint8Array(0) : bytesOf(view.stderr);
    this.files = view.files.map((f) => ({ path: f.path, data: bytesOf(f.data) }));
    this.truncated = view.truncated;
    this.error = view.error;
    this.args = view.args;
    this.quorum = view.quorum;
    this.refusals = view.refusals;
  }

  /** Whether the task has a result: a quorum agreed on one (whatever its exit code). */
  get agreed(): boolean {
    return this.state === 'done' || this.state === 'exit-nonzero';
  }

  /** stdout as text (UTF-8; bytes that are not become U+FFFD). */
  get stdoutText(): string {
    return lossy.decode(this.stdout);
  }

  get stderrText(): string {
    return lossy.decode(this.stderr);
  }
}

/** One event of a batch (GET /api/batches/:id/events), with its id: pass it as `after` to resume. */
export type BatchEvent = { id: number; type: 'task'; taskId: string; state: TaskState; result: TaskResult | null } | { id: number; type: 'end'; counts: Record<TaskState, number> };

export interface EventOptions {
  /** Resume after this event id (0: from the batch's first event). */
  after?: number;
  signal?: AbortSignal;
}

/** A reconnect gives up after this many failures in a row (about five minutes of backing off). */
const MAX_RECONNECTS = 25;
const RECONNECT_CAP_MS = 15_000;

export class Batch {
  constructor(
    private readonly project: Project,
    readonly id: string,
    /** The task ids, in order, when this batch was published here (null when opened by id). */
    readonly taskIds: readonly string[] | null = null,
  ) {}

  status(options: { signal?: AbortSignal } = {}): Promise<BatchStatus> {
    return this.project.http.request('GET', API.batch(encodeURIComponent(this.id)), { schema: BatchStatusSchema, signal: options.signal });
  }

  /**
   * Every task as it stands now, finished or not (the server's `GET .../results`); `tasks` for
   * some only.
   */
  async fetchResults(options: { tasks?: readonly string[]; signal?: AbortSignal; onReceived?: (received: number, total: number | null) => void } = {}): Promise<{ batchId: string; name: string; tasks: TaskResult[] }> {
    const query = options.tasks ? `?tasks=${options.tasks.map(encodeURIComponent).join(',')}` : '';
    const answer = await this.project.http.request('GET', API.batchResults(encodeURIComponent(this.id)) + query, {
      schema: BatchResultsSchema,
      signal: options.signal,
      onReceived: options.onReceived,
    });
    return { batchId: answer.batchId, name: answer.name, tasks: answer.tasks.map((t) => new TaskResult(t)) };
  }

  /**
   * Each task's result as the task ends, in the order they end: an agreed result (`done`, or
   * `exit-nonzero`), or the end that left it without one (`failed`, `expired`, `cancelled`, ...).
   * Tasks that ended before this is called come first. Ends when every task has ended. Follows
   * the server's event stream, reconnecting after a network failure where it left off.
   */
  async *results(options: { signal?: AbortSignal } = {}): AsyncGenerator<TaskResult> {
    const seen = new Set<string>();
    for await (const event of this.events({ signal: options.signal })) {
      if (event.type === 'end') return;
      if (event.result && !seen.has(event.taskId)) {
        seen.add(event.taskId);
        yield event.result;
      }
    }
  }

  /**
   * The batch's events (docs/protocol.md, "Following a batch"): each task's state changes, and
   * `end` when every task has ended, after which the iteration ends.
   */
  async *events(options: EventOptions = {}): AsyncGenerator<BatchEvent> {
    let lastId = options.after ?? 0;
    let retryMs = 2000;
    let failures = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      const stop = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
      let response: Response;
      try {
        response = await this.project.http.send(API.batchEvents(encodeURIComponent(this.id)), {
          headers: { accept: 'text/event-stream', ...(lastId > 0 ? { 'last-event-id': String(lastId) } : {}) },
          signal,
        });
      } catch (error) {
        if (!(error instanceof ServerUnreachableError) || ++failures > MAX_RECONNECTS) throw error;
        await sleep(Math.min(RECONNECT_CAP_MS, 500 * 2 ** failures), options.signal);
        continue;
      }
      if (response.status === 204) return; // nothing after lastId, and the batch has ended
      if (!response.ok || !response.body) {
        const body = (await response.json().catch(() => null)) as { error?: string; message?: string } | null;
        if (response.status < 500 || ++failures > MAX_RECONNECTS) {
          throw new ServerRefusedError(response.status, body?.error ?? 'error', `${response.status} ${body?.message ?? response.statusText}`);
        }
        await sleep(Math.min(RECONNECT_CAP_MS, 500 * 2 ** failures), options.signal);
        continue;
      }
      try {
        for await (const item of readEventStream(response.body as unknown as AsyncIterable<Uint8Array>)) {
          if ('retry' in item) {
            retryMs = item.retry;
            continue;
          }
          failures = 0;
          const id = Number(item.id ?? lastId);
          if (item.event === 'task') {
            const event = parseAnswer(TaskEventSchema, JSON.parse(item.data), `event ${id}`);
            lastId = id;
            yield { id, type: 'task', taskId: event.taskId, state: event.state, result: event.result ? new TaskResult(event.result) : null };
          } else if (item.event === 'end') {
            const end = parseAnswer(BatchEndEventSchema, JSON.parse(item.data), `event ${id}`);
            yield { id, type: 'end', counts: end.counts };
            return;
          }
        }
      } catch (error) {
        if (options.signal?.aborted || error instanceof DewgridError || error instanceof SyntaxError) throw error;
        // The connection broke mid-stream: reconnect below, where it left off.
        if (++failures > MAX_RECONNECTS) throw new ServerUnreachableError(this.project.server, (error as Error).message);
      } finally {
        stop.abort();
      }
      await sleep(retryMs, options.signal);
    }
  }

  /**
   * Cancels the batch: its queued tasks leave the queue (`cancelled`); devices running one are
   * told when they next renew its lease. Finished tasks keep their results.
   */
  cancel(options: { signal?: AbortSignal } = {}): Promise<CancelResult> {
    return this.project.http.request('POST', API.batchCancel(encodeURIComponent(this.id)), { body: {}, schema: CancelResultSchema, signal: options.signal });
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
}

export interface ConnectOptions {
  /** The task server's URL. */
  server: string;
  /** A task-signing key of the project's keyset: its secret key (32 bytes, or their base64), and optionally its id. */
  key: { secretKey: Uint8Array | string; keyId?: string };
  /** The fetch to use (tests, proxies); default the global one. */
  fetch?: typeof fetch;
}

export class Project {
  /** @internal */
  readonly http: OwnerHttp;

  private constructor(
    readonly server: string,
    private readonly key: OwnerKey,
    fetchImpl: typeof fetch = fetch,
  ) {
    this.http = new OwnerHttp(server, key, fetchImpl);
  }

  /**
   * A project from its data folder, as `dewgrid keygen` (or `npm start`) left it: it signs with
   * the newest valid key the folder holds (or `keyFile`).
   * @param dataDir default $DEWGRID_DATA, or `.dewgrid`
   * @param options.server default $DEWGRID_SERVER, or http://localhost:8787
   */
  static async open(dataDir: string = process.env.DEWGRID_DATA ?? DEFAULT_DATA_DIR, options: { server?: string; keyFile?: string; fetch?: typeof fetch } = {}): Promise<Project> {
    const key = options.keyFile ? await readKey(options.keyFile) : await currentSigningKey(dataDir);
    return new Project(serverUrl(options.server ?? process.env.DEWGRID_SERVER ?? DEFAULT_SERVER), key, options.fetch);
  }

  /** A project from a server URL and a signing key given in code. */
  static async connect(options: ConnectOptions): Promise<Project> {
    const secretKey = typeof options.key.secretKey === 'string' ? fromBase64(options.key.secretKey) : options.key.secretKey;
    if (secretKey.length !== 32) throw new TypeError(`key.secretKey: an ed25519 secret key has 32 bytes, not ${secretKey.length}`);
    const keyId = await keyIdOf(await ed.getPublicKeyAsync(secretKey));
    if (options.key.keyId !== undefined && options.key.keyId !== keyId) throw new TypeError(`key.keyId: the secret key's id is ${keyId}, not ${options.key.keyId}`);
    return new Project(serverUrl(options.server), { keyId, secretKey }, options.fetch);
  }

  /** The id of the key this project signs with. */
  get keyId(): string {
    return this.key.keyId;
  }

  /**
   * What the server is. The first thing publish() asks: a server that is down or is not a Dewgrid
   * task server is found before anything is signed.
   * @throws ServerUnreachableError, NotADewgridServerError
   */
  info(): Promise<ServerInfo> {
    return this.http.info();
  }

  /** Every batch's status, oldest first. */
  batches(options: { signal?: AbortSignal } = {}): Promise<BatchStatus[]> {
    return this.http.request('GET', API.batches, { schema: BatchStatusListSchema, signal: options.signal });
  }

  /** A batch by id (nothing is asked of the server until it is used). */
  batch(batchId: string): Batch {
    return new Batch(this, batchId);
  }

  /** Keysets devices refused (a sign of trouble between the server and them). */
  keysetRefusals(): Promise<v.InferOutput<typeof KeysetRefusalListSchema>> {
    return this.http.request('GET', API.keysetRefusals, { schema: KeysetRefusalListSchema });
  }

  /** An owner token signed by this project's key (`read`: for links and dashboards). */
  token(options: { scope: OwnerScope; lifetimeMs: number }): Promise<string> {
    return signOwnerToken(this.key, options);
  }

  /** A link that opens the server's status page as the owner, for `lifetimeMs` (default 7 days). */
  async statusLink(options: { lifetimeMs?: number } = {}): Promise<string> {
    return `${this.server}/status?token=${await this.token({ scope: 'read', lifetimeMs: options.lifetimeMs ?? 7 * 24 * 3600_000 })}`;
  }

  /**
   * Signs and publishes a batch, all or nothing. Asks the server what it is first, so a server
   * that is down is said before anything is signed; sends only the blobs it lacks.
   * @throws TypeError naming the field of `spec` that is wrong; ServerUnreachableError,
   *   NotADewgridServerError, ServerRefusedError (the server's reason)
   */
  async publish(spec: PublishSpec, options: PublishOptions = {}): Promise<Batch> {
    const { onProgress, signal } = options;
    const module = spec.module;
    if (!(module instanceof Uint8Array)) throw new TypeError('module: must be the module\'s bytes (a Uint8Array)');
    if (!(module[0] === 0 && module[1] === 0x61 && module[2] === 0x73 && module[3] === 0x6d)) throw new TypeError('module: not a WebAssembly module (it does not start with \\0asm)');
    if (!Array.isArray(spec.tasks) || spec.tasks.length === 0) throw new TypeError('tasks: at least one task ({} is a task with no arguments)');
    if (spec.batchId !== undefined && !/^[A-Za-z0-9_-]{1,50}$/.test(spec.batchId)) throw new TypeError(`batchId: 1-50 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(spec.batchId)}`);
    if (spec.engine !== undefined && !(ENGINES as readonly string[]).includes(spec.engine)) throw new TypeError(`engine: one of ${ENGINES.join(', ')}, got ${JSON.stringify(spec.engine)}`);
    const name = spec.name ?? spec.argv0 ?? 'program';
    const argv0 = spec.argv0 ?? spec.name ?? 'program';
    const tasks = spec.tasks.map((t, i) => taskSpec(t, argv0, `tasks.${i}`));

    const info = await this.http.info();
    if (info.keysetVersion === 0) throw new DewgridError(`${this.server} holds no keyset yet, so it can check no task: send it one with \`dewgrid keys push\``, 0);

    const request = await buildBatch(
      {
        batchId: spec.batchId ?? randomId(),
        name,
        module,
        tasks,
        limits: { ...DEFAULT_LIMITS, ...spec.limits },
        redundancy: spec.redundancy ?? 1,
        deterministic: spec.deterministic,
        engine: spec.engine,
        expiresInMs: spec.expiresInMs ?? DEFAULT_EXPIRY_MS,
      },
      this.key,
      Date.now(),
      onProgress ? (signed, total) => onProgress({ step: 'signing', signed, total }) : undefined,
    );
    if (spec.adaptive) request.batch.adaptive = true;
    // The server checks all of this too; checking here names the field before anything is sent.
    const checked = parse(PublishRequest, request);
    if (!checked.ok) throw new TypeError(`the batch would be refused: ${checked.message}`);

    const { missing } = await this.http.request('POST', API.missingBlobs, { body: { hashes: Object.keys(request.blobs) }, schema: v.object({ missing: v.array(v.string()) }), signal });
    const wanted = new Set(missing);
    const blobs = Object.fromEntries(Object.entries(request.blobs).filter(([hash]) => wanted.has(hash)));
    onProgress?.({ step: 'blobs', sending: Object.keys(blobs).length, blobs: Object.keys(request.blobs).length, bytes: Object.values(blobs).reduce((sum, b64) => sum + base64Length(b64), 0) });
    const status = await this.http.request('POST', API.batches, {
      body: { ...request, blobs },
      schema: BatchStatusSchema,
      signal,
      onSent: onProgress
        ? (sent, total) => {
            onProgress({ step: 'uploading', sent, total });
            if (sent === total) onProgress({ step: 'verifying', total });
          }
        : undefined,
    });
    return new Batch(this, status.batchId, request.tasks.map((t) => t.manifest.taskId));
  }
}

/** How many bytes a base64 text holds. */
function base64Length(b64: string): number {
  return (b64.length * 3) / 4 - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
}

/** A server URL without its trailing slash. @throws TypeError for anything but http(s)://host... */
function serverUrl(url: string): string {
  if (typeof url !== 'string' || !/^https?:\/\/[^/]+/.test(url)) throw new TypeError(`server: an http(s) URL, got ${JSON.stringify(url)}`);
  return url.replace(/\/+$/, '');
}

export type { Data, TaskInput };
