/**
 * The prepare worker: ModulePreparer (src/scheduler/module-preparer.ts) off the page's main
 * thread, with its own handle on the client's IndexedDB, Cache Storage and the task server. One
 * per page, started with the client. What it hands back crosses by reference or transfer: a
 * compiled WebAssembly.Module is shared, not copied.
 */
import * as Comlink from 'comlink';
import { openDewgridDB } from '../storage/db.ts';
import { BlobCache, DEFAULT_BLOB_BUDGET_BYTES } from '../storage/blob-cache.ts';
import { ModuleCache } from '../storage/module-cache.ts';
import { ModulePreparer, type ModuleSource, type PreparedModule, type PrepareProgress } from './module-preparer.ts';
import { TaskServer } from './server-api.ts';
import { parse, TaskManifest } from '../protocol/schema.ts';

const preparer: Promise<ModulePreparer> = (async () => {
  const db = await openDewgridDB();
  const budget = (await db.get('meta', 'blobBudgetBytes')) as number | undefined;
  let made: ModulePreparer | null = null;
  const blobs = new BlobCache(db, budget ?? DEFAULT_BLOB_BUDGET_BYTES, (message) => made?.warn(message));
  made = new ModulePreparer(new TaskServer(self.location.origin), blobs, ModuleCache.available() ? new ModuleCache() : null);
  return made;
})();

const api: ModuleSource = {
  async prepare(manifest: TaskManifest, fetchLimit: number, onProgress?: PrepareProgress): Promise<PreparedModule> {
    // The page checked the manifest's signature; what arrived here is checked again, being a message.
    const checked = parse(TaskManifest, manifest);
    // Failing it is this device's fault (the page's or this worker's code), never the task's.
    if (!checked.ok) return { kind: 'failed', code: 'device', message: `the page sent the prepare worker a manifest that is not one (${checked.message})`, fetchMs: 0, compileMs: 0 };
    if (typeof fetchLimit !== 'number' || !(fetchLimit >= 0)) return { kind: 'failed', code: 'device', message: `the page sent the prepare worker a fetch limit that is not one (${String(fetchLimit)})`, fetchMs: 0, compileMs: 0 };
    manifest = checked.value;
    // onProgress is the page's function behind a Comlink proxy: told without waiting for its answer.
    const prepared = await (await preparer).prepare(manifest, fetchLimit, onProgress && ((readied) => void onProgress(readied)));
    if (prepared.kind !== 'ready') return prepared;
    // Copied here and transferred, so the page gets them without a copy on its thread (tasks
    // prepared together may share one loaded buffer, which must not be detached under the other).
    prepared.stdin = prepared.stdin.slice();
    prepared.files = prepared.files.map((f) => ({ path: f.path, data: f.data.slice() }));
    const buffers = [prepared.stdin.buffer, ...prepared.files.map((f) => f.data.buffer)] as ArrayBuffer[];
    return Comlink.transfer(prepared, buffers);
  },
  async prefetch(manifest: TaskManifest, fetchLimit: number): Promise<void> {
    // What is not a manifest, or not a limit, is left for prepare() to answer.
    if (!parse(TaskManifest, manifest).ok || typeof fetchLimit !== 'number' || !(fetchLimit >= 0)) return;
    await (await preparer).prefetch(manifest, fetchLimit);
  },
  async takeWarnings(): Promise<string[]> {
    return (await preparer).takeWarnings();
  },
};

Comlink.expose(api);
