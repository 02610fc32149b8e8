/** Puts the client together: storage, identity, trust, controller. */
import { openDewgridDB } from '../storage/db.ts';
import { BlobCache, DEFAULT_BLOB_BUDGET_BYTES } from '../storage/blob-cache.ts';
import { WorkStore } from '../storage/work-store.ts';
import { Controller, type SettingsBounds } from '../scheduler/controller.ts';
import { watchSignals } from '../scheduler/signals.ts';
import { InstrumentedCache } from '../storage/instrumented-cache.ts';
import { TaskServer } from '../scheduler/server-api.ts';
import { pinnedKeys } from '../protocol/signing.ts';
import type { TrustConfig } from '../protocol/api.ts';
import type { Engine } from '../protocol/schema.ts';
import { TRUST } from './trust.ts';

export interface Client {
  controller: Controller;
  trust: TrustConfig;
}

/** What a host puts around the client (the embed on a partner site); the page passes none. See Controller. */
export interface BootOptions {
  /** Tasks at once, at most; default one per core. */
  maxWorkers?: number;
  bounds?: SettingsBounds;
  engines?: readonly Engine[];
}

export async function boot(options: BootOptions = {}): Promise<Client> {
  const server = new TaskServer(location.origin);
  const db = await openDewgridDB();
  let deviceId = (await db.get('meta', 'deviceId')) as string | undefined;
  if (!deviceId) {
    deviceId = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
    await db.put('meta', deviceId, 'deviceId');
  }
  const config = TRUST;
  const keys = await pinnedKeys(config);
  if (keys.size === 0) throw new Error('This build\'s trust configuration names no valid project key, so no task could be verified.');
  // Ask the browser not to evict our data under storage pressure: queued work and unsent results live there.
  void navigator.storage?.persist?.().catch(() => false);
  const budget = (await db.get('meta', 'blobBudgetBytes')) as number | undefined;
  let warn: (message: string) => void = () => undefined;
  const cache = new BlobCache(db, budget ?? DEFAULT_BLOB_BUDGET_BYTES, (message) => warn(message));
  // Battery, heat, visibility, use of the page, data saver: each change makes the policies decide again.
  let onSignal = () => undefined as void;
  const signals = watchSignals(() => onSignal());
  const controller = new Controller(server, cache, new WorkStore(db), keys, deviceId, config.projectName, options.maxWorkers, {
    instrumented: new InstrumentedCache(db),
    signals: signals.read,
    bounds: options.bounds,
    engines: options.engines,
  });
  onSignal = () => controller.signalsChanged();
  warn = (message) => controller.notice(message);
  await controller.restore();
  // Results waiting in the outbox go out as soon as there is a chance they arrive.
  addEventListener('online', () => controller.networkMayBeBack());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') controller.networkMayBeBack();
  });
  return { controller, trust: config };
}
