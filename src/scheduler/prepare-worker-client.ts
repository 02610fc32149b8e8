/** The page's handle on the prepare worker (src/scheduler/prepare-worker.ts). */
import * as Comlink from 'comlink';
import type { ModuleSource } from './module-preparer.ts';

export function startPrepareWorker(): ModuleSource {
  const worker = new Worker(new URL('./prepare-worker.ts', import.meta.url), { type: 'module', name: 'dewgrid-prepare' });
  const remote = Comlink.wrap<ModuleSource>(worker) as unknown as ModuleSource;
  return {
    // A function crosses to the worker only as a proxy: the progress of a prepare is called back here.
    prepare: (manifest, fetchLimit, onProgress) => remote.prepare(manifest, fetchLimit, onProgress && Comlink.proxy(onProgress)),
    prefetch: (manifest, fetchLimit) => remote.prefetch(manifest, fetchLimit),
    takeWarnings: () => remote.takeWarnings(),
  };
}
