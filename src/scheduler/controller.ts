/**
 * The donor page's controller: it wires the scheduler's parts and is their public face
 * (`window.dewgrid`, see README). It owns no policy and no network call of its own:
 *  - the work supply (work-supply.ts) holds the leases, asks for more, and keeps them alive
 *    through the lease keeper (lease-keeper.ts);
 *  - the task runner (task-runner.ts) takes a lease to its answer on a worker slot;
 *  - the result outbox (result-outbox.ts) signs, keeps and posts the answers;
 *  - the governor (governor.ts) turns signals and the runs' own accounting into one decision;
 *  - the activity log (activity-log.ts) is handed to each.
 * Every wait is on the injected clock (clock.ts): in the browser, a worker's timers, which a hidden
 * page does not slow down.
 */
import type { DeviceCredit, Engine, Lease, TaskManifest } from '../protocol/schema.ts';
import type { WorkerOutcome } from '../protocol/worker-api.ts';
import { toBase64 } from '../protocol/bytes.ts';
import { defaultWorkers } from './processors.ts';
import { DEFAULT_SETTINGS, updatedSettings, type Settings } from './policies/settings.ts';
import { ActivityLog, type LogEntry, type LogLevel } from './activity-log.ts';
import { every, mainThreadClock, Timer, type Clock } from './clock.ts';
import { Governor, type Decision, type LoadDetails } from './governor.ts';
import { LeaseKeeper, LeaseProgress, type LeaseRecords, type LeaseRenewer } from './lease-keeper.ts';
import { WorkSupply, type LeaseStore, type WorkSource } from './work-supply.ts';
import { ResultOutbox, type OutboxStore, type ResultPoster } from './result-outbox.ts';
import { CreditWatch, type CreditSource } from './credit-watch.ts';
import { NOT_NEEDED, TaskRunner, type CheckpointStore, type Preparer, type RefusalReporter, type TaskSlot } from './task-runner.ts';
import type { Signals } from './signals.ts';

export type { LogEntry, LogLevel, Decision, LoadDetails };

/** The part of the settings `window.dewgrid.setLimits` takes (README: "Automating a donor page"). */
export type Limits = Pick<Settings, 'cpu' | 'workers'>;

/**
 * What the host of this client allows at most, whatever the donor's settings say: the embed on a
 * partner site caps the CPU share at the partner's data-max-cpu and always pauses while the
 * partner's page is hidden (README, "On partner sites"). Saved settings are held within them;
 * setSettings refuses to go past them.
 */
export interface SettingsBounds {
  maxCpu?: number;
  whenHidden?: Settings['whenHidden'];
}

export interface Counts {
  running: number;
  queued: number;
  /** Results kept on this device until the server has them. */
  unsent: number;
  done: number;
  failed: number;
  refused: number;
}

export interface Status {
  running: boolean;
  limits: Limits;
  settings: Settings;
  /** What the policies decided, and why (docs/scheduling.md). */
  activity: Decision;
  /** How heat and other programs' load are judged, and the latest figures (docs/scheduling.md, "Own load"). */
  load: LoadDetails;
  /** Whether the device is on its charger (null where the browser does not say). */
  charging: boolean | null;
  /**
   * The running tasks' work so far (probes) and time computing, summed; and when one of them last
   * stopped for a pause (epoch ms, 0 if none has), for measuring how fast a pause takes hold.
   */
  progress: { work: number; busyMs: number; lastPauseAt: number };
  /**
   * Work (probes) and computing time of every run since the page opened, ended ones included: only
   * ever grows, so the dashboard's chart takes its rates from the difference of two samples.
   */
  computed: { work: number; busyMs: number };
  counts: Counts;
  deviceId: string;
  project: string;
  /** This device's credit as the server last reported it (null until it knows the device). */
  credit: DeviceCredit | null;
}

export interface CompletedRun {
  manifest: TaskManifest;
  outcome: WorkerOutcome;
}

export interface ControllerEvents {
  status: Status;
  log: LogEntry;
  completed: CompletedRun;
}

type Listener<K extends keyof ControllerEvents> = (value: ControllerEvents[K]) => void;

/** What the controller needs of the task server (server-api.ts). */
export type ControllerServer = WorkSource & LeaseRenewer & ResultPoster & RefusalReporter & CreditSource;
/** What it needs of the device's storage (src/storage/work-store.ts). */
export interface ControllerStore extends LeaseRecords, LeaseStore, OutboxStore, CheckpointStore {
  leases(): Promise<Lease[]>;
  pruneCompleted(now?: number): Promise<void>;
  setRunning(running: boolean): Promise<void>;
  wasRunning(): Promise<boolean>;
  setSettings(settings: Settings): Promise<void>;
  savedSettings(): Promise<Partial<Settings> | null>;
}
/** The keyset keeper's part the controller calls (keyset-keeper.ts). */
export interface Keys {
  version(): number;
  refresh(): Promise<unknown>;
  refreshUnlessFresh(maxAgeMs: number): Promise<unknown>;
}

export interface ControllerParts {
  server: ControllerServer;
  store: ControllerStore;
  keys: Keys;
  identity: { deviceId: string; publicKey: Uint8Array; sign(message: Uint8Array): Promise<Uint8Array> };
  preparer: Preparer;
  project: string;
  /** Tasks at once, at most (the device's cores, or less where a host says so). */
  maxWorkers: number;
  /** A fresh worker slot (worker-slot.ts in the browser). */
  newSlot: () => TaskSlot;
  /** The device's logical cores (navigator.hardwareConcurrency). */
  cores: number;
  clock?: Clock;
  /** The device and page signals the policies read (src/scheduler/signals.ts); neutral when absent. */
  signals?: () => Signals;
  bounds?: SettingsBounds;
  /**
   * The engines work may be asked for, of those this page can run. The embed leaves WASIX out:
   * its runs are not throttled, so no CPU cap would hold for them.
   */
  engines: () => Engine[];
}

/** A keyset the server confirmed this recently is not asked for again when the donor presses Start. */
const KEYSET_FRESH_MS = 10_000;
/** Dwell times end and the donor stops using the page with no event: the governor looks again this often. */
const GOVERNOR_TICK_MS = 1000;
/** The page hears of changes at most this often (a render each time): the dashboard's own cost stays small. */
const STATUS_EVERY_MS = 1000;
/** So many tasks in a row that this device could not run, and it stops taking work. */
const MAX_DEVICE_FAILURES = 3;

const NEUTRAL_SIGNALS: Signals = { battery: null, pressure: null, pressureObserved: false, hidden: false, lastInputAt: null, saveData: false };

export class Controller {
  private readonly clock: Clock;
  private readonly log: ActivityLog;
  private readonly keeper: LeaseKeeper;
  private readonly supply: WorkSupply;
  private readonly outbox: ResultOutbox;
  private readonly credit: CreditWatch;
  private readonly runner: TaskRunner;
  private readonly governor: Governor;
  private readonly slots: TaskSlot[] = [];
  private readonly active = new Map<TaskSlot, Lease>();
  private readonly listeners: { [K in keyof ControllerEvents]: Set<Listener<K>> } = { status: new Set(), log: new Set(), completed: new Set() };
  private readonly signals: () => Signals;
  private readonly bounds: SettingsBounds;
  private settings: Settings;
  private running = false;
  private draining = false;
  private stopTicking: (() => void) | null = null;
  /** The keyset refresh that start() begins: runs wait for it, so a revocation made meanwhile holds. */
  private keysReady: Promise<unknown> = Promise.resolve();
  private readonly publish: Timer;
  private lastPublishedAt = -Infinity;

  constructor(private readonly parts: ControllerParts) {
    this.clock = parts.clock ?? mainThreadClock;
    this.signals = parts.signals ?? (() => NEUTRAL_SIGNALS);
    this.bounds = parts.bounds ?? {};
    this.settings = this.bounded({ ...DEFAULT_SETTINGS, workers: defaultWorkers(parts.maxWorkers) });
    this.governor = new Governor(this.settings);
    this.log = new ActivityLog(() => this.clock.now());
    this.log.on((entry) => this.emit('log', entry));
    const say = this.log.say;
    const { server, store, identity } = parts;
    const progress = new LeaseProgress();
    this.keeper = new LeaseKeeper(server, store, this.clock, identity.deviceId, progress, (lease) => this.notNeeded(lease));
    this.supply = new WorkSupply(server, store, this.keeper, parts.preparer, this.clock, say, {
      request: () => ({ deviceId: identity.deviceId, publicKey: toBase64(identity.publicKey), engines: parts.engines() }),
      // The server holds a newer keyset (a rotation or a revocation): fetch it before these run.
      keysetVersion: (version) => {
        if (version > parts.keys.version()) this.keysReady = parts.keys.refresh();
      },
      onWork: () => this.pump(),
      onChange: () => this.changed(),
    });
    this.credit = new CreditWatch(server, identity.deviceId, this.clock, () => this.changed());
    this.outbox = new ResultOutbox(store, server, identity, this.clock, say, () => this.changed(), () => this.credit.soon());
    this.runner = new TaskRunner(parts.preparer, this.outbox, store, server, identity.deviceId, this.clock, say, {
      keysReady: () => this.keysReady,
      running: () => this.running,
      needed: (lease) => !this.unneeded.has(lease.leaseId),
      cpu: () => this.governor.current().cpu,
      completed: (run) => this.emit('completed', run),
      onChange: () => this.changed(),
      progress,
    });
    this.publish = new Timer(this.clock, () => this.publishNow());
  }

  /** `settings` held within the host's bounds. @throws RangeError when `change` asks to go past them. */
  private bounded(settings: Settings, change: Partial<Settings> = {}): Settings {
    const { maxCpu = 1, whenHidden } = this.bounds;
    if (typeof change.cpu === 'number' && change.cpu > maxCpu) throw new RangeError(`cpu must be at most ${maxCpu} here (the embedding site's limit), got ${change.cpu}`);
    if (whenHidden && change.whenHidden !== undefined && change.whenHidden !== whenHidden) throw new RangeError(`whenHidden must be "${whenHidden}" here, got ${change.whenHidden}`);
    return { ...settings, cpu: Math.min(settings.cpu, maxCpu), ...(whenHidden ? { whenHidden } : {}) };
  }

  /**
   * Picks up what an earlier session left: held leases run first, unsent results are sent, and a
   * donor who had pressed Start (and not Stop) is running again after a reload or a crash.
   */
  async restore(): Promise<void> {
    const { store } = this.parts;
    const saved = await store.savedSettings();
    if (saved) {
      // Setting by setting: one that no longer fits (saved by an older version, or on a device
      // with more cores) keeps its default, the others still apply.
      for (const [key, value] of Object.entries(saved)) {
        try {
          const change = { [key]: key === 'workers' ? Math.min(value as number, this.parts.maxWorkers) : value } as Partial<Settings>;
          this.settings = updatedSettings(this.settings, change, this.parts.maxWorkers);
        } catch {
          // keep the default for this one
        }
      }
      this.settings = this.bounded(this.settings);
    }
    this.evaluate();
    this.supply.restore(await store.leases());
    await this.outbox.restore();
    void store.pruneCompleted(this.clock.now());
    this.credit.soon(0);
    this.changed(true);
    if (await store.wasRunning()) this.start({ remember: true });
  }

  on<K extends keyof ControllerEvents>(event: K, listener: Listener<K>): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  private emit<K extends keyof ControllerEvents>(event: K, value: ControllerEvents[K]): void {
    for (const listener of this.listeners[event]) listener(value);
  }

  /** A line for the activity log from the parts around the controller: the cache, storage, the keyset keeper. */
  say(level: 'info' | 'refused', text: string): void {
    this.log.say(level, text);
  }

  recentLog(): LogEntry[] {
    return this.log.recent();
  }

  status(): Status {
    const signals = this.signals();
    let computed = { work: 0, busyMs: 0 };
    for (const slot of this.slots) {
      const c = slot.computed();
      computed = { work: computed.work + c.work, busyMs: computed.busyMs + c.busyMs };
    }
    const tally = this.runner.tally;
    return {
      running: this.running,
      limits: { cpu: this.settings.cpu, workers: this.settings.workers },
      settings: { ...this.settings },
      activity: this.governor.current(),
      load: this.governor.details(signals),
      charging: signals.battery ? signals.battery.charging : null,
      progress: this.runningProgress(),
      computed,
      counts: { running: this.active.size - this.stopping.size, queued: this.supply.waiting, unsent: this.outbox.unsent, done: tally.done, failed: tally.failed, refused: tally.refused },
      deviceId: this.parts.identity.deviceId,
      project: this.parts.project,
      credit: this.credit.credit,
    };
  }

  /**
   * Tells the page something changed, at most once a second (a render each time; the dashboard
   * renders nothing while hidden, see useStatus). `now`: at once (the donor's own action).
   */
  private changed(now = false): void {
    const since = this.clock.now() - this.lastPublishedAt;
    if (now || since >= STATUS_EVERY_MS) this.publishNow();
    else this.publish.armIfIdle(STATUS_EVERY_MS - since);
  }

  private publishNow(): void {
    this.publish.cancel();
    this.lastPublishedAt = this.clock.now();
    if (this.listeners.status.size) this.emit('status', this.status());
  }

  /**
   * Starts taking on work. `remember`: the donor's own decision, which lasts across reloads until
   * Stop (the page passes it only for a click its guard counted: src/app/start-guard.ts); without
   * it (a script's start(), the embed's card, whose consent is remembered its own way), the start
   * lasts this page's session only.
   */
  start(options: { remember?: boolean } = {}): void {
    if (options.remember) void this.parts.store.setRunning(true);
    if (this.running) return;
    this.running = true;
    this.outbox.release();
    // A key revoked while this device was stopped must not verify the tasks it still holds.
    this.keysReady = this.parts.keys.refreshUnlessFresh(KEYSET_FRESH_MS);
    const { workers, cpu } = this.settings;
    this.log.say('info', `Started: up to ${workers} task${workers === 1 ? '' : 's'} at once, ${Math.round(cpu * 100)}% CPU each.`);
    this.stopTicking ??= every(this.clock, GOVERNOR_TICK_MS, () => this.evaluate());
    this.supply.resume();
    this.evaluate();
    this.changed(true);
    this.pump();
  }

  /**
   * Stops now: running tasks are cut short and kept, to run first on the next start. Finished
   * results are still posted, unless `deliver: false` (consent withdrawn in the embed's card: no
   * request may follow), when they wait in the outbox until the next start.
   */
  stop(options: { deliver?: boolean } = {}): void {
    if (options.deliver === false) this.outbox.hold();
    if (!this.running) return;
    this.running = false;
    void this.parts.store.setRunning(false);
    this.supply.pause();
    this.supply.letLapse();
    this.stopTicking?.();
    this.stopTicking = null;
    for (const [slot, lease] of this.active) {
      this.stopping.add(lease); // computing nothing from now on, though its runner may still be preparing it
      slot.cancel('stopped by the user');
    }
    this.log.say('info', 'Stopped.');
    this.changed(true);
  }

  /** The network may be back (the browser says so, or the page became visible): retry what waited on it. */
  networkMayBeBack(): void {
    this.supply.networkMayBeBack();
    void this.outbox.flush(true);
    this.pump();
  }

  /** Posts the results that are due now (the service worker's Background Sync, a test). */
  flushOutbox(ignoreBackoff = false): Promise<void> {
    return this.outbox.flush(ignoreBackoff);
  }

  /**
   * Lets the running tasks finish and deliver, starting no new ones; Start stays remembered, so
   * the page that loads next (a new version) carries on. Resolves when nothing is running.
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.supply.pause();
    while (this.active.size > 0 || this.supply.busy) await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 100));
    await this.outbox.flush();
  }

  /** @throws RangeError naming the bad value; nothing changes then. */
  setLimits(limits: Partial<Limits>): Limits {
    const { cpu, workers } = this.setSettings({
      ...(limits.cpu === undefined ? {} : { cpu: limits.cpu }),
      ...(limits.workers === undefined ? {} : { workers: limits.workers }),
    });
    return { cpu, workers };
  }

  /** Changes the donor's settings, kept in IndexedDB and applied at once. @throws RangeError naming the bad value; nothing changes then. */
  setSettings(change: Partial<Settings>): Settings {
    this.settings = this.bounded(updatedSettings(this.settings, change, this.parts.maxWorkers), change);
    void this.parts.store.setSettings(this.settings);
    this.evaluate();
    this.changed(true);
    this.pump();
    return { ...this.settings };
  }

  /** Something the policies read has changed (src/scheduler/signals.ts): decide again. */
  signalsChanged(): void {
    this.evaluate();
  }

  /**
   * Asks the governor, and applies its decision to the running tasks (they nap or pause at their
   * next yield) and to the next ones. A change of reason is logged in words.
   */
  private evaluate(): void {
    const previous = this.governor.current();
    const decision = this.governor.evaluate(this.clock.now(), {
      settings: this.settings,
      signals: this.signals(),
      runs: [...this.active].map(([slot, lease]) => ({ run: lease.leaseId, progress: this.measurable ? slot.progress() : null })),
      cores: this.parts.cores,
      hostHiddenRule: this.bounds.whenHidden !== undefined,
      limitName: this.bounds.maxCpu !== undefined && this.settings.cpu >= this.bounds.maxCpu ? "this site's limit" : 'your limit',
    });
    for (const slot of this.slots) slot.setThrottle({ cpu: decision.cpu, paused: decision.state === 'paused' });
    if (decision.reason !== previous.reason) {
      if (this.running) this.log.say('info', decision.reason);
      this.changed();
    }
    if (previous.state === 'paused' && decision.state !== 'paused') this.pump();
  }

  /** Whether the workers' accounting reaches the page (shared memory needs cross-origin isolation). */
  private get measurable(): boolean {
    return globalThis.crossOriginIsolated === true;
  }

  /** Work and computing time of the runs under way, summed over the slots. */
  private runningProgress(): Status['progress'] {
    let work = 0;
    let busyMs = 0;
    let lastPauseAt = 0;
    for (const slot of this.active.keys()) {
      const progress = slot.progress();
      work += progress.work;
      busyMs += progress.busyMs;
      lastPauseAt = Math.max(lastPauseAt, slot.pausedAt());
    }
    return { work, busyMs, lastPauseAt };
  }

  /** Fills free worker slots from the supply, which asks the server when it runs low. */
  private pump(): void {
    if (!this.running || this.draining) return;
    // Paused by a policy: nothing new starts (the running tasks wait at their next yield).
    while (this.governor.current().state !== 'paused' && this.active.size < this.settings.workers) {
      const lease = this.supply.take();
      if (!lease) break;
      void this.runOn(this.freeSlot(), lease);
    }
    this.supply.fill(this.settings.workers);
    this.changed();
  }

  /** A free worker slot; one that could not be made fails its run, so the task is answered as this device's failure. */
  private freeSlot(): TaskSlot {
    let slot = this.slots.find((s) => !this.active.has(s));
    if (!slot) {
      try {
        slot = this.parts.newSlot();
      } catch (error) {
        return brokenSlot(error);
      }
      const decision = this.governor.current();
      slot.setThrottle({ cpu: decision.cpu, paused: decision.state === 'paused' });
      this.slots.push(slot);
    }
    return slot;
  }

  private async runOn(slot: TaskSlot, lease: Lease): Promise<void> {
    this.active.set(slot, lease);
    this.changed();
    let end: Awaited<ReturnType<TaskRunner['run']>>;
    try {
      end = await this.runner.run(slot, lease);
    } finally {
      this.active.delete(slot);
      this.stopping.delete(lease);
    }
    if (end.kind !== 'cut-short' && end.kind !== 'waiting') this.unneeded.delete(lease.leaseId);
    // A device that cannot run tasks stops taking them, rather than answering every lease with its failure.
    this.deviceFailures = end.kind === 'answered' && end.device ? this.deviceFailures + 1 : end.kind === 'answered' ? 0 : this.deviceFailures;
    if (this.deviceFailures >= MAX_DEVICE_FAILURES && this.running) {
      this.log.say('error', `This device could not run ${MAX_DEVICE_FAILURES} tasks in a row; it stops taking work. Reload the page to try again.`);
      this.stop();
    }
    if (end.kind === 'cut-short') this.supply.giveBack(lease);
    else if (end.kind === 'waiting') this.supply.defer(lease, end.why);
    else this.supply.finished(lease, end.kind === 'answered' ? end.ranMs : undefined);
    this.pump();
  }

  /**
   * The server says a held lease's task needs no more results (finished elsewhere, or revoked): a
   * running one is stopped; a waiting one is still checked when its turn comes (a task of a revoked
   * key is refused, and the project hears of it), then let go without running.
   */
  private notNeeded(lease: Lease): void {
    this.unneeded.add(lease.leaseId);
    for (const [slot, running] of this.active) if (running === lease) slot.cancel(NOT_NEEDED);
  }

  /** Leases the server said need no result any more. */
  private readonly unneeded = new Set<string>();
  /** Tasks in a row this device could not run. */
  private deviceFailures = 0;
  /** Runs Stop cut short whose runners have not returned yet (one may be preparing its task): not counted as running. */
  private readonly stopping = new Set<Lease>();
}

/** A slot whose worker could not even be made (a Worker constructor that throws): its run fails with that error. */
function brokenSlot(error: unknown): TaskSlot {
  const idle = { work: 0, busyMs: 0, napMs: 0, pausedMs: 0, steadyWork: 0, steadyBusyMs: 0, speedChecks: 0, speedCheckMs: 0 };
  return {
    run: () => Promise.reject(error instanceof Error ? error : new Error(String(error))),
    setThrottle: () => undefined,
    progress: () => idle,
    computed: () => ({ work: 0, busyMs: 0 }),
    pausedAt: () => 0,
    cancel: () => undefined,
  };
}
