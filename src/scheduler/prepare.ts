/**
 * Everything between a lease and a runnable job. Here, on the page: the envelope's checks (shape,
 * key, signature, expiry), replay, engine and size. The bytes (fetch or cache, hashes, the yield
 * hook, the memory cap, compiling) are the prepare worker's (src/scheduler/module-preparer.ts),
 * reached through ModuleSource: the page's main thread never holds a module's bytes. Nothing is
 * compiled or cached before it has passed its check.
 */
import type { Lease, RefusalReason, RunErrorCode, SignedTask, TaskManifest } from '../protocol/schema.ts';
import { verifyEnvelope, type Verdict } from '../protocol/verify.ts';
import type { TaskKey } from '../protocol/keyset.ts';
import { runnableEngines } from './engines.ts';
import { ServerError } from './server-api.ts';
import type { ModuleSource, PrepareProgress } from './module-preparer.ts';

export type { ModuleSource, PrepareProgress } from './module-preparer.ts';

export interface ReadyTask {
  kind: 'ready';
  manifest: TaskManifest;
  module: WebAssembly.Module;
  /** For `wasix` tasks: the memory-capped module bytes. */
  moduleBytes: Uint8Array | null;
  /** The inputs, this preparation's own (the prepare worker's copies): the run hands them to its worker (TaskSlot.run). */
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

/** A blob that may not be fetched now (the data saver is on): the task waits; it is not refused. */
export class FetchDeferred extends Error {
  override name = 'FetchDeferred';
}

export class TaskPreparer {
  constructor(
    private readonly modules: ModuleSource,
    /** The task-signing keys of the verified keyset (src/scheduler/keyset-keeper.ts), as they are now. */
    private readonly taskKeys: () => ReadonlyMap<string, TaskKey>,
    private readonly options: {
      /** The most bytes one blob may have to be fetched now (the data-saver policy); Infinity for no limit. */
      fetchLimit?: () => number;
      now?: () => number;
      /** A task names a key the keyset lacks: fetch the keyset again (a rotation); true if it changed. */
      refreshKeys?: () => Promise<boolean>;
      /** Whether this device has completed the task already (replay protection). */
      completed?: (taskId: string) => Promise<boolean>;
      /** A line for the activity log from the caches (a corrupted entry, a full disk). */
      warn?: (message: string) => void;
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

  /**
   * @throws FetchDeferred when a blob may not be fetched now (the data saver); a ServerError
   *   (status 0 when unreachable, or 408/429/5xx) when the network or the server failed.
   */
  async prepare(lease: Lease, onProgress?: PrepareProgress): Promise<Prepared> {
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
    const prepared = await this.modules.prepare(manifest, this.fetchLimit(), onProgress);
    void this.passWarnings();
    switch (prepared.kind) {
      case 'ready':
        return { kind: 'ready', manifest, module: prepared.module, moduleBytes: prepared.moduleBytes, stdin: prepared.stdin, files: prepared.files, fetchMs: prepared.fetchMs, compileMs: prepared.compileMs };
      case 'refused':
        return prepared;
      case 'failed':
        return { ...prepared, manifest };
      case 'deferred':
        throw new FetchDeferred(prepared.message);
      case 'unreachable':
        throw new ServerError(prepared.message, prepared.status);
    }
  }

  /** Loads and verifies a lease's blobs into the cache ahead of its run; refusals wait for prepare(). */
  async prefetch(lease: Lease): Promise<void> {
    const verdict = await this.verify(lease.task);
    if (!verdict.ok || verdict.value.manifest.module.size > MAX_MODULE_BYTES) return;
    await this.modules.prefetch(verdict.value.manifest, this.fetchLimit());
    void this.passWarnings();
  }

  private fetchLimit(): number {
    return this.options.fetchLimit?.() ?? Infinity;
  }

  private async passWarnings(): Promise<void> {
    for (const message of await this.modules.takeWarnings()) this.options.warn?.(message);
  }
}
