/**
 * Everything between a lease and a runnable job: verify the envelope, get the module and
 * inputs (cache first, else fetch), check their hashes, compile. Nothing is compiled or cached
 * before it has passed its check.
 */
import type { BlobCache } from '../storage/blob-cache.ts';
import type { BlobRef, Lease, RefusalReason, RunErrorCode, SignedTask, TaskManifest } from '../protocol/schema.ts';
import { verifyBlob, verifyEnvelope, type Verdict } from '../protocol/verify.ts';
import type { TaskKey } from '../protocol/keyset.ts';
import type { TaskServer } from './server-api.ts';
import { capMemory } from './memory-cap.ts';
import { runnableEngines } from './engines.ts';
import * as Comlink from 'comlink';
import { instrumentedKey, type InstrumentedCache } from '../storage/instrumented-cache.ts';
import { INITIAL_ALLOWANCE, INSTRUMENTER_VERSION } from '../protocol/throttle.ts';
import type { InstrumentApi } from '../../worker/instrument-worker.ts';

/** A module compiled with its memory capped; WASIX modules keep the capped bytes, which @wasmer/sdk takes. */
interface CompiledModule {
  module: WebAssembly.Module;
  bytes: Uint8Array | null;
}

export interface ReadyTask {
  kind: 'ready';
  manifest: TaskManifest;
  module: WebAssembly.Module;
  /** For `wasix` tasks: the memory-capped module bytes. */
  moduleBytes: Uint8Array | null;
  stdin: Uint8Array;
  files: { path: string; data: Uint8Array }[];
  fetchMs: number;
  compileMs: number;
}
export interface RefusedTask {
  kind: 'refused';
  reason: RefusalReason;
  detail: string;
}
export interface FailedTask {
  kind: 'failed';
  manifest: TaskManifest;
  code: RunErrorCode;
  message: string;
  fetchMs: number;
  compileMs: number;
}
export type Prepared = ReadyTask | RefusedTask | FailedTask;

/** The largest module this client accepts, whatever a task says. */
export const MAX_MODULE_BYTES = 64 * 2 ** 20;

class MemoryLimitError extends Error {
  override name = 'MemoryLimitError';
}

/** Compiled modules are per (module, memory cap): the cap is written into the module's bytes. */
function compiledKey(manifest: TaskManifest): string {
  return `${manifest.module.sha256}:${Math.floor(manifest.limits.memoryBytes / 65536)}:${manifest.engine}`;
}

/** A blob that may not be fetched now (the data saver is on): the task waits; it is not refused. */
export class FetchDeferred extends Error {
  override name = 'FetchDeferred';
}

class Refusal extends Error {
  constructor(
    readonly reason: RefusalReason,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export class TaskPreparer {
  /** Compiled modules by hash, for this session: a second task with the same module compiles nothing. */
  private readonly compiled = new Map<string, Promise<CompiledModule>>();

  constructor(
    private readonly server: TaskServer,
    private readonly cache: BlobCache,
    /** The task-signing keys of the verified keyset (src/scheduler/keyset-keeper.ts), as they are now. */
    private readonly taskKeys: () => ReadonlyMap<string, TaskKey>,
    private readonly instrumented: InstrumentedCache | null = null,
    private readonly options: {
      /** The most bytes one blob may have to be fetched now (the data-saver policy); Infinity for no limit. */
      fetchLimit?: () => number;
      now?: () => number;
      /** A task names a key the keyset lacks: fetch the keyset again (a rotation); true if it changed. */
      refreshKeys?: () => Promise<boolean>;
      /** Whether this device has completed the task already (replay protection). */
      completed?: (taskId: string) => Promise<boolean>;
    } = {},
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The envelope's verdict; a key the keyset lacks may be a new one, so the keyset is fetched again once first. */
  private async verify(task: unknown): Promise<Verdict<SignedTask>> {
    const verdict = await verifyEnvelope(task, this.taskKeys(), this.now());
    if (!verdict.ok && verdict.reason === 'unknown-key' && this.options.refreshKeys && (await this.options.refreshKeys())) {
      return verifyEnvelope(task, this.taskKeys(), this.now());
    }
    return verdict;
  }

  async prepare(lease: Lease): Promise<Prepared> {
    const verdict = await this.verify(lease.task);
    if (!verdict.ok) return { kind: 'refused', reason: verdict.reason, detail: verdict.detail };
    const manifest = verdict.value.manifest;
    // After the signature: a forged copy of a completed task is a bad signature, not a replay.
    if (await this.options.completed?.(manifest.taskId)) {
      return { kind: 'refused', reason: 'replayed-task', detail: `task ${manifest.taskId} was completed on this device already (lease ${lease.leaseId})` };
    }
    if (!runnableEngines().includes(manifest.engine)) {
      return { kind: 'refused', reason: 'unsupported-engine', detail: `engine ${manifest.engine} cannot run on this page` };
    }
    if (manifest.module.size > MAX_MODULE_BYTES) {
      return { kind: 'refused', reason: 'module-too-large', detail: `${manifest.module.size} bytes; this client takes at most ${MAX_MODULE_BYTES}` };
    }

    const fetchStarted = performance.now();
    let moduleBytes: Uint8Array | null = null;
    let stdin: Uint8Array;
    let files: { path: string; data: Uint8Array }[];
    try {
      if (!this.compiled.has(compiledKey(manifest))) moduleBytes = await this.verifiedBlob(manifest.module, 'module');
      stdin = manifest.stdin ? await this.verifiedBlob(manifest.stdin, 'input') : new Uint8Array(0);
      files = [];
      for (const file of manifest.files) files.push({ path: file.path, data: await this.verifiedBlob(file.blob, 'input') });
    } catch (error) {
      if (error instanceof Refusal) return { kind: 'refused', reason: error.reason, detail: error.detail };
      throw error;
    }
    const fetchMs = performance.now() - fetchStarted;

    const compileStarted = performance.now();
    try {
      const { module, bytes } = await this.compile(manifest, moduleBytes);
      return { kind: 'ready', manifest, module, moduleBytes: bytes, stdin, files, fetchMs, compileMs: performance.now() - compileStarted };
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const code = error instanceof MemoryLimitError ? 'memory-limit' : 'invalid-module';
      return { kind: 'failed', manifest, code, message, fetchMs, compileMs: performance.now() - compileStarted };
    }
  }

  /** Loads and verifies a lease's blobs into the cache ahead of its run; refusals wait for prepare(). */
  async prefetch(lease: Lease): Promise<void> {
    const verdict = await this.verify(lease.task);
    if (!verdict.ok || verdict.value.manifest.module.size > MAX_MODULE_BYTES) return;
    const m = verdict.value.manifest;
    await this.verifiedBlob(m.module, 'module');
    if (m.stdin) await this.verifiedBlob(m.stdin, 'input');
    for (const file of m.files) await this.verifiedBlob(file.blob, 'input');
  }

  /**
   * Compiles the module with its memory capped at the task's limit; one compile per (module, cap).
   * Preview1 modules get the yield hook first (docs/scheduling.md). WASIX modules are compiled too,
   * though @wasmer/sdk compiles its own copy: an invalid module then fails here, the same way for
   * every engine.
   */
  private compile(manifest: TaskManifest, bytes: Uint8Array | null): Promise<CompiledModule> {
    const key = compiledKey(manifest);
    let compiled = this.compiled.get(key);
    if (!compiled) {
      if (!bytes) throw new Error(`module ${manifest.module.sha256} is neither compiled nor fetched`);
      compiled = (manifest.engine === 'wasix' ? Promise.resolve(bytes) : this.withYieldHook(manifest.module.sha256, bytes)).then((source) =>
        this.compileCapped(manifest, source),
      );
      // A module that fails to compile is not remembered: the error is reported for each task.
      compiled.catch(() => this.compiled.delete(key));
      this.compiled.set(key, compiled);
    }
    return compiled;
  }

  /** The module with the yield hook in it: from the cache, or rewritten now and kept. */
  private async withYieldHook(sha256: string, bytes: Uint8Array): Promise<Uint8Array> {
    const key = instrumentedKey(sha256, INSTRUMENTER_VERSION);
    const cached = await this.instrumented?.get(key);
    if (cached) return cached;
    let rewritten: Uint8Array;
    try {
      // A copy goes to the worker: the bytes stay cached and usable here.
      rewritten = await this.instrumenter().instrument(bytes.slice(), INITIAL_ALLOWANCE);
    } catch (error) {
      // Not well-formed (the compile below names the problem), or beyond what the rewrite knows.
      if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return bytes;
      throw error;
    }
    void this.instrumented?.put(key, rewritten);
    return rewritten;
  }

  private instrumenterApi: Comlink.Remote<InstrumentApi> | null = null;

  /** The rewriting worker, started with the first module. */
  private instrumenter(): Comlink.Remote<InstrumentApi> {
    this.instrumenterApi ??= Comlink.wrap<InstrumentApi>(new Worker(new URL('../../worker/instrument-worker.ts', import.meta.url), { type: 'module', name: 'dewgrid-instrument' }));
    return this.instrumenterApi;
  }

  private async compileCapped(manifest: TaskManifest, bytes: Uint8Array): Promise<CompiledModule> {
    const capped = capMemory(bytes, manifest.limits.memoryBytes);
    if (!capped.ok) throw capped.code === 'memory-limit' ? new MemoryLimitError(capped.message) : new WebAssembly.CompileError(capped.message);
    const module = await WebAssembly.compile(capped.bytes as Uint8Array<ArrayBuffer>);
    return { module, bytes: manifest.engine === 'wasix' ? capped.bytes : null };
  }

  /** Blob loads under way, by hash: tasks prepared at the same time share one fetch. */
  private readonly loading = new Map<string, Promise<Uint8Array>>();

  private verifiedBlob(ref: BlobRef, kind: 'module' | 'input'): Promise<Uint8Array> {
    const key = `${ref.sha256}:${ref.size}:${kind}`;
    let load = this.loading.get(key);
    if (!load) {
      load = this.loadVerifiedBlob(ref, kind).finally(() => this.loading.delete(key));
      this.loading.set(key, load);
    }
    return load;
  }

  /** Bytes that match `ref`, from the cache or the server; refuses bytes that do not. */
  private async loadVerifiedBlob(ref: BlobRef, kind: 'module' | 'input'): Promise<Uint8Array> {
    const cached = await this.cache.get(ref.sha256);
    if (cached && cached.length === ref.size) return cached;
    const limit = this.options.fetchLimit?.() ?? Infinity;
    if (ref.size > limit) throw new FetchDeferred(`the data saver is on, and this task needs ${(ref.size / 2 ** 20).toFixed(1)} MB fetched`);
    const fetched = await this.server.fetchBlob(ref.sha256);
    const verdict = await verifyBlob(ref, fetched, kind);
    if (!verdict.ok) throw new Refusal(verdict.reason, verdict.detail);
    await this.cache.put(ref.sha256, fetched);
    return fetched;
  }
}
