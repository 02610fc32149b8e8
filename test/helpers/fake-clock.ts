/**
 * A clock for the scheduler's parts in Node (src/scheduler/clock.ts): time moves only when a test
 * says so, and timers fire in order as it passes, with the promises they start settled in between.
 */
import type { Clock, TimerId } from '../../src/scheduler/clock.ts';

/**
 * Lets every pending promise chain run, and the work Node does off the main thread for them
 * (WebCrypto's hashing and signing, on libuv's pool): some rounds of the event loop, each with a
 * real millisecond for the pool to answer in.
 */
export async function settle(rounds = 6): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setTimeout(resolve, i === rounds - 1 ? 2 : 0));
  }
}

export class FakeClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<TimerId, { at: number; callback: () => void }>();

  constructor(start = Date.UTC(2026, 11, 1)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerId {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.timers.delete(id);
  }

  yield(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Timers waiting, soonest first (ms from now). */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Moves time on by `ms`, firing each timer when its moment comes, and settling what it starts. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (;;) {
      let due: [TimerId, { at: number; callback: () => void }] | null = null;
      for (const entry of this.timers) if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
      await settle(2);
    }
    this.time = end;
    await settle();
  }
}

/**
 * Waits (in real time, at most `timeoutMs`) until `condition` holds, letting promise chains and
 * Node's thread pool (WebCrypto) run meanwhile; the fake clock does not move.
 */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`until: still false after ${timeoutMs} ms: ${condition.toString()}`);
    await settle(1);
  }
}
