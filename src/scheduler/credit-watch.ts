/**
 * This device's credit as the server judges its results: asked for a little after results were
 * delivered (one request for a burst of them), and again every half minute while some still wait
 * for other devices to agree (pending turns to validated as quorums form).
 */
import type { DeviceCredit } from '../protocol/schema.ts';
import { Timer, type Clock } from './clock.ts';

export interface CreditSource {
  fetchCredit(deviceId: string): Promise<DeviceCredit | null>;
}

const AFTER_DELIVERY_MS = 2000;
const WHILE_PENDING_MS = 30_000;

export class CreditWatch {
  /** The credit as last reported (null until the server knows this device). */
  credit: DeviceCredit | null = null;
  private readonly timer: Timer;

  constructor(
    private readonly server: CreditSource,
    private readonly deviceId: string,
    clock: Clock,
    private readonly onChange: () => void,
  ) {
    this.timer = new Timer(clock, () => void this.fetch());
  }

  /** Asks after `delayMs`, unless a request is already due sooner. */
  soon(delayMs = AFTER_DELIVERY_MS): void {
    this.timer.armIfIdle(delayMs);
  }

  private async fetch(): Promise<void> {
    try {
      this.credit = await this.server.fetchCredit(this.deviceId);
    } catch {
      return; // offline: the last figures stay
    }
    this.onChange();
    if (this.credit && this.credit.pending > 0) this.soon(WHILE_PENDING_MS);
  }
}
