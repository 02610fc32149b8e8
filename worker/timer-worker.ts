/**
 * The page's timers, kept in a dedicated worker: a worker's timers are not throttled when the page
 * is hidden, and each one that is due is posted back as a message, which reaches a hidden page
 * promptly (src/scheduler/clock.ts, workerClock). It computes nothing.
 */

/** What the page asks: a timer by its id, due `ms` from now, or to forget one. The answer is the id of a timer that is due. */
export type TimerWorkerRequest = { set: number; ms: number } | { clear: number };

const timers = new Map<number, ReturnType<typeof setTimeout>>();

self.onmessage = (event: MessageEvent<TimerWorkerRequest>) => {
  const request = event.data;
  if ('clear' in request) {
    clearTimeout(timers.get(request.clear));
    timers.delete(request.clear);
    return;
  }
  timers.set(
    request.set,
    setTimeout(() => {
      timers.delete(request.set);
      self.postMessage(request.set);
    }, request.ms),
  );
};
