/**
 * Keeps the leases this device holds alive, from the moment they are taken (while they wait in the
 * queue, while their task is prepared, while it runs) until they are answered or dropped: a lease
 * that lapsed while a long module was fetched and compiled was handed to another device, or to this
 * one again (issue #16). Renewal is this file's alone, so a change of the renew message (signed
 * progress, a hard lifetime) stays here.
 *
 * Each lease is renewed every third of its remaining time, at least every minute and at most every
 * 5 s. Offline, renewal fails quietly and is tried again: the server takes a late result anyway
 * while the task still needs one.
 */
import type { Lease, LeaseRenewal } from '../protocol/schema.ts';
import { Timer, type Clock } from './clock.ts';

export interface LeaseRenewer {
  /** The lease's new expiry (epoch ms); rejects with `status` when the server refuses. */
  renewLease(renewal: LeaseRenewal): Promise<number>;
}

export interface LeaseRecords {
  /** Records a renewed lease's new expiry, if it is still held. */
  updateLease(lease: Lease): Promise<void>;
}

const MIN_PERIOD_MS = 5_000;
const MAX_PERIOD_MS = 60_000;

export class LeaseKeeper {
  private readonly timers = new Map<string, Timer>();

  /**
   * @param onFinishedElsewhere the server says the lease's task needs no more results (410): the
   *   caller drops it, or stops its run.
   */
  constructor(
    private readonly server: LeaseRenewer,
    private readonly records: LeaseRecords,
    private readonly clock: Clock,
    private readonly deviceId: string,
    private readonly onFinishedElsewhere: (lease: Lease) => void = () => undefined,
  ) {}

  /** Starts renewing `lease` (the object itself: its expiry is updated in place). Holding it again is a no-op. */
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

  private async renew(lease: Lease, timer: Timer): Promise<void> {
    try {
      lease.expiresAt = await this.server.renewLease({ leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: this.deviceId });
      await this.records.updateLease(lease);
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 410 && this.timers.get(lease.leaseId) === timer) {
        this.release(lease.leaseId);
        this.onFinishedElsewhere(lease);
        return;
      }
      // 409 (the server no longer counts it live) or 403/404: renewing cannot help, but a late
      // result is still taken while the task needs one, so the work goes on; offline: try again.
      if (status === 409 || status === 403 || status === 404) {
        this.release(lease.leaseId);
        return;
      }
    }
    if (this.timers.get(lease.leaseId) === timer) timer.arm(this.periodFor(lease));
  }
}
