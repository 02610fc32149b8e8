/**
 * The byte-heavy half of preparing a task, for a verified manifest: get the module and inputs
 * (cache first, else fetch), check their hashes, put the yield hook in, cap the memory, compile.
 * It runs in a worker of its own (src/scheduler/prepare-worker.ts): a 30 MB module's reads,
 * writes, hashing, rewriting and compiling never hold the page's main thread. The page half
 * (src/scheduler/prepare.ts) checks the envelope first and calls this through `ModuleSource`.
 * Nothing is compiled or cached before it has passed its check.
 */
import * as v from 'valibot';
import { MAX_BLOB_BATCH, MAX_BLOB_BATCH_BYTES, REFUSALS, RUN_ERRORS, type BlobRef, type RefusalReason, type RunErrorCode, type TaskManifest } from '../protocol/schema.ts';
import { verifyBlob } from '../protocol/verify.ts';
import { INITIAL_ALLOWANCE, INSTRUMENTER_VERSION } from '../protocol/throttle.ts';
import { sha256Hex } from '../protocol/bytes.ts';
import type { BlobCache } from '../storage/blob-cache.ts';
import { keepsCompiledCode, moduleCacheKey, type ModuleCache } from '../storage/module-cache.ts';
import { InstrumentError, instrumentInto } from '../../worker/instrument.ts';
import { capMemory } from './memory-cap.ts';

/** What the worker answers; errors are values here, as classes do not survive the worker boundary. */
export type PreparedModule =
  | {
      kind: 'ready';
      module: WebAssembly.Module;
      /** For `wasix` tasks: the memory-capped module bytes, which @wasmer/sdk takes. */
      moduleBytes: Uint8Array | null;
      stdin: Uint8Array;
      files: { path: string; data: Uint8Array }[];
      fetchMs: number;
      compileMs: number;
      /** Where the compiled module came from: 'session' (compiled earlier in this session), 'cache' (kept rewritten bytes), 'fresh'. */
      source: 'session' | 'cache' | 'fresh';
    }
  | { kind: 'refused'; reason: RefusalReason; detail: string }
  | { kind: 'failed'; code: RunErrorCode; message: string; fetchMs: number; compileMs: number }
  /** A blob may not be fetched now (the data saver): the task waits. */
  | { kind: 'deferred'; message: string }
  /** The network or the server failed: the task waits. `status` 0 when the server was not reached. */
  | { kind: 'unreachable'; message: string; status: number };

const Bytes = v.custom<Uint8Array>((x) => x instanceof Uint8Array, 'must be a Uint8Array');
const Millis = v.pipe(v.number(), v.finite(), v.minValue(0));

/** PreparedModule as the page checks it when the prepare worker answers (src/scheduler/prepare-worker-client.ts). */
export const PreparedModuleSchema = v.variant('kind', [
  v.strictObject({
    kind: v.literal('ready'),
    module: v.instance(WebAssembly.Module),
    moduleBytes: v.nullable(Bytes),
    stdin: Bytes,
    files: v.array(v.strictObject({ path: v.string(), data: Bytes })),
    fetchMs: Millis,
    compileMs: Millis,
    source: v.picklist(['session', 'cache', 'fresh']),
  }),
  v.strictObject({ kind: v.literal('refused'), reason: v.picklist(REFUSALS), detail: v.string() }),
  v.strictObject({ kind: v.literal('failed'), code: v.picklist(RUN_ERRORS), message: v.string(), fetchMs: Millis, compileMs: Millis }),
  v.strictObject({ kind: v.literal('deferred'), message: v.string() }),
  v.strictObject({ kind: v.literal('unreachable'), message: v.string(), status: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
]);
// Fails to compile when the schema and the type above part.
const preparedSchemaMatches: [v.InferOutput<typeof PreparedModuleSchema>] extends [PreparedModule] ? ([PreparedModule] extends [v.InferOutput<typeof PreparedModuleSchema>] ? true : false) : false = true;
void preparedSchemaMatches;

/**
 * How far preparing a task has come: bytes of its module and inputs readied, each byte counted once
 * per step it went through (fetched or read from the cache, hashed, rewritten with the yield hook),
 * so at most 3 times their sizes. It only grows; the lease keeper shows it, signed, to renew the
 * task's lease while it prepares (docs/protocol.md, POST /api/leases/renew).
 */
export type PrepareProgress = (readied: number) => void;

/** The calls the page makes (over Comlink, to the prepare worker). */
export interface ModuleSource {
  /**
   * @param fetchLimit the most bytes one blob may have to be fetched now; Infinity for no limit.
   * @param onProgress told as the preparation moves (at most every PROGRESS_EVERY_BYTES or so).
   */
  prepare(manifest: TaskManifest, fetchLimit: number, onProgress?: PrepareProgress): Promise<PreparedModule>;
  /** Loads and verifies a manifest's blobs into the cache ahead of its run; failures wait for prepare(). */
  prefetch(manifest: TaskManifest, fetchLimit: number): Promise<void>;
  /** Activity-log lines the caches produced since the last call (a corrupted entry, a full disk). */
  takeWarnings(): Promise<string[]>;
}

export interface BlobFetcher {
  /** @param onBytes told of each part of the body as it arrives, with its length. */
  fetchBlob(sha256: string, size: number, onBytes?: (length: number) => void): Promise<Uint8Array>;
  /**
   * Many in one request, cut at the sizes asked for (unchecked); null when the server cannot
   * answer this batch (no such route, a blob it lacks, bytes of another length), and each is then
   * fetched alone. @throws as fetchBlob when the server cannot be reached.
   */
  fetchBlobs?(refs: readonly BlobRef[]): Promise<Uint8Array[] | null>;
}

/**
 * One blob's load, told to every preparation that waits on it: one that joins late hears what it
 * missed at once. `arrived` has its bytes as soon as they are read or fetched, before their hash is
 * checked (for work that can start meanwhile and be thrown away if the check fails), and rejects
 * as the load does.
 */
class SharedProgress {
  private readonly watchers = new Set<Readied>();
  private sofar = 0;
  private arrive!: (bytes: Uint8Array) => void;
  private fail!: (error: unknown) => void;
  readonly arrived = new Promise<Uint8Array>((resolve, reject) => {
    this.arrive = resolve;
    this.fail = reject;
  });

  constructor() {
    this.arrived.catch(() => undefined); // the load's own promise reports the failure
  }

  /** The bytes are here (unchecked); a later call, or a failure after it, changes nothing. */
  here(bytes: Uint8Array): void {
    this.arrive(bytes);
  }

  failed(error: unknown): void {
    this.fail(error);
  }

  join(readied: Readied): void {
    this.watchers.add(readied);
    if (this.sofar) readied.add(this.sofar, true);
  }

  add(bytes: number, stepDone = false): void {
    this.sofar += bytes;
    for (const watcher of this.watchers) watcher.add(bytes, stepDone);
  }
}

/** How many readied bytes make a progress report worth sending across the worker boundary. */
export const PROGRESS_EVERY_BYTES = 1 << 20;

/** Counts a preparation's readied bytes, and tells `report` of them now and then, and at each step's end. */
class Readied {
  private count = 0;
  private told = 0;

  constructor(private readonly report: PrepareProgress | undefined) {}

  add(bytes: number, stepDone = false): void {
    this.count += bytes;
    if (this.report && (stepDone || this.count - this.told >= PROGRESS_EVERY_BYTES)) {
      this.told = this.count;
      this.report(this.count);
    }
  }
}

/** Blobs fetched at once: enough to keep a connection pool busy, few enough not to queue hundreds of requests and hashes. */
const FETCH_CONCURRENCY = 8;
/** Batches of blobs fetched at once: each is up to MAX_BLOB_BATCH_BYTES held in memory until checked. */
const BATCH_CONCURRENCY = 2;

/** Runs `work` on every item, at most `limit` at a time; rejects with the first failure. */
async function eachBounded<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

class MemoryLimitError extends Error {
  override name = 'MemoryLimitError';
}

class Stop extends Error {
  constructor(readonly result: Extract<PreparedModule, { kind: 'refused' | 'deferred' }>) {
    super(result.kind);
  }
}

interface Compiled {
  module: WebAssembly.Module;
  bytes: Uint8Array | null;
  source: 'cache' | 'fresh';
}

/** Compiled modules are per (module, memory cap, engine): the cap is written into the module's bytes. */
function compiledKey(manifest: TaskManifest): string {
  return `${manifest.module.sha256}:${Math.floor(manifest.limits.memoryBytes / 65536)}:${manifest.engine}`;
}

export class ModulePreparer implements ModuleSource {
  /** Compiled modules by key, for this session: a second task with the same module compiles nothing. */
  private readonly compiled = new Map<string, Promise<Compiled>>();
  /** Blob loads under way, by hash: tasks prepared at the same time share one fetch. */
  private readonly loading = new Map<string, { bytes: Promise<Uint8Array>; progress: SharedProgress }>();
  private warnings: string[] = [];
  /** Verified bytes on their way into the cache, by hash. */
  private readonly storing = new Map<string, Uint8Array>();
  /**
   * Modules being rewritten and compiled, by hash: their own bytes are stored once that is done.
   * Storing a module means a structured clone of tens of megabytes on this thread and the browser
   * writing it out, which competed with the rewrite and the compile for the device's cores on a
   * first start.
   */
  private readonly compilingModules = new Map<string, Promise<unknown>>();

  constructor(
    private readonly server: BlobFetcher,
    private readonly blobs: BlobCache,
    private readonly modules: ModuleCache | null,
  ) {}

  warn(message: string): void {
    this.warnings.push(message);
  }

  async takeWarnings(): Promise<string[]> {
    const taken = this.warnings;
    this.warnings = [];
    return taken;
  }

  async prepare(manifest: TaskManifest, fetchLimit: number, onProgress?: PrepareProgress): Promise<PreparedModule> {
    const started = performance.now();
    const readied = new Readied(onProgress);
    let fetchMs = 0;
    try {
      const key = compiledKey(manifest);
      const known = this.compiled.get(key);
      // The module's bytes are in hand when they are fetched or read, or when it compiled from the
      // cache. The inputs are read meanwhile, and fetched after that, while the module compiles.
      let moduleInHand = () => {};
      const inHand = known ? Promise.resolve() : new Promise<void>((resolve) => (moduleInHand = resolve));
      const inputs = this.inputs(manifest, fetchLimit, readied, inHand);
      inputs.catch(() => undefined);
      let compiled: Compiled;
      let compileMs = 0;
      if (known) {
        compiled = await known;
        readied.add(3 * manifest.module.size, true); // readied earlier in this session
      } else {
        const made = this.compile(manifest, fetchLimit, (ms) => ((fetchMs = ms), moduleInHand()), readied);
        void made.catch(() => undefined).finally(moduleInHand);
        this.compiled.set(key, made);
        made.catch(() => this.compiled.delete(key)); // a failure is reported for each task, not remembered
        try {
          compiled = await made;
        } catch (error) {
          // The module's own fault is a result (failed); anything else is not the task's.
          // A valid module the yield hook cannot go into is the module's fault too: run without the
          // hook it could be neither paused nor throttled, and every device would fail it alike.
          if (!(error instanceof MemoryLimitError || error instanceof WebAssembly.CompileError || error instanceof InstrumentError)) throw error;
          const code = error instanceof MemoryLimitError ? 'memory-limit' : 'invalid-module';
          const message = error instanceof InstrumentError ? `the yield hook cannot go into this module: ${error.message}` : `${error.name}: ${error.message}`;
          return { kind: 'failed', code, message, fetchMs, compileMs: performance.now() - started - fetchMs };
        }
        compileMs = performance.now() - started - fetchMs;
      }
      const { stdin, files } = await inputs;
      return {
        kind: 'ready',
        module: compiled.module,
        moduleBytes: compiled.bytes,
        stdin,
        files,
        // Everything but compiling, so that the two add up to the prepare's wall time: the inputs
        // load while the module compiles, and only what they take past it is waiting on them.
        // (Not their own duration: with a kept module that added the inputs' read, 0.1-0.4 s for
        // yosys, to a start they had not delayed.)
        fetchMs: performance.now() - started - compileMs,
        compileMs,
        source: known ? 'session' : compiled.source,
      };
    } catch (error) {
      if (error instanceof Stop) return error.result;
      if (isUnreachable(error)) return { kind: 'unreachable', message: (error as Error).message, status: (error as { status?: number }).status ?? 0 };
      throw error;
    }
  }

  async prefetch(manifest: TaskManifest, fetchLimit: number): Promise<void> {
    try {
      if (manifest.engine === 'wasi-preview1' && (await this.modules?.has(this.moduleKey(manifest)))) {
        // The module is kept rewritten: only the inputs are needed.
      } else {
        await this.verifiedBlob(manifest.module, 'module', fetchLimit);
      }
      await this.inputs(manifest, fetchLimit);
    } catch {
      // prepare() meets the same problem again and reports it
    }
  }

  private moduleKey(manifest: TaskManifest): string {
    return moduleCacheKey(manifest.module.sha256, INSTRUMENTER_VERSION, Math.floor(manifest.limits.memoryBytes / 65536));
  }

  /**
   * @param fetchesAfter where the task's module is still on its way: inputs that must be fetched
   *   wait for it, those read from IndexedDB do not. The rewrite and the compile need the whole
   *   module and the run needs both, so the module's bytes go first and the inputs arrive while it
   *   compiles: side by side, yosys's 318 inputs (8.5 MB) held back its 30.8 MB, and a first start
   *   took 547 ms against 502 in this order (medians of six alternating pairs, docs/benchmarks.md
   *   (l), 2026-12-03).
   */
  private async inputs(manifest: TaskManifest, fetchLimit: number, readied?: Readied, fetchesAfter?: Promise<unknown>): Promise<{ stdin: Uint8Array; files: { path: string; data: Uint8Array }[] }> {
    const refs = [...(manifest.stdin ? [manifest.stdin] : []), ...manifest.files.map((file) => file.blob)];
    const data = await this.verifiedBlobs(refs, 'input', fetchLimit, readied, fetchesAfter);
    const stdin = manifest.stdin ? data[0]! : new Uint8Array(0);
    const files = data.slice(manifest.stdin ? 1 : 0);
    return { stdin, files: manifest.files.map((file, i) => ({ path: file.path, data: files[i]! })) };
  }

  /**
   * Bytes matching each of `refs`, in their order: those already loading or held shared, the
   * cached ones read in one transaction, the rest fetched in batches (POST /api/blobs/batch) or,
   * when large, FETCH_CONCURRENCY at a time. (One at a time, each with a transaction of its own, a
   * program with 317 inputs took seconds to start.)
   * @param readied counts the bytes fetched and hashed for the preparation that asked; one that
   *   joins a load under way (a prefetch's, another task's) hears of its bytes from then on.
   */
  private verifiedBlobs(refs: BlobRef[], kind: 'module' | 'input', fetchLimit: number, readied?: Readied, fetchesAfter?: Promise<unknown>): Promise<Uint8Array[]> {
    return Promise.all(this.loads(refs, kind, fetchLimit, readied, fetchesAfter).map((load) => load.bytes));
  }

  /** As verifiedBlobs, each blob's load on its own: its checked bytes, and its progress (with the bytes as they arrive). */
  private loads(refs: BlobRef[], kind: 'module' | 'input', fetchLimit: number, readied?: Readied, fetchesAfter?: Promise<unknown>): { bytes: Promise<Uint8Array>; progress: SharedProgress }[] {
    const keyOf = (ref: BlobRef) => `${ref.sha256}:${ref.size}:${kind}`;
    const fresh = new Map<string, BlobRef>();
    for (const ref of refs) if (!this.loading.has(keyOf(ref)) && !fresh.has(keyOf(ref))) fresh.set(keyOf(ref), ref);
    if (fresh.size > 0) {
      const progress = [...fresh.values()].map(() => new SharedProgress());
      const batch = this.loadVerifiedBlobs([...fresh.values()], kind, fetchLimit, progress, fetchesAfter);
      batch.catch((error) => progress.forEach((p) => p.failed(error)));
      [...fresh.values()].forEach((ref, i) => {
        const key = keyOf(ref);
        const bytes = batch.then((loaded) => loaded[i]!).finally(() => this.loading.delete(key));
        bytes.catch(() => undefined); // each caller sees the failure; the map must not
        this.loading.set(key, { bytes, progress: progress[i]! });
      });
    }
    const loads = refs.map((ref) => this.loading.get(keyOf(ref))!);
    if (readied) for (const load of new Set(loads)) load.progress.join(readied);
    return loads;
  }

  private async loadVerifiedBlobs(refs: BlobRef[], kind: 'module' | 'input', fetchLimit: number, progress: SharedProgress[], fetchesAfter?: Promise<unknown>): Promise<Uint8Array[]> {
    const found: (Uint8Array | undefined)[] = refs.map((ref) => {
      const held = this.storing.get(ref.sha256);
      return held && held.length === ref.size ? held : undefined;
    });
    const cached = await this.blobs.getMany(refs.filter((_, i) => !found[i]).map((ref) => ref.sha256));
    const missing: number[] = [];
    refs.forEach((ref, i) => {
      const hit = cached.get(ref.sha256);
      if (!found[i] && hit && hit.length === ref.size) found[i] = hit;
      if (found[i]) {
        progress[i]!.here(found[i]!);
        progress[i]!.add(2 * ref.size, true); // read and checked (BlobCache hashes what it reads)
      } else missing.push(i);
    });
    for (const i of missing) {
      const ref = refs[i]!;
      if (ref.size > fetchLimit) throw new Stop({ kind: 'deferred', message: `the data saver is on, and this task needs ${(ref.size / 2 ** 20).toFixed(1)} MB fetched` });
    }
    if (missing.length > 0) await fetchesAfter;
    // Small blobs in batches, one request each (at most MAX_BLOB_BATCH of them and
    // MAX_BLOB_BATCH_BYTES): yosys's 317 inputs took 4-5 s one request each, six at a time over
    // HTTP/1.1. Large ones, and everything when the server cannot batch, one request each.
    const batches: number[][] = [];
    const alone: number[] = [];
    let batchBytes = 0;
    for (const i of missing) {
      const size = refs[i]!.size;
      if (!this.server.fetchBlobs || size > MAX_BLOB_BATCH_BYTES / 4) {
        alone.push(i);
        continue;
      }
      const last = batches[batches.length - 1];
      if (!last || last.length === MAX_BLOB_BATCH || batchBytes + size > MAX_BLOB_BATCH_BYTES) {
        batches.push([i]);
        batchBytes = size;
      } else {
        last.push(i);
        batchBytes += size;
      }
    }
    const fetchBatch = async (batch: number[]) => {
      const pieces = batch.length > 1 ? await this.server.fetchBlobs!(batch.map((i) => refs[i]!)) : null;
      // Null: a server without the route, or one that lacks a blob or sent other sizes. Each
      // fetched alone then names its own problem (a 404 for that blob, a size its check refuses).
      if (!pieces) return void alone.push(...batch);
      await Promise.all(
        batch.map(async (i, k) => {
          progress[i]!.here(pieces[k]!);
          progress[i]!.add(pieces[k]!.length); // fetched
          found[i] = await this.verifiedFetched(refs[i]!, pieces[k]!, kind, progress[i]!);
        }),
      );
    };
    await eachBounded(batches, BATCH_CONCURRENCY, fetchBatch);
    await eachBounded(alone, FETCH_CONCURRENCY, async (i) => void (found[i] = await this.fetchVerified(refs[i]!, kind, progress[i]!)));
    return found as Uint8Array[];
  }

  /**
   * The module compiled with its memory capped at the task's limit. Preview1 modules get the yield
   * hook first (docs/scheduling.md), and are kept as compiled (ModuleCache). WASIX modules are
   * compiled too, though @wasmer/sdk compiles its own copy: an invalid module then fails here, the
   * same way for every engine.
   */
  private async compile(manifest: TaskManifest, fetchLimit: number, fetched: (ms: number) => void, readied: Readied): Promise<Compiled> {
    const key = this.moduleKey(manifest);
    if (manifest.engine === 'wasi-preview1' && this.modules) {
      const kept = await this.modules.compile(key);
      if (kept) {
        readied.add(3 * manifest.module.size, true); // kept rewritten: every step done before
        return { module: kept.module, bytes: null, source: 'cache' };
      }
    }
    const fetchStarted = performance.now();
    // Registered before the module's bytes can arrive: the load's first step awaits the cache.
    const compiling = this.fetchAndCompile(manifest, key, fetchLimit, fetchStarted, fetched, readied);
    this.compilingModules.set(manifest.module.sha256, compiling);
    try {
      return await compiling;
    } finally {
      if (this.compilingModules.get(manifest.module.sha256) === compiling) this.compilingModules.delete(manifest.module.sha256);
    }
  }

  private async fetchAndCompile(manifest: TaskManifest, key: string, fetchLimit: number, fetchStarted: number, fetched: (ms: number) => void, readied: Readied): Promise<Compiled> {
    const load = this.loads([manifest.module], 'module', fetchLimit, readied)[0]!;
    const arrived = await load.progress.arrived;
    fetched(performance.now() - fetchStarted);
    // For WASI the rewrite starts on the bytes as they arrived, while WebCrypto hashes them on a
    // thread of its own (yosys: 40-90 ms of hashing off the first start's path); nothing it makes
    // is kept or compiled unless the hash matched. The rewriter is a WebAssembly instance that
    // must withstand any module a publisher signs, so unchecked bytes ask nothing more of it
    // (docs/security.md).
    const made = hookedAndCapped(arrived, manifest.engine, manifest.limits.memoryBytes);
    const original = await load.bytes; // a mismatch is refused here, and the rewrite dropped
    readied.add(original.length, true); // rewritten (or, for WASIX, nothing to rewrite)
    if (made instanceof Error) throw made;
    const module = await WebAssembly.compile(made.bytes as Uint8Array<ArrayBuffer>);
    if (manifest.engine === 'wasix') return { module, bytes: made.bytes, source: 'fresh' };
    if (this.modules && made.hooked && keepsRewrite(made.rewrittenShare)) {
      // Kept once it has compiled, not before nor meanwhile: writing the rewritten bytes to Cache
      // Storage, reading them back and hashing them again took longer than the compile itself
      // (flite: 1.0 s of "hook + compile" against a rewrite of 70 ms and a compile of 46 ms in
      // Chromium's worker), and hashing and copying 33 MB beside the compile slowed it. Later
      // sessions compile the kept entry, checked against its hash.
      const bytes = made.bytes;
      void afterThisTask()
        .then(() => sha256Hex(bytes))
        .then((sha256) => this.modules!.put(key, [bytes], sha256))
        .catch(() => undefined);
    }
    return { module, bytes: null, source: 'fresh' };
  }

  /** @param readied as verifiedBlobs */
  private async verifiedBlob(ref: BlobRef, kind: 'module' | 'input', fetchLimit: number, readied?: Readied): Promise<Uint8Array> {
    return (await this.verifiedBlobs([ref], kind, fetchLimit, readied))[0]!;
  }

  /** Fetched bytes that match `ref`; refuses bytes that do not. */
  private async fetchVerified(ref: BlobRef, kind: 'module' | 'input', progress: SharedProgress): Promise<Uint8Array> {
    const fetched = await this.server.fetchBlob(ref.sha256, ref.size, (length) => progress.add(length));
    progress.here(fetched);
    return this.verifiedFetched(ref, fetched, kind, progress);
  }

  private async verifiedFetched(ref: BlobRef, fetched: Uint8Array, kind: 'module' | 'input', readied: SharedProgress): Promise<Uint8Array> {
    const verdict = await verifyBlob(ref, fetched, kind);
    readied.add(fetched.length, true); // hashed
    if (!verdict.ok) throw new Stop({ kind: 'refused', reason: verdict.reason, detail: verdict.detail });
    // Kept while the task goes on (not awaited: writing 30 MB to IndexedDB took the better part of a
    // second), and held here until stored, so that nothing fetches them twice meanwhile; the cache
    // itself warns when it cannot keep them.
    this.storing.set(ref.sha256, fetched);
    const compiling = kind === 'module' ? this.compilingModules.get(ref.sha256) : undefined;
    void Promise.allSettled([compiling])
      .then(afterThisTask)
      .then(() => this.blobs.put(ref.sha256, fetched))
      .catch(() => undefined)
      .finally(() => this.storing.delete(ref.sha256));
    return fetched;
  }
}

/**
 * Where the engine keeps no compiled code (Firefox, WebKit), the least share of a module that the
 * rewrite reads (its sections up to the end of the code) for the rewritten module to be kept.
 * There keeping it saves the next start the original's read from IndexedDB and the rewrite, and
 * costs reading all of it back from Cache Storage; where the data section is most of the module
 * that is the slower way: flite (21.5 MB, code 1% of it) started after a reload in 0.31-0.34 s kept
 * against 0.17 s rewritten again in WebKitGTK, 0.20 s against 0.07-0.19 s in Firefox 153; yosys
 * (30.8 MB, code 91%) in 0.80-0.82 s kept against 0.99-1.01 s in Firefox (WebKitGTK: 0.91-0.95 s
 * against 0.86-0.88 s). Chromium keeps everything: its code cache saves the compile too (flite 0.10-
 * 0.11 s kept against 0.13-0.14 s, yosys 0.23 s against 0.44-0.47 s; docs/benchmarks.md (l),
 * 2026-12-03). Every module of this repository's is 60-100% code.
 */
export const KEPT_MIN_REWRITTEN_SHARE = 0.5;

function keepsRewrite(rewrittenShare: number): boolean {
  return keepsCompiledCode() || rewrittenShare >= KEPT_MIN_REWRITTEN_SHARE;
}

/**
 * The module with its memory capped and, for WASI, the yield hook in it, made in one copy of the
 * module (the rewrite is capped straight out of the rewriter's memory, its data section straight
 * out of the fetched bytes); or the error to report. A module the rewrite cannot read is capped as
 * it is, and the compile names its problem.
 */
function hookedAndCapped(bytes: Uint8Array, engine: TaskManifest['engine'], memoryBytes: number): { bytes: Uint8Array; hooked: boolean; rewrittenShare: number } | Error {
  const cap = (module: Uint8Array | readonly Uint8Array[], hooked: boolean, rewrittenShare: number) => {
    const capped = capMemory(module, memoryBytes);
    if (!capped.ok) return capped.code === 'memory-limit' ? new MemoryLimitError(capped.message) : new WebAssembly.CompileError(capped.message);
    return { bytes: capped.bytes, hooked, rewrittenShare };
  };
  if (engine === 'wasix') return cap(bytes, false, 0);
  try {
    // The rewriter's output comes first, the sections it does not read (data, custom) after it.
    return instrumentInto(bytes, INITIAL_ALLOWANCE, (pieces) => cap(pieces, true, pieces[0]!.length / pieces.reduce((n, piece) => n + piece.length, 0)));
  } catch (error) {
    if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return cap(bytes, false, 0);
    return error as Error;
  }
}

/**
 * Resolves once the current task and the promise callbacks it queued have run: for storing that
 * must not hold up the answer. Started in the callbacks of the compile's end, storing flite's 21.5 MB
 * (its bytes cloned into IndexedDB, copied for their hash) ran on this thread before the prepare's
 * own continuation and held its answer 40 ms, a fifth of its first start.
 */
function afterThisTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A failure of the network or the server, as opposed to a verdict on the task. */
export function isUnreachable(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch() could not reach the server
  const status = (error as { status?: number }).status;
  return status === 0 || status === 408 || status === 429 || (typeof status === 'number' && status >= 500);
}
