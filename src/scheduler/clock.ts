/**
 * Time for the scheduler's parts: the epoch clock and one-shot timers, handed to each part so that
 * Node tests drive them with a fake clock (test/helpers/fake-clock.ts), and so that in the browser
 * they keep time while the page is hidden.
 *
 * Chromium stretches a hidden page's main-thread timers: to once a second at once, and chained
 * ones to once a minute after five minutes hidden ("intensive throttling"). Timers inside a
 * dedicated worker are not throttled, and the messages a worker posts reach the page promptly, so
 * in the browser the timers come from a small worker (worker/timer-worker.ts); see workerClock().
 */
import type { TimerWorkerRequest } from '../../worker/timer-worker.ts';

export type TimerId = number;

export interface Clock {
  /** Epoch ms. */
  now(): number;
  /** Calls `callback` once, `ms` from now. */
  setTimeout(callback: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
  /** Resolves after the page has had a chance to handle input and paint (a macrotask, never a throttled timer). */
  yield(): Promise<void>;
}

/** Calls `callback` every `ms` until the returned function is called. */
export function every(clock: Clock, ms: number, callback: () => void): () => void {
  let id: TimerId | null = null;
  const arm = () => {
    id = clock.setTimeout(() => {
      arm();
      callback();
    }, ms);
  };
  arm();
  return () => {
    if (id !== null) clock.clearTimeout(id);
    id = null;
  };
}

/** A one-shot timer that can be re-armed: arming it again replaces the pending call. */
export class Timer {
  private id: TimerId | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly callback: () => void,
  ) {}

  get pending(): boolean {
    return this.id !== null;
  }

  /** Calls back `ms` from now, unless armed already (then the earlier call stands). */
  armIfIdle(ms: number): void {
    if (this.id === null) this.arm(ms);
  }

  /** Calls back `ms` from now, replacing any pending call. */
  arm(ms: number): void {
    this.cancel();
    this.id = this.clock.setTimeout(() => {
      this.id = null;
      this.callback();
    }, ms);
  }

  cancel(): void {
    if (this.id !== null) this.clock.clearTimeout(this.id);
    this.id = null;
  }
}

/** Yields through a MessageChannel: a posted message is a task like a timer's, but no browser throttles it. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** The main thread's own timers: fine where nothing is hidden (a test, a worker, Node). */
export const mainThreadClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as TimerId,
  clearTimeout: (id) => clearTimeout(id),
  yield: yieldToEventLoop,
};

/**
 * Timers kept by a dedicated worker, so that a hidden page's work supply, outbox and governor keep
 * their pace (see above). Falls back to the main thread's timers where no worker can be started.
 */
export function workerClock(): Clock {
  let worker: Worker;
  try {
    worker = new Worker(new URL('../../worker/timer-worker.ts', import.meta.url), { type: 'module', name: 'dewgrid-timers' });
  } catch {
    return mainThreadClock;
  }
  const callbacks = new Map<TimerId, () => void>();
  let next = 1;
  worker.onmessage = (event: MessageEvent<TimerId>) => {
    const callback = callbacks.get(event.data);
    callbacks.delete(event.data);
    callback?.();
  };
  return {
    now: () => Date.now(),
    setTimeout(callback, ms) {
      const id = next++;
      callbacks.set(id, callback);
      worker.postMessage({ set: id, ms } satisfies TimerWorkerRequest);
      return id;
    },
    clearTimeout(id) {
      if (callbacks.delete(id)) worker.postMessage({ clear: id } satisfies TimerWorkerRequest);
    },
    yield: yieldToEventLoop,
  };
}
