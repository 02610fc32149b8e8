/**
 * Keeps the leases this device holds alive while their tasks make progress: while they are
 * prepared (the bytes of the module and inputs readied so far) and while they run (the work
 * counter). A lease that lapsed while a long module was fetched and compiled was handed to another
 * device (issue #16); a lease renewed without progress could be squatted on for good (issue #13).
 * So a renewal shows the progress made since the last one, and the task server signs nothing off
 * without it (docs/protocol.md, POST /api/leases/renew); TaskServer signs it with the device's key.
 * A lease waiting in the queue shows none and is not renewed: its first term covers the wait.
 *
 * Each lease is looked at every third of its remaining time, at least every minute and at most
 * every 5 s, and renewed then if its progress moved. Offline, renewal fails quietly and is tried
 * again: the server takes a late result anyway while the task still needs one.
 */
import type { RenewalClaim } from '../protocol/device-signing.ts';
import type { Lease, LeasePhase } from '../protocol/schema.ts';
import { Timer, type Clock } from './clock.ts';

export interface LeaseRenewer {
  /** Signs and sends the renewal; the lease's new expiry (epoch ms); rejects with `status` when the server refuses. */
  renewLease(renewal: RenewalClaim): Promise<number>;
}

export interface LeaseRecords {
  /** Records a renewed lease's new expiry, if it is still held. */
  updateLease(lease: Lease): Promise<void>;
}

/** What a lease's task shows now: its phase, and a count that only grows within it. */
export interface Shown {
  phase: LeasePhase;
  progress: number;
}

/**
 * Where each held lease's task stands, as the task runner tells it: preparing (with the bytes
 * readied so far) or running (with a way to read the work counter). Nothing for a lease waiting.
 */
export class LeaseProgress {
  private readonly now = new Map<string, () => Shown>();

  /** The lease's task is being prepared; `readied` bytes so far. */
  preparing(leaseId: string, readied: number): void {
    this.now.set(leaseId, () => ({ phase: 'preparing', progress: readied }));
  }

  /** The lease's task runs; `work` reads its work counter (0 where the page cannot read it). */
  running(leaseId: string, work: () => number): void {
    this.now.set(leaseId, () => ({ phase: 'running', progress: Math.max(0, Math.floor(work())) }));
  }

  /** Nothing is under way for the lease (it waits, was cut short, or ended). */
  idle(leaseId: string): void {
    this.now.delete(leaseId);
  }

  of(leaseId: string): Shown | null {
    return this.now.get(leaseId)?.() ?? null;
  }
}

const MIN_PERIOD_MS = 5_000;
const MAX_PERIOD_MS = 60_000;

export class LeaseKeeper {
  private readonly timers = new Map<string, Timer>();
  /** What the last renewal the server took of each lease showed. */
  private readonly shown = new Map<string, Shown>();

  /**
   * @param onFinishedElsewhere the server says the lease's task needs no more results (410): the
   *   caller drops it, or stops its run.
   */
  constructor(
    private readonly server: LeaseRenewer,
    private readonly records: LeaseRecords,
    private readonly clock: Clock,
    private readonly deviceId: string,
    private readonly progress: LeaseProgress,
    private readonly onFinishedElsewhere: (lease: Lease) => void = () => undefined,
  ) {}

  /** Starts keeping `lease` (the object itself: its expiry is updated in place). Holding it again is a no-op. */
  hold(lease: Lease): void {
    if (this.timers.has(lease.leaseId)) return;
    const timer = new Timer(this.clock, () => void this.renew(lease, timer));
    this.timers.set(lease.leaseId, timer);
    timer.arm(this.periodFor(lease));
  }

  /** Stops renewing: the lease was answered, refused or dropped. */
  release(leaseId: string): void {
    this.timers.get(leaseId)?.cancel();
    this.timers.delete(leaseId);
    this.shown.delete(leaseId);
  }

  releaseAll(): void {
    for (const leaseId of [...this.timers.keys()]) this.release(leaseId);
  }

  /** How many leases are being kept alive. */
  get size(): number {
    return this.timers.size;
  }

  private periodFor(lease: Lease): number {
    return Math.min(MAX_PERIOD_MS, Math.max(MIN_PERIOD_MS, (lease.expiresAt - this.clock.now()) / 3));
  }

  /** Whether `now` shows progress since `last`: a new phase, or more in the same one. */
  private static moved(now: Shown, last: Shown | undefined): boolean {
    return !last || now.phase !== last.phase || now.progress > last.progress;
  }

  private async renew(lease: Lease, timer: Timer): Promise<void> {
    // An expired lease is dead: the server renews it no more (its result is still taken while the task needs one).
    if (lease.expiresAt <= this.clock.now()) return this.release(lease.leaseId);
    const now = this.progress.of(lease.leaseId);
    if (now && LeaseKeeper.moved(now, this.shown.get(lease.leaseId))) {
      try {
        lease.expiresAt = await this.server.renewLease({ leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: this.deviceId, ...now });
        if (this.timers.get(lease.leaseId) === timer) this.shown.set(lease.leaseId, now);
        await this.records.updateLease(lease);
      } catch (error) {
        const status = (error as { status?: number }).status;
        if (status === 410 && this.timers.get(lease.leaseId) === timer) {
          this.release(lease.leaseId);
          this.onFinishedElsewhere(lease);
          return;
        }
        // 409 (the lease is no longer live, is expired or at the end of its life), 400, 403, 404:
        // renewing cannot help, but a late result is still taken while the task needs one, so the
        // work goes on; offline, 429 or 5xx: try again.
        if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
          this.release(lease.leaseId);
          return;
        }
      }
    }
    if (this.timers.get(lease.leaseId) === timer) timer.arm(this.periodFor(lease));
  }
}
