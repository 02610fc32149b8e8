/**
 * What one device, or one network address, may ask of the server in a while (issue #13: every
 * device route is rate-limited, and what a device can make the server refuse is bounded). Token
 * buckets in memory: a bucket holds up to `burst` requests and refills at `perSecond`; a request
 * that finds it empty is a 429 with Retry-After, and changes nothing.
 *
 * Memory is bounded: at most `maxKeys` buckets, the least recently used dropped first (a dropped
 * bucket starts full again, so an attacker cycling through more keys than that gains at most one
 * burst per key, which the per-address bucket on new keys bounds). In memory, per server process:
 * several servers on one database each apply the limits (docs/deploy.md).
 */
import { HttpError } from './errors.ts';

export interface Rate {
  /** Requests a second, sustained. */
  perSecond: number;
  /** Requests at once, after a quiet while. */
  burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: Rate,
    private readonly now: () => number,
    private readonly maxKeys = 100_000,
  ) {}

  /**
   * Takes one request from `key`'s bucket.
   * @throws HttpError 429 naming `what` and when to try again, when the bucket is empty.
   */
  take(key: string, what: string): void {
    const now = this.now();
    const held = this.buckets.get(key);
    const bucket = held ?? { tokens: this.rate.burst, at: now };
    bucket.tokens = Math.min(this.rate.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate.perSecond);
    bucket.at = now;
    // Most recently used last: the first key is the one to drop.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens < 1) {
      const waitSeconds = Math.ceil((1 - bucket.tokens) / this.rate.perSecond);
      throw new HttpError(429, `${what}: too many requests; try again in ${waitSeconds} s`, waitSeconds);
    }
    bucket.tokens -= 1;
  }
}

/**
 * Results the server refused, counted per device and per lease over a window: a device whose
 * results keep being refused is told to wait (429) before its next body is checked, and a lease
 * takes at most `perLease` refused results (409 after that).
 */
export class Strikes {
  private readonly devices = new Map<string, { n: number; since: number }>();
  private readonly leases = new Map<string, number>();

  constructor(
    private readonly limits: { perDevice: number; perLease: number; windowMs: number },
    private readonly now: () => number,
    private readonly maxKeys = 100_000,
  ) {}

  /** @throws HttpError 429 when the device has had too many results refused lately, 409 when the lease has. */
  check(deviceId: string, leaseId: string): void {
    const device = this.devices.get(deviceId);
    if (device && this.now() - device.since < this.limits.windowMs && device.n >= this.limits.perDevice) {
      const waitSeconds = Math.ceil((device.since + this.limits.windowMs - this.now()) / 1000);
      throw new HttpError(429, `device ${deviceId} had ${device.n} results refused in the last ${this.limits.windowMs / 60_000} minutes; try again in ${waitSeconds} s`, waitSeconds);
    }
    const refused = this.leases.get(leaseId) ?? 0;
    if (refused >= this.limits.perLease) throw new HttpError(409, `lease ${leaseId} had ${refused} results refused: it takes no more`);
  }

  /** Counts a refused result against its device and lease. */
  strike(deviceId: string, leaseId: string): void {
    const now = this.now();
    const device = this.devices.get(deviceId);
    if (!device || now - device.since >= this.limits.windowMs) this.devices.set(deviceId, { n: 1, since: now });
    else device.n++;
    this.leases.set(leaseId, (this.leases.get(leaseId) ?? 0) + 1);
    for (const map of [this.devices, this.leases] as Map<string, unknown>[]) {
      if (map.size > this.maxKeys) map.delete(map.keys().next().value!);
    }
  }
}
