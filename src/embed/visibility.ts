/**
 * The clickjacking guard. A partner page could cover the card with its own content, fade it, or
 * move it under the pointer just before a click, so that a person "agrees" to something they never
 * saw. IntersectionObserver v2 (trackVisibility) tells the frame whether the browser actually
 * painted it unobscured, with no opacity, filter or transform applied by any ancestor page; a
 * click counts only once the whole card has been visible that way for MIN_VISIBLE_MS. Browsers
 * without it (Firefox, Safari today) cannot tell, and the guard lets every trusted click through.
 */

/** How long the card must have been fully and really visible before a click on it counts. */
export const MIN_VISIBLE_MS = 500;

export interface VisibilityGuard {
  /** Whether the browser can tell at all (IntersectionObserver v2). */
  readonly supported: boolean;
  /** Whether a click now may count. */
  allows(now: number): boolean;
  disconnect(): void;
}

/** IntersectionObserver v2's additions, not yet in TypeScript's DOM types. */
interface VisibilityInit extends IntersectionObserverInit {
  trackVisibility: boolean;
  delay: number;
}
interface VisibilityEntry extends IntersectionObserverEntry {
  isVisible: boolean;
}

/** Whether this browser can tell if the card is really visible (IntersectionObserver v2). */
export function canTrackVisibility(): boolean {
  return typeof IntersectionObserver === 'function' && 'isVisible' in IntersectionObserverEntry.prototype;
}

export function guardVisibility(target: Element): VisibilityGuard {
  const supported = canTrackVisibility();
  if (!supported) return { supported, allows: () => true, disconnect: () => undefined };
  /** performance.now() since when the card has been fully visible, or null while it is not. */
  let visibleSince: number | null = null;
  const observer = new IntersectionObserver(
    (entries) => {
      const entry = entries[entries.length - 1] as VisibilityEntry | undefined;
      if (!entry) return;
      const visible = entry.isVisible && entry.intersectionRatio >= 0.99;
      if (visible !== (visibleSince !== null)) visibleSince = visible ? entry.time : null;
    },
    // delay is the least the spec allows with trackVisibility; threshold 1: the whole card.
    { threshold: [1], trackVisibility: true, delay: 100 } as VisibilityInit,
  );
  observer.observe(target);
  return {
    supported,
    allows: (now) => visibleSince !== null && now - visibleSince >= MIN_VISIBLE_MS,
    disconnect: () => observer.disconnect(),
  };
}
