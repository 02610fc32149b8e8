/** The page's handle on the prepare worker (src/scheduler/prepare-worker.ts): every answer checked before the page uses it. */
import * as Comlink from 'comlink';
import * as v from 'valibot';
import { parse } from '../protocol/schema.ts';
import { PreparedModuleSchema, type ModuleSource, type PreparedModule } from './module-preparer.ts';

const Warnings = v.array(v.string());

export function startPrepareWorker(): ModuleSource {
  const worker = new Worker(new URL('./prepare-worker.ts', import.meta.url), { type: 'module', name: 'dewgrid-prepare' });
  return checkedModuleSource(Comlink.wrap<ModuleSource>(worker) as unknown as ModuleSource);
}

/** `remote`'s answers, each checked: one that fails is a fault of this device (its own worker), not the task's. */
export function checkedModuleSource(remote: ModuleSource): ModuleSource {
  return {
    async prepare(manifest, fetchLimit, onProgress) {
      // A function crosses to the worker only as a proxy: the progress of a prepare is called back here.
      const answer = parse(PreparedModuleSchema, await remote.prepare(manifest, fetchLimit, onProgress && Comlink.proxy(onProgress)));
      if (answer.ok) return answer.value as PreparedModule;
      return { kind: 'failed', code: 'device', message: `the prepare worker answered with something that is not a prepared module (${answer.message})`, fetchMs: 0, compileMs: 0 };
    },
    prefetch: (manifest, fetchLimit) => remote.prefetch(manifest, fetchLimit),
    async takeWarnings() {
      const answer = parse(Warnings, await remote.takeWarnings());
      return answer.ok ? answer.value : [`the prepare worker sent warnings that are not text (${answer.message})`];
    },
  };
}
