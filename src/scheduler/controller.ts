/**
 * The donor page's controller: leases tasks, prepares them, runs them on a pool of workers,
 * posts the results. Components only render its state; `window.dewgrid` is this object's
 * public face (see README).
 */
import { CHECKPOINT_DIR } from '../protocol/api.ts';
import { isDeterministic, type DeviceCredit, type Lease, type TaskManifest } from '../protocol/schema.ts';
import { outputDigests, resultSigningBytes } from '../protocol/results.ts';
import { toBase64 } from '../protocol/bytes.ts';
import type { KeysetKeeper } from './keyset-keeper.ts';
import type { DeviceIdentity } from '../storage/identity.ts';
import { failedOutcome, type WorkerJob, type WorkerOutcome } from '../protocol/worker-api.ts';
import { REFUSAL_TEXT } from '../protocol/verify.ts';
import { FetchDeferred, TaskPreparer, type ModuleSource, type ReadyTask } from './prepare.ts';
import { TaskServer } from './server-api.ts';
import { runnableEngines } from './engines.ts';
import { RunCancelled, WorkerSlot } from './worker-slot.ts';
import { DEFAULT_SETTINGS, updatedSettings, type Settings } from './policies/settings.ts';
import { batteryPolicy, type BatteryState } from './policies/battery.ts';
import { heatPolicy, INITIAL_HEAT, INITIAL_SLOWDOWN, slowdownPolicy, type HeatState, type SlowdownState } from './policies/heat.ts';
import { fetchAllowance, inUsePolicy, visibilityPolicy } from './policies/page.ts';
import { decide, type Decision } from './policies/governor.ts';
import type { Signals } from './signals.ts';
import type { WorkStore } from '../storage/work-store.ts';
import type { OutboxEntry, StoredSubmission } from '../storage/db.ts';
import type { Engine } from '../protocol/schema.ts';

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

export type LogLevel = 'info' | 'done' | 'error' | 'refused';
export interface LogEntry {
  at: number;
  level: LogLevel;
  text: string;
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

/** A keyset the server confirmed this recently is not asked for again when the donor presses Start. */
const KEYSET_FRESH_MS = 10_000;
/** How long to wait before asking again when the server has no work or cannot be reached. */
const IDLE_POLL_MS = 3000;
/** Work held ahead of the running tasks, so computing goes on through a network outage. */
const BUFFER_MS = 2 * 60 * 1000;
const MAX_BUFFERED_TASKS = 32;
/** Waits between posting attempts of one result; the last repeats. */
const RESULT_RETRY_MS = [1000, 2000, 5000, 15000, 60000];

export class Controller {
  private readonly slots: WorkerSlot[] = [];
  private readonly queue: Lease[] = [];
  private readonly active = new Map<WorkerSlot, Lease>();
  private readonly counts: Counts = { running: 0, queued: 0, unsent: 0, done: 0, failed: 0, refused: 0 };
  private flushing: Promise<void> | null = null;
  /** Leases whose inputs could not be fetched yet; they go back to the queue when the network may be back. */
  private readonly deferred: Lease[] = [];
  /** Deferred leases already explained in the log, so a retry every few seconds does not repeat it. */
  private readonly waitingLogged = new Set<string>();
  private deferredTimer: ReturnType<typeof setTimeout> | null = null;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners: { [K in keyof ControllerEvents]: Set<Listener<K>> } = {
    status: new Set(),
    log: new Set(),
    completed: new Set(),
  };
  private running = false;
  private draining = false;
  private fetching = false;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private settings: Settings;
  private readonly preparer: TaskPreparer;
  /** The policies' states (hysteresis, dwell) and their latest decision. */
  private battery: BatteryState = { paused: false, since: 0 };
  private heat: HeatState = INITIAL_HEAT;
  private slowdown: SlowdownState = INITIAL_SLOWDOWN;
  private decision: Decision;
  private policyTimer: ReturnType<typeof setInterval> | null = null;
  /** Work and busy time of the running tasks at the last policy tick, for the slowdown rate. */
  private lastSample = { work: 0, busyMs: 0, lastPauseAt: 0 };
  private sampledTasks = '';
  /** Moving average of run times, to turn BUFFER_MS into a number of tasks. */
  private averageRunMs = 5000;

  private readonly deviceId: string;
  private credit: DeviceCredit | null = null;
  private creditTimer: ReturnType<typeof setTimeout> | null = null;
  /** The keyset refresh that start() begins: runs wait for it, so a revocation made meanwhile holds. */
  private keysReady: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly server: TaskServer,
    modules: ModuleSource,
    private readonly work: WorkStore,
    private readonly keys: KeysetKeeper,
    private readonly identity: DeviceIdentity,
    private readonly project: string,
    private readonly maxWorkers = Math.max(1, navigator.hardwareConcurrency || 1),
    options: {
      /** The device and page signals the policies read (src/scheduler/signals.ts); neutral when absent. */
      signals?: () => Signals;
      bounds?: SettingsBounds;
      /**
       * The engines work may be asked for, of those this page can run. The embed leaves WASIX out:
       * its runs are not throttled, so no CPU cap would hold for them.
       */
      engines?: readonly Engine[];
    } = {},
  ) {
    this.signals = options.signals ?? (() => ({ battery: null, pressure: null, hidden: false, lastInputAt: null, saveData: false }));
    this.deviceId = identity.deviceId;
    this.preparer = new TaskPreparer(modules, () => keys.taskKeys(), {
      warn: (message) => this.log('info', message),
      fetchLimit: () => fetchAllowance(this.signals().saveData, this.settings),
      refreshKeys: () => keys.refresh(),
      completed: (taskId) => work.completed(taskId),
    });
    this.bounds = options.bounds ?? {};
    this.engines = () => runnableEngines().filter((engine) => !options.engines || options.engines.includes(engine));
    this.settings = this.bounded({ ...DEFAULT_SETTINGS, workers: this.maxWorkers });
    this.decision = decide(this.settings, []);
  }

  private readonly bounds: SettingsBounds;
  private readonly engines: () => Engine[];

  /** `settings` held within the host's bounds. @throws RangeError when `change` asks to go past them. */
  private bounded(settings: Settings, change: Partial<Settings> = {}): Settings {
    const { maxCpu = 1, whenHidden } = this.bounds;
    if (typeof change.cpu === 'number' && change.cpu > maxCpu) throw new RangeError(`cpu must be at most ${maxCpu} here (the embedding site's limit), got ${change.cpu}`);
    if (whenHidden && change.whenHidden !== undefined && change.whenHidden !== whenHidden) throw new RangeError(`whenHidden must be "${whenHidden}" here, got ${change.whenHidden}`);
    return { ...settings, cpu: Math.min(settings.cpu, maxCpu), ...(whenHidden ? { whenHidden } : {}) };
  }

  private readonly signals: () => Signals;

  /**
   * Picks up what an earlier session left: held leases run first, unsent results are sent, and a
   * donor who had pressed Start (and not Stop) is running again after a reload or a crash.
   */
  async restore(): Promise<void> {
    const saved = await this.work.savedSettings();
    if (saved) {
      // Setting by setting: one that no longer fits (saved by an older version, or on a device
      // with more cores) keeps its default, the others still apply.
      for (const [key, value] of Object.entries(saved)) {
        try {
          const change = { [key]: key === 'workers' ? Math.min(value as number, this.maxWorkers) : value } as Partial<Settings>;
          this.settings = updatedSettings(this.settings, change, this.maxWorkers);
        } catch {
          // keep the default for this one
        }
      }
      this.settings = this.bounded(this.settings);
    }
    this.evaluatePolicies();
    const leases = await this.work.leases();
    this.queue.push(...leases);
    this.counts.unsent = (await this.work.outboxSchedule()).count;
    if (leases.length) this.log('info', `Picked up ${leases.length} task${leases.length === 1 ? '' : 's'} left from last time.`);
    this.changed();
    void this.work.pruneCompleted();
    void this.flushOutbox();
    this.refreshCreditSoon(0);
    if (await this.work.wasRunning()) this.start();
  }

  on<K extends keyof ControllerEvents>(event: K, listener: Listener<K>): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  private emit<K extends keyof ControllerEvents>(event: K, value: ControllerEvents[K]): void {
    for (const listener of this.listeners[event]) listener(value);
  }

  /** The newest entries, newest first, for views that open after they were logged. */
  private readonly logEntries: LogEntry[] = [];

  private log(level: LogLevel, text: string): void {
    const entry = { at: Date.now(), level, text };
    this.logEntries.unshift(entry);
    this.logEntries.length = Math.min(this.logEntries.length, 200);
    this.emit('log', entry);
  }

  /** A line for the activity log from the parts around the controller: the cache, storage, the keyset keeper. */
  say(level: 'info' | 'refused', text: string): void {
    this.log(level, text);
  }

  recentLog(): LogEntry[] {
    return [...this.logEntries];
  }

  status(): Status {
    return {
      running: this.running,
      limits: { cpu: this.settings.cpu, workers: this.settings.workers },
      settings: { ...this.settings },
      activity: { ...this.decision },
      progress: this.runningProgress(),
      computed: this.slots.reduce((sum, slot) => {
        const { work, busyMs } = slot.computed();
        return { work: sum.work + work, busyMs: sum.busyMs + busyMs };
      }, { work: 0, busyMs: 0 }),
      counts: { ...this.counts, running: this.active.size, queued: this.queue.length + this.deferred.length },
      deviceId: this.deviceId,
      project: this.project,
      credit: this.credit,
    };
  }

  private changed(): void {
    this.emit('status', this.status());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.work.setRunning(true);
    // A key revoked while this device was stopped must not verify the tasks it still holds.
    this.keysReady = this.keys.refreshUnlessFresh(KEYSET_FRESH_MS);
    this.log('info', `Started: up to ${this.settings.workers} task${this.settings.workers === 1 ? '' : 's'} at once, ${Math.round(this.settings.cpu * 100)}% CPU each.`);
    // Dwell times end and the donor stops using the page with no event: look again every second.
    this.policyTimer ??= setInterval(() => this.evaluatePolicies(), 1000);
    this.evaluatePolicies();
    this.changed();
    this.pump();
  }

  /** Stops now: running tasks are cut short and kept, to run first on the next start. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    void this.work.setRunning(false);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.policyTimer) clearInterval(this.policyTimer);
    this.policyTimer = null;
    for (const slot of [...this.active.keys()]) slot.cancel('stopped by the user');
    this.log('info', 'Stopped.');
    this.changed();
  }

  /** The network may be back (the browser says so, or the page became visible): retry what waited on it. */
  networkMayBeBack(): void {
    if (this.deferredTimer) clearTimeout(this.deferredTimer);
    this.deferredTimer = null;
    this.queue.push(...this.deferred.splice(0));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    void this.flushOutbox(true);
    this.pump();
  }

  private retryDeferredSoon(): void {
    this.deferredTimer ??= setTimeout(() => {
      this.deferredTimer = null;
      this.queue.push(...this.deferred.splice(0));
      this.pump();
    }, IDLE_POLL_MS);
  }

  /**
   * Lets the running tasks finish and deliver, starting no new ones; Start stays remembered, so
   * the page that loads next (a new version) carries on. Resolves when nothing is running.
   */
  async drain(): Promise<void> {
    this.draining = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    while (this.active.size > 0 || this.fetching) await new Promise((resolve) => setTimeout(resolve, 100));
    await this.flushOutbox();
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
    this.settings = this.bounded(updatedSettings(this.settings, change, this.maxWorkers), change);
    void this.work.setSettings(this.settings);
    this.evaluatePolicies();
    this.changed();
    this.pump();
    return { ...this.settings };
  }

  /** Something the policies read has changed (src/scheduler/signals.ts): decide again. */
  signalsChanged(): void {
    this.evaluatePolicies();
  }

  /**
   * Runs every policy on the current signals and applies the decision to the running tasks (they
   * nap or pause at their next yield) and to the next ones. A change of state is logged in words.
   */
  private evaluatePolicies(): void {
    const now = Date.now();
    const signals = this.signals();
    const battery = batteryPolicy(signals.battery, this.settings, this.battery, now);
    this.battery = battery.state;
    const heat = heatPolicy(signals.pressure, this.settings, this.heat, now);
    this.heat = heat.state;
    // Without the Compute Pressure API, heat shows as the same work taking longer: compared within
    // the same running tasks only (another module has another pace).
    const tasks = [...this.active.values()].map((lease) => lease.leaseId).sort().join(' ');
    if (tasks !== this.sampledTasks) {
      this.sampledTasks = tasks;
      this.slowdown = INITIAL_SLOWDOWN;
      this.lastSample = { work: 0, busyMs: 0, lastPauseAt: 0 };
    }
    const sample = this.runningProgress();
    const busy = sample.busyMs - this.lastSample.busyMs;
    const rate = signals.pressure === null && busy > 200 && sample.work >= this.lastSample.work ? (sample.work - this.lastSample.work) / busy : null;
    this.lastSample = sample;
    const slowdown = slowdownPolicy(rate, this.slowdown);
    this.slowdown = slowdown.state;
    const decision = decide(this.settings, [
      battery.verdict,
      heat.verdict,
      slowdown.verdict,
      visibilityPolicy(signals.hidden, this.settings, this.bounds.whenHidden !== undefined),
      inUsePolicy(signals.lastInputAt, this.settings, now),
    ], this.bounds.maxCpu !== undefined && this.settings.cpu >= this.bounds.maxCpu ? "this site's limit" : 'your limit');
    const previous = this.decision;
    this.decision = decision;
    for (const slot of this.slots) slot.setThrottle({ cpu: decision.cpu, paused: decision.state === 'paused' });
    if (decision.reason !== previous.reason) {
      if (this.running) this.log('info', decision.reason);
      this.changed();
    }
    if (previous.state === 'paused' && decision.state !== 'paused') this.pump();
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

  /** Fills free worker slots from the local queue, asking the server when the queue is empty. */
  private pump(): void {
    if (!this.running || this.draining) return;
    // Paused by a policy: nothing new starts (the running tasks wait at their next yield).
    while (this.decision.state !== 'paused' && this.active.size < this.settings.workers && this.queue.length > 0) {
      const lease = this.queue.shift()!;
      // A lease that lapsed while it waited (say, across a long stop) has been or will be given to another device.
      if (lease.expiresAt <= Date.now()) continue;
      void this.runLease(this.freeSlot(), lease);
    }
    const held = this.active.size + this.queue.length + this.deferred.length;
    const buffered = Math.min(MAX_BUFFERED_TASKS, Math.max(this.settings.workers, Math.ceil(BUFFER_MS / this.averageRunMs)));
    const wanted = Math.min(64, this.settings.workers + buffered - held);
    if (wanted > 0 && !this.fetching && !this.idleTimer) void this.fetchWork(wanted);
    this.changed();
  }

  private freeSlot(): WorkerSlot {
    const busy = new Set(this.active.keys());
    let slot = this.slots.find((s) => !busy.has(s));
    if (!slot) {
      slot = new WorkerSlot();
      slot.setThrottle({ cpu: this.decision.cpu, paused: this.decision.state === 'paused' });
      this.slots.push(slot);
    }
    return slot;
  }

  private async fetchWork(max: number): Promise<void> {
    this.fetching = true;
    let leases: Lease[] = [];
    try {
      const response = await this.server.requestWork({ deviceId: this.deviceId, publicKey: toBase64(this.identity.publicKey), engines: this.engines(), max });
      leases = response.leases;
      // The server holds a newer keyset (a rotation or a revocation): fetch it before these run.
      if (response.keysetVersion > this.keys.version()) this.keysReady = this.keys.refresh();
    } catch (error) {
      this.log('error', `Could not reach the task server: ${(error as Error).message}`);
    } finally {
      this.fetching = false;
    }
    if (leases.length) {
      // Held durably before anything runs: a reload or a crash picks them up again.
      await this.work.addLeases(leases);
      this.queue.push(...leases);
      // Fetch and verify their modules and inputs now, while the network is there: one at a time,
      // yielding between them, so a burst of signature checks never holds the page's main thread.
      void (async () => {
        for (const lease of leases) {
          await yieldToEventLoop();
          await this.preparer.prefetch(lease).catch(() => undefined);
        }
      })();
    }
    if (leases.length === 0 && this.running) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.pump();
      }, IDLE_POLL_MS);
    }
    this.pump();
  }

  private async runLease(slot: WorkerSlot, lease: Lease): Promise<void> {
    this.active.set(slot, lease);
    this.changed();
    const name = `${lease.task.manifest.name} ${lease.task.manifest.taskId}`;
    try {
      await yieldToEventLoop(); // slots starting together verify their envelopes in separate tasks
      await this.keysReady;
      const prepared = await this.preparer.prepare(lease);
      if (prepared.kind === 'refused') {
        this.counts.refused++;
        this.log('refused', `Refused ${name}: ${REFUSAL_TEXT[prepared.reason]} (${prepared.detail}).`);
        await this.work.dropLease(lease.leaseId);
        // The task id the envelope named: a malformed one cannot be reported under its own.
        const taskId = /^[A-Za-z0-9_-]{1,64}$/.test(String(lease.task?.manifest?.taskId)) ? lease.task.manifest.taskId : 'unreadable';
        await this.server
          .reportRefusal({ kind: 'task', leaseId: lease.leaseId, taskId, deviceId: this.deviceId, reason: prepared.reason, detail: prepared.detail.slice(0, 2000) })
          .catch((error: Error) => this.log('error', `Could not report the refusal: ${error.message}`));
        return;
      }
      if (prepared.kind === 'failed') {
        const outcome = failedOutcome(prepared.code, prepared.message, 0);
        await this.finish(lease, prepared.manifest, outcome, prepared.fetchMs, prepared.compileMs);
        return;
      }
      if (!this.running) throw new RunCancelled('stopped');
      const job = jobOf(prepared, this.decision.cpu);
      // Checkpoints are kept only for tasks that ask for them by preopening the folder; a run cut
      // off earlier resumes from the files it left (docs/protocol.md, "Checkpoints").
      const saving: Promise<void>[] = [];
      let keepCheckpoint: ((file: { path: string; data: Uint8Array }) => void) | undefined;
      if (prepared.manifest.preopens.includes(CHECKPOINT_DIR)) {
        const checkpoint = await this.work.checkpoint(lease.leaseId);
        if (checkpoint.length) {
          job.files = [...job.files.filter((f) => !checkpoint.some((c) => c.path === f.path)), ...checkpoint];
          this.log('info', `Resuming ${name} from its checkpoint.`);
        }
        keepCheckpoint = (file) => void saving.push(this.work.saveCheckpoint(lease.leaseId, file));
      }
      const stopRenewing = this.keepLeaseAlive(lease, slot);
      const outcome = await slot.run(job, prepared.manifest.limits.wallTimeMs, keepCheckpoint).finally(stopRenewing);
      await Promise.allSettled(saving);
      await this.finish(lease, prepared.manifest, outcome, prepared.fetchMs, prepared.compileMs);
      if (!outcome.error) this.averageRunMs = 0.8 * this.averageRunMs + 0.2 * Math.max(1, outcome.runMs);
    } catch (error) {
      if (error instanceof RunCancelled) {
        this.queue.unshift(lease); // run again first on the next start, while the lease lasts
      } else if (error instanceof FetchDeferred || isTransient(error)) {
        // Its inputs could not be fetched (no network, server down, the data saver): keep it and try again later.
        this.deferred.push(lease);
        if (!this.waitingLogged.has(lease.leaseId)) {
          this.waitingLogged.add(lease.leaseId);
          this.log('info', error instanceof FetchDeferred ? `Waiting to run ${name}: ${error.message}.` : `Waiting for the network to fetch what ${name} needs.`);
        }
        this.retryDeferredSoon();
      } else {
        this.counts.failed++;
        this.log('error', `Could not run ${name}: ${(error as Error).message}`);
      }
    } finally {
      this.active.delete(slot);
      this.pump();
    }
  }

  /**
   * Renews a running task's lease well before it lapses, so a long task is not handed to
   * another device meanwhile. Offline, renewal fails quietly: the server takes a late result
   * anyway while the task still needs one.
   */
  private keepLeaseAlive(lease: Lease, slot: WorkerSlot): () => void {
    const period = Math.min(60_000, Math.max(5_000, (lease.expiresAt - Date.now()) / 3));
    // Renewal shows progress, signed: the run's work counter, which must have moved since the last one.
    let shown = -1;
    const timer = setInterval(() => {
      const progress = Math.floor(slot.progress().work);
      if (progress <= shown) return;
      shown = progress;
      this.server
        .renewLease({ leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: this.deviceId, phase: 'running', progress })
        .then((expiresAt) => {
          lease.expiresAt = expiresAt;
          return this.work.updateLease(lease);
        })
        .catch(() => undefined);
    }, period);
    return () => clearInterval(timer);
  }

  private async finish(lease: Lease, manifest: TaskManifest, outcome: WorkerOutcome, fetchMs: number, compileMs: number): Promise<void> {
    const claim = {
      leaseId: lease.leaseId,
      taskId: manifest.taskId,
      deviceId: this.deviceId,
      exitCode: outcome.exitCode,
      truncated: outcome.truncated,
      error: outcome.error,
      timings: { fetchMs: round(fetchMs), compileMs: round(compileMs), runMs: round(outcome.runMs) },
      work: outcome.work,
    };
    // Signed over the outputs' hashes (made in the worker): the server checks them against what it receives.
    const outputs = outcome.digests ?? (await outputDigests(outcome));
    const signature = toBase64(await this.identity.sign(resultSigningBytes({ ...claim, outputs })));
    const submission: StoredSubmission = {
      ...claim,
      encoding: 'bytes',
      stdout: outcome.blobs.stdout,
      stderr: outcome.blobs.stderr,
      files: outcome.files.map((f, i) => ({ path: f.path, data: outcome.blobs.files[i]! })),
      signature,
    };
    const name = `${manifest.name} ${manifest.taskId}`;
    if (outcome.error) {
      this.counts.failed++;
      this.log('error', `${name} failed: ${outcome.error.code}: ${outcome.error.message}`);
    } else {
      this.counts.done++;
      this.log('done', `${name} finished in ${Math.round(outcome.runMs)} ms with exit code ${outcome.exitCode}.`);
      this.emit('completed', { manifest, outcome });
    }
    await this.work.finish(submission, manifest.expiresAt);
    this.counts.unsent++;
    void this.flushOutbox();
  }

  /**
   * Posts every result in the outbox that is due. One flush at a time; called on start, after
   * each result, when the network comes back and when the page becomes visible.
   */
  flushOutbox(ignoreBackoff = false): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushDue(ignoreBackoff).finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  /** @param ignoreBackoff post every waiting result now (the network just came back), not only those due. */
  private async flushDue(ignoreBackoff: boolean): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const entry of await this.work.dueResults(ignoreBackoff ? Infinity : Date.now())) {
      if (!(await this.post(entry))) break; // the server is unreachable: the rest would fail the same way
    }
    // Read again, from keys only: results may have arrived while this flush was posting.
    const { count, nextAttemptAt } = await this.work.outboxSchedule();
    this.counts.unsent = count;
    this.changed();
    if (nextAttemptAt !== null) {
      this.flushTimer = setTimeout(() => void this.flushOutbox(), Math.max(250, nextAttemptAt - Date.now()));
    }
  }

  /**
   * Asks the server for this device's credit a little after results were delivered (one request
   * for a burst of them); the server validates them as quorums form, so pending turns to validated later.
   */
  private refreshCreditSoon(delayMs = 2000): void {
    if (this.creditTimer) return;
    this.creditTimer = setTimeout(() => {
      this.creditTimer = null;
      this.server.fetchCredit(this.deviceId).then(
        (credit) => {
          this.credit = credit;
          this.changed();
          // Results wait for other devices to agree with them: look again while some are pending.
          if (credit && credit.pending > 0) this.refreshCreditSoon(30_000);
        },
        () => undefined, // offline: the last figures stay
      );
    }, delayMs);
  }

  /** Posts one result; false when the server could not be reached (it stays in the outbox). */
  private async post(entry: OutboxEntry): Promise<boolean> {
    try {
      await this.server.submitResult(entry.submission);
      await this.work.delivered(entry.leaseId);
      this.refreshCreditSoon();
      return true;
    } catch (error) {
      const status = (error as { status?: number }).status ?? 0;
      // A 4xx other than 408/429 is the server's ruling on this result: posting again cannot change it.
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        this.log('error', `The server did not take the result of ${entry.submission.taskId}: ${(error as Error).message}`);
        await this.work.delivered(entry.leaseId);
        return true;
      }
      const wait = RESULT_RETRY_MS[Math.min(entry.attempts, RESULT_RETRY_MS.length - 1)]!;
      await this.work.retryLater(entry, Date.now() + wait);
      return false;
    }
  }
}

function jobOf(task: ReadyTask, cpu: number): WorkerJob {
  const m = task.manifest;
  return {
    taskId: m.taskId,
    engine: m.engine,
    module: task.module,
    ...(task.moduleBytes ? { moduleBytes: task.moduleBytes } : {}),
    args: m.args,
    env: m.env,
    stdin: task.stdin,
    files: task.files,
    preopens: m.preopens,
    limits: { memoryBytes: m.limits.memoryBytes, outputBytes: m.limits.outputBytes },
    cpu,
    deterministic: isDeterministic(m),
  };
}

/** Lets the page handle input and paint before the next piece of work. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A failure of the network or the server, as opposed to a verdict on the task. */
function isTransient(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch() could not reach the server
  const status = (error as { status?: number }).status;
  return status === 0 || status === 408 || status === 429 || (typeof status === 'number' && status >= 500);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
