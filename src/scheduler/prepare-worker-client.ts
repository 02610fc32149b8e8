/** The page's handle on the prepare worker (src/scheduler/prepare-worker.ts). */
import * as Comlink from 'comlink';
import type { ModuleSource } from './module-preparer.ts';

export function startPrepareWorker(): ModuleSource {
  const worker = new Worker(new URL('./prepare-worker.ts', import.meta.url), { type: 'module', name: 'dewgrid-prepare' });
  return Comlink.wrap<ModuleSource>(worker) as unknown as ModuleSource;
}
