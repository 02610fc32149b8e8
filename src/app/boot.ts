/** Puts the client together: storage, the device's identity, the project's keys, the controller. */
import { openDewgridDB } from '../storage/db.ts';
import { WorkStore } from '../storage/work-store.ts';
import { loadIdentity } from '../storage/identity.ts';
import { Controller, type SettingsBounds } from '../scheduler/controller.ts';
import { KeysetKeeper } from '../scheduler/keyset-keeper.ts';
import { watchSignals, type Signals } from '../scheduler/signals.ts';
import { workerClock } from '../scheduler/clock.ts';
import { TaskPreparer } from '../scheduler/prepare.ts';
import { startPrepareWorker } from '../scheduler/prepare-worker-client.ts';
import { WorkerSlot } from '../scheduler/worker-slot.ts';
import { runnableEngines } from '../scheduler/engines.ts';
import { reportedProcessors } from '../scheduler/processors.ts';
import { fetchAllowance } from '../scheduler/policies/page.ts';
import { TaskServer } from '../scheduler/server-api.ts';
import type { TrustConfig } from '../protocol/api.ts';
import type { Engine } from '../protocol/schema.ts';
import { TRUST } from './trust.ts';

export interface Client {
  controller: Controller;
  trust: TrustConfig;
  /** The device and page signals, as the policies read them (the night screen reads charging and visibility). */
  signals: () => Signals;
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
  const work = new WorkStore(db);
  const { identity, previousDeviceId } = await loadIdentity(db);
  server.signAs(identity);
  // Messages for the activity log before the controller exists are kept and logged once it does.
  const early: { level: 'info' | 'refused'; text: string }[] = [];
  let say: (level: 'info' | 'refused', text: string) => void = (level, text) => void early.push({ level, text });
  if (previousDeviceId) {
    // Work held under the id of a client from before device keys: this key cannot sign for it.
    const { leases, results } = await work.forgetAll();
    if (leases + results) say('info', `This device now signs its results with its own key. ${leases} held task${leases === 1 ? '' : 's'} and ${results} unsent result${results === 1 ? '' : 's'} from before could not be signed and were let go.`);
  }
  const keys = new KeysetKeeper(db, TRUST, server, identity.deviceId, (level, text) => say(level, text));
  await keys.load();
  // With a keyset held (checked offline against the roots), the page need not wait for the
  // network: the check runs on, and Start and every run wait for it (Controller.keysReady).
  const checked = keys.refresh();
  if (keys.version() === 0) await checked;
  if (keys.version() === 0) {
    throw new Error(`No list of ${TRUST.projectName}'s signing keys could be fetched or verified yet, so no task could be checked. Is the task server reachable?`);
  }
  // Ask the browser not to evict our data under storage pressure: queued work and unsent results live there.
  void navigator.storage?.persist?.().catch(() => false);
  // Battery, heat, visibility, use of the page, data saver: each change makes the policies decide again.
  let onSignal = () => undefined as void;
  const signals = watchSignals(() => onSignal());
  const maxWorkers = options.maxWorkers ?? reportedProcessors();
  let fetchLimit = () => Infinity;
  let warn: (message: string) => void = () => undefined;
  // Module and input bytes are read, checked, rewritten and compiled in a worker of their own.
  const preparer = new TaskPreparer(startPrepareWorker(), () => keys.taskKeys(), {
    warn: (message) => warn(message),
    fetchLimit: () => fetchLimit(),
    refreshKeys: () => keys.refresh(),
    completed: (taskId) => work.completed(taskId),
  });
  const controller = new Controller({
    server,
    store: work,
    keys,
    identity,
    preparer,
    project: TRUST.projectName,
    maxWorkers,
    newSlot: () => new WorkerSlot(),
    cores: reportedProcessors(),
    // Timers from a worker: a hidden page's main-thread timers are throttled (src/scheduler/clock.ts).
    clock: workerClock(),
    signals: signals.read,
    bounds: options.bounds,
    engines: () => runnableEngines().filter((engine) => !options.engines || options.engines.includes(engine)),
  });
  fetchLimit = () => fetchAllowance(signals.read().saveData, controller.status().settings);
  onSignal = () => controller.signalsChanged();
  warn = (message) => controller.say('info', message);
  say = (level, text) => controller.say(level, text);
  for (const { level, text } of early) controller.say(level, text);
  await controller.restore();
  // Results waiting in the outbox go out as soon as there is a chance they arrive.
  addEventListener('online', () => controller.networkMayBeBack());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') controller.networkMayBeBack();
  });
  return { controller, trust: TRUST, signals: signals.read };
}
