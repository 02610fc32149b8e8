/**
 * The expiry sweep: every so often, queued tasks whose signed manifest has expired are ended
 * (`expired`), their pending results void, so that they leave the queue, their batch can finish,
 * and an owner following it hears of them. (A lease request sweeps too; a server no device asks
 * would otherwise never end them.) The status page shows when it last ran and what it ended.
 */
import type { Store } from './store/index.ts';

export interface SweepReport {
  /** How often it runs, ms (0: never). */
  intervalMs: number;
  /** Its last run: when, and how many tasks it ended; null before the first. */
  last: { at: number; expired: number } | null;
  /** Tasks it ended since the server started. */
  expiredSinceStart: number;
  /** The last run's error, if it failed (it runs again at the next interval). */
  error: string | null;
}

export class ExpirySweep {
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  private readonly state: SweepReport;

  constructor(
    private readonly store: Store,
    intervalMs: number,
    private readonly now: () => number,
  ) {
    this.state = { intervalMs, last: null, expiredSinceStart: 0, error: null };
  }

  start(): void {
    if (this.state.intervalMs <= 0 || this.timer) return;
    void this.run();
    this.timer = setInterval(() => void this.run(), this.state.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sweep now (one at a time); resolves when it is done. */
  run(): Promise<void> {
    this.running ??= this.store
      .sweepExpired()
      .then(
        (expired) => {
          this.state.last = { at: this.now(), expired };
          this.state.expiredSinceStart += expired;
          this.state.error = null;
        },
        (error: Error) => {
          this.state.error = error.message;
        },
      )
      .finally(() => (this.running = null));
    return this.running;
  }

  report(): SweepReport {
    return { ...this.state, last: this.state.last && { ...this.state.last } };
  }
}
