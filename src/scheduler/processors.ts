/**
 * What the browser says about the device's processors, and the default number of tasks at once.
 *
 * `navigator.hardwareConcurrency` is "the number of logical processors potentially available", and
 * browsers round it: WebKit (Safari, every iOS browser, WebKitGTK) reports 4 on any machine with
 * fewer than 8 cores and 8 on any other (WebCore's NavigatorBase::hardwareConcurrency, against
 * fingerprinting), so on a 2-core machine WebKitGTK says 4; Chromium and Firefox report the
 * logical processors, each SMT sibling counted. No browser says which it does, and guessing from
 * the user agent would go stale, so the number is read as what it is: an upper bound the browser
 * offers, not the device's cores. It bounds the donor's choice; the default is half of it.
 */

/** The logical processors this browser reports (at least 1): the most tasks at once a donor may choose. */
export function reportedProcessors(): number {
  return Math.max(1, Math.floor(navigator.hardwareConcurrency) || 1);
}

/**
 * Tasks at once before the donor chooses: half the reported processors, rounded up. Why half:
 * browsers cannot lower a worker's priority as BOINC lowers its processes', so every task competes
 * with the donor's own work at full weight; on the common SMT desktop half the logical processors
 * is one task per physical core, where compute-bound Wasm gains little from a core's second
 * thread; and where the figure is rounded up (WebKit's 4 on 2 cores), half stays within what the
 * machine can have. The donor may raise it to the full reported count.
 */
export function defaultWorkers(reported = reportedProcessors()): number {
  return Math.max(1, Math.ceil(reported / 2));
}
