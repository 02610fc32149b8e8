/**
 * The work this device holds: leases asked of the server ahead of need, kept durably before
 * anything runs, renewed while their tasks prepare and run (lease-keeper.ts), their modules fetched and
 * verified while the network is there, and handed out oldest first. About two minutes of work is
 * held ahead of the running tasks (at least one task per worker, at most 32), so computing goes on
 * through a network outage; a task whose inputs cannot be fetched waits for the network.
 *
 * Every wait is on the injected clock (clock.ts), so a hidden page keeps its pace.
 */
import type { Lease, WorkRequest, WorkResponse } from '../protocol/schema.ts';
import type { Say } from './activity-log.ts';
import { Timer, type Clock } from './clock.ts';
import type { LeaseKeeper } from './lease-keeper.ts';

export interface WorkSource {
  requestWork(request: WorkRequest): Promise<WorkResponse>;
}

export interface LeaseStore {
  addLeases(leases: Lease[]): Promise<void>;
  /** A lease that ended without a result: forget it and its checkpoint. */
  dropLease(leaseId: string): Promise<void>;
  /** The tasks whose results from this device still wait in the outbox. */
  unsentTaskIds(): Promise<Set<string>>;
}

export interface Prefetcher {
  /** Loads and verifies a lease's module and inputs ahead of its run. */
  prefetch(lease: Lease): Promise<void>;
}

/** How long to wait before asking again when the server has no work or cannot be reached. */
export const IDLE_POLL_MS = 3000;
/** Work held ahead of the running tasks, so computing goes on through a network outage. */
export const BUFFER_MS = 2 * 60 * 1000;
export const MAX_BUFFERED_TASKS = 32;

export interface SupplyOptions {
  /** The work request but `max`: device, key, engines. */
  request: () => Omit<WorkRequest, 'max'>;
  /** The server holds keyset `version`: fetch it if it is newer than the one held. */
  keysetVersion?: (version: number) => void;
  /** New work arrived, or waiting work may run now. */
  onWork?: () => void;
  /** The queue changed. */
  onChange?: () => void;
}

export class WorkSupply {
  /** Leases ready to run, oldest first. */
  private readonly queue: Lease[] = [];
  /** Leases whose inputs could not be fetched yet; they go back to the queue when the network may be back. */
  private readonly deferred: Lease[] = [];
  /** Leases handed out to run. */
  private readonly taken = new Set<Lease>();
  /** Deferred leases already explained in the log, so a retry every few seconds does not repeat it. */
  private readonly waitingLogged = new Set<string>();
  private fetching = false;
  private unreachable = false;
  private readonly idle: Timer;
  private readonly retryDeferred: Timer;
  /** Moving average of run times, to turn BUFFER_MS into a number of tasks. */
  private averageRunMs = 5000;

  constructor(
    private readonly server: WorkSource,
    private readonly store: LeaseStore,
    private readonly keeper: LeaseKeeper,
    private readonly prefetcher: Prefetcher,
    private readonly clock: Clock,
    private readonly say: Say,
    private readonly options: SupplyOptions,
  ) {
    this.idle = new Timer(clock, () => this.options.onWork?.());
    this.retryDeferred = new Timer(clock, () => {
      this.queue.push(...this.deferred.splice(0));
      this.changed();
      this.options.onWork?.();
    });
  }

  /** Leases kept from an earlier session: they run first (and are renewed again from the next start, resume()). */
  restore(leases: Lease[]): void {
    this.queue.push(...leases);
    if (leases.length) this.say('info', `Picked up ${leases.length} task${leases.length === 1 ? '' : 's'} left from last time.`);
    this.changed();
  }

  /** Leases waiting to run (deferred ones included). */
  get waiting(): number {
    return this.queue.length + this.deferred.length;
  }

  /** Whether a request for work is under way. */
  get busy(): boolean {
    return this.fetching;
  }

  /**
   * The next lease to run, or null: the oldest still live, else the oldest that lapsed. A lease
   * that lapsed while it waited is still run, after the live ones: the server takes its result
   * while the task needs one, and never leases that task to this device again, so this is its one
   * chance here (another device may have it meanwhile). One whose envelope says its task expired
   * is handed out too: the envelope is not verified yet, so the runner's checks refuse it
   * (`expired-task`, or what else is wrong with it) and the server hears why.
   */
  take(): Lease | null {
    const now = this.clock.now();
    const live = this.queue.findIndex((l) => l.expiresAt > now);
    const next = this.queue.splice(live === -1 ? 0 : live, 1)[0];
    if (!next) return null;
    this.taken.add(next);
    this.changed();
    return next;
  }

  /** A taken lease whose run was cut short (stopped, paused where it cannot pause in place): it runs first next time. */
  giveBack(lease: Lease): void {
    this.taken.delete(lease);
    this.queue.unshift(lease);
    this.changed();
  }

  /** A taken lease whose inputs cannot be fetched now: it waits, and is tried again in a while or when the network is back. */
  defer(lease: Lease, why: string): void {
    this.taken.delete(lease);
    this.deferred.push(lease);
    if (!this.waitingLogged.has(lease.leaseId)) {
      this.waitingLogged.add(lease.leaseId);
      this.say('info', why);
    }
    this.retryDeferred.armIfIdle(IDLE_POLL_MS);
    this.changed();
  }

  /** A taken lease that ended: answered (its result is in the outbox), refused, or dropped. */
  finished(lease: Lease, ranMs?: number): void {
    this.taken.delete(lease);
    this.waitingLogged.delete(lease.leaseId);
    this.keeper.release(lease.leaseId);
    if (ranMs !== undefined) this.averageRunMs = 0.8 * this.averageRunMs + 0.2 * Math.max(1, ranMs);
    this.changed();
  }

  /** The network may be back: what waited on it is tried again, and the server asked at once. */
  networkMayBeBack(): void {
    this.retryDeferred.cancel();
    this.idle.cancel();
    this.queue.push(...this.deferred.splice(0));
    this.changed();
  }

  /** Stops asking for work (Stop, drain); held leases stay. */
  pause(): void {
    this.idle.cancel();
  }

  /**
   * Stop: the held leases stay on the device, to run first on the next start, but are no longer
   * renewed: a donor who does not come back must not keep tasks from other devices. They lapse on
   * the server unless renewed again in time (resume()); lapsed ones run after the live ones.
   */
  letLapse(): void {
    this.keeper.releaseAll();
  }

  /** Start again: every lease still held is renewed again. */
  resume(): void {
    for (const lease of [...this.queue, ...this.deferred, ...this.taken]) this.keeper.hold(lease);
  }

  /**
   * Asks the server for more when the work held is below the buffer for `workers` tasks at once
   * (unless a request is under way, or the last one found nothing a moment ago).
   */
  fill(workers: number): void {
    const held = this.queue.length + this.deferred.length + this.taken.size;
    const buffered = Math.min(MAX_BUFFERED_TASKS, Math.max(workers, Math.ceil(BUFFER_MS / this.averageRunMs)));
    const wanted = Math.min(64, workers + buffered - held);
    if (wanted > 0 && !this.fetching && !this.idle.pending) void this.fetch(wanted);
  }

  private async fetch(max: number): Promise<void> {
    this.fetching = true;
    let leases: Lease[] = [];
    try {
      const response = await this.server.requestWork({ ...this.options.request(), max });
      leases = response.leases;
      this.unreachable = false;
      this.options.keysetVersion?.(response.keysetVersion);
    } catch (error) {
      // Said once per outage, not on every retry.
      if (!this.unreachable) this.say('error', `Could not reach the task server: ${(error as Error).message}`);
      this.unreachable = true;
    } finally {
      this.fetching = false;
    }
    const fresh = await this.acceptNew(leases);
    if (fresh.length) {
      // Held durably before anything runs: a reload or a crash picks them up again.
      await this.store.addLeases(fresh);
      for (const lease of fresh) this.keeper.hold(lease);
      this.queue.push(...fresh);
      this.changed();
      void this.prefetchAll(fresh);
    } else {
      this.idle.arm(IDLE_POLL_MS);
    }
    this.options.onWork?.();
  }

  /**
   * The leases that are new work. A lease for a task this device holds already (an earlier lease
   * lapsed on the server, which leased the task again) is taken over by the held one, which then
   * answers under the new lease; one for a task whose result waits in the outbox is let go
   * quietly. Neither is refused: a device never calls its own lease a replay.
   */
  private async acceptNew(leases: Lease[]): Promise<Lease[]> {
    const fresh: Lease[] = [];
    if (leases.length === 0) return fresh;
    const held = [...this.queue, ...this.deferred, ...this.taken];
    const unsent = await this.store.unsentTaskIds();
    for (const lease of leases) {
      const taskId = lease.task?.manifest?.taskId;
      const same = held.find((h) => h.task.manifest.taskId === taskId && h.leaseId !== lease.leaseId);
      if (same) {
        const old = same.leaseId;
        this.keeper.release(old);
        await this.store.dropLease(old).catch(() => undefined);
        same.leaseId = lease.leaseId;
        same.expiresAt = lease.expiresAt;
        await this.store.addLeases([same]);
        this.keeper.hold(same);
        this.say('info', `The project leased ${same.task.manifest.name} ${taskId} to this device again; it carries on under the new lease.`);
      } else if (typeof taskId === 'string' && unsent.has(taskId)) {
        this.say('info', `The project leased ${lease.task.manifest.name} ${taskId} again while this device's result for it waits to be sent; it will be sent instead.`);
      } else {
        fresh.push(lease);
      }
    }
    return fresh;
  }

  /** One at a time, yielding between them, so a burst of signature checks never holds the page's main thread. */
  private async prefetchAll(leases: Lease[]): Promise<void> {
    for (const lease of leases) {
      await this.clock.yield();
      await this.prefetcher.prefetch(lease).catch(() => undefined);
    }
  }

  private forget(lease: Lease): void {
    this.keeper.release(lease.leaseId);
    void this.store.dropLease(lease.leaseId).catch(() => undefined);
  }

  private changed(): void {
    this.options.onChange?.();
  }
}
