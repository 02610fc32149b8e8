/**
 * The dashboard chart's figures: once a second the controller's running totals (`status().computed`:
 * work in probes and computing time, which only ever grow) are sampled and turned into rates over
 * the interval since the last sample. Kept here, outside the components, so the history keeps
 * growing whatever is on screen and a re-render never restarts it; the last few minutes are kept.
 */
import type { Status } from '../scheduler/controller.ts';
import { canShareMemory } from '../protocol/shared-memory.ts';

export interface ProgressSample {
  /** When the interval ended, epoch ms. */
  at: number;
  /** How long the interval was, ms (about a second; longer while the browser throttles a hidden page's timers). */
  durationMs: number;
  /** Probes the tasks executed per second over the interval: work counted the same on every device. */
  workPerSecond: number;
  /** The tasks' computing time over the interval, as a share of all the processors the browser reports (0 to 1). */
  cpuShare: number;
}

export const SAMPLE_INTERVAL_MS = 1000;
export const HISTORY_MS = 5 * 60 * 1000;

type Listener = (samples: readonly ProgressSample[]) => void;

export class ProgressHistory {
  private samples: ProgressSample[] = [];
  /** The previous totals, and when they were read. */
  private previous: { now: number; work: number; busyMs: number } | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly listeners = new Set<Listener>();

  /**
   * @param read the controller's status (only `computed` is read)
   * @param processors the logical processors the browser reports (src/scheduler/processors.ts: a
   *   rounded figure in some browsers, not the device's cores): the CPU share is of all of them
   * @param now epoch ms from the monotonic clock (a change of the system time does not bend the
   *   intervals); tests pass their own
   */
  constructor(
    private readonly read: () => Pick<Status, 'computed'>,
    readonly processors: number,
    private readonly now: () => number = () => performance.timeOrigin + performance.now(),
    /** Whether anyone can see the chart: a hidden page keeps sampling (a longer interval, as the browser throttles it) but renders nothing. */
    private readonly visible: () => boolean = () => globalThis.document?.visibilityState !== 'hidden',
  ) {}

  /**
   * Whether the figures mean anything: running tasks report them through memory shared with their
   * worker, which needs a page that can share memory (src/protocol/shared-memory.ts: tested, not
   * assumed from cross-origin isolation). Elsewhere the chart says so rather than drawing zeros.
   */
  readonly measurable = canShareMemory();

  start(): void {
    this.timer ??= setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    globalThis.document?.addEventListener('visibilitychange', this.shown);
    this.sample();
  }

  /** Shown again: one render with what was sampled meanwhile. */
  private readonly shown = () => {
    if (this.visible()) this.notify();
  };

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    globalThis.document?.removeEventListener('visibilitychange', this.shown);
  }

  /** Oldest first, at most HISTORY_MS of them. */
  current(): readonly ProgressSample[] {
    return this.samples;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the totals once (the timer calls this every SAMPLE_INTERVAL_MS). */
  sample(): void {
    const now = this.now();
    const { work, busyMs } = this.read().computed;
    const previous = this.previous;
    this.previous = { now, work, busyMs };
    if (!previous || now <= previous.now) return;
    const elapsedMs = now - previous.now;
    const sample: ProgressSample = {
      at: now,
      durationMs: elapsedMs,
      workPerSecond: Math.max(0, work - previous.work) / (elapsedMs / 1000),
      cpuShare: Math.min(1, Math.max(0, busyMs - previous.busyMs) / elapsedMs / this.processors),
    };
    // A new array each time: subscribers (a hook's state) see a change.
    this.samples = [...this.samples.filter((s) => s.at > now - HISTORY_MS), sample];
    if (this.visible()) this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener(this.samples);
  }
}
