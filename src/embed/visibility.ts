/**
 * The clickjacking guard's first half (docs/security.md, "Clickjacking"). A partner page could
 * cover the card, fade it, mask it, shrink it, or slide it under the pointer just before a click,
 * so that a person "agrees" to something they never saw. This judges a click on the card:
 *
 * - the card must have been fully in view, and (where IntersectionObserver v2 can tell: Chromium)
 *   unoccluded, with no opacity, filter, backdrop-filter, blend or shrinking transform from any
 *   ancestor, for MIN_VISIBLE_MS before the click and at the click itself: the observer reports at
 *   most every OBSERVER_DELAY_MS, so a click is judged SETTLE_MS later, once a change just before
 *   it would have been reported;
 * - the card must not have moved on the screen for that long: the frame's screen position, from
 *   each pointer event's screen and client coordinates, must be the one at the click since the
 *   pointer came to rest there (a card slid under a resting pointer gets no pointer event before
 *   the click, so nothing vouches for it);
 * - its size and zoom must not have changed for that long, and it must be drawn at least at half
 *   its size (CSS zoom on the iframe is invisible to the observer; it shows in the frame's
 *   devicePixelRatio).
 *
 * What it cannot see: CSS masks (mask-image) and clip-path polygons on the iframe or its
 * ancestors. Chromium 156's observer reports a card masked to 1% opacity, or clipped to a thin
 * outline, as fully visible (measured: its effects check counts opacity, filters, backdrop
 * filters and blend modes, not masks). No browser can prove the card visible, so a click this
 * guard lets through still only opens the second half: a confirmation window on Dewgrid's own
 * origin (confirmation.ts), which the partner cannot style, cover or script.
 */

/** How long the card must have been fully in view, still and unchanged before a click on it counts. */
export const MIN_VISIBLE_MS = 500;
/** The observer's reporting delay: the least the spec allows with trackVisibility. */
export const OBSERVER_DELAY_MS = 100;
/** How long after a click the guard waits before judging it: a change just before the click has been reported by then. */
export const SETTLE_MS = 2 * OBSERVER_DELAY_MS + 50;
/** Below this devicePixelRatio the card is drawn at less than half its CSS size (zoomed out by the page or the browser). */
export const MIN_DEVICE_PIXEL_RATIO = 0.5;
/** Pointer positions that differ by less than this (CSS px) are the same: screen coordinates are rounded. */
const SAME_PLACE_PX = 1;

export type Refusal = 'not-visible' | 'moved' | 'zoomed';
export type Verdict = { ok: true } | { ok: false; why: Refusal };

/** Where the card's frame is on the screen: a pointer event's screenX - clientX, screenY - clientY. */
export interface ScreenOffset {
  x: number;
  y: number;
}

/** A click as the guard judges it. */
export interface ClickSample {
  /** event.timeStamp: the clock of IntersectionObserver entries and of performance.now(). */
  time: number;
  /** Where the frame was on the screen at the click, for a pointer that hovers (a mouse); null for keys and touch, which give no position before the click. */
  offset: ScreenOffset | null;
}

/**
 * What the card has seen of itself, and the judgement of a click from it. No DOM here, so Node
 * tests drive it with the observations an attack would produce; watchVisibility feeds it in the page.
 */
export class VisibilityRecord {
  /** Visibility as reported, oldest first; not visible until the observer says otherwise. */
  private readonly changes: { time: number; visible: boolean }[] = [{ time: -Infinity, visible: false }];
  /** The frame's screen offset in the latest pointer events, and since when it has been there. */
  private offset: ScreenOffset | null = null;
  private offsetSince = Infinity;
  /** When the frame's zoom or size changed, in the last minute. */
  private readonly reshaped: number[] = [];
  private devicePixelRatio = 1;

  sawVisibility(time: number, visible: boolean): void {
    if (this.changes.at(-1)!.visible !== visible) this.changes.push({ time, visible });
    // Only what a click can still ask about is kept.
    while (this.changes.length > 2 && this.changes[1]!.time < time - 60_000) this.changes.shift();
  }

  sawPointer(time: number, offset: ScreenOffset): void {
    if (!this.offset || !samePlace(this.offset, offset)) {
      this.offset = offset;
      this.offsetSince = time;
    }
  }

  sawZoom(time: number, devicePixelRatio: number): void {
    if (devicePixelRatio !== this.devicePixelRatio) this.sawResize(time);
    this.devicePixelRatio = devicePixelRatio;
  }

  /** The frame's size changed (the partner resized the iframe, or the loader did as the card's height changed). */
  sawResize(time: number): void {
    this.reshaped.push(time);
    while (this.reshaped[0]! < time - 60_000) this.reshaped.shift();
  }

  /** Whether the card is in view (as far as this browser can tell) now. */
  get visible(): boolean {
    return this.changes.at(-1)!.visible;
  }

  /** How long the card has been in view at `now`, 0 when it is not. */
  visibleFor(now: number): number {
    const last = this.changes.at(-1)!;
    return last.visible ? now - last.time : 0;
  }

  /**
   * Judges a click SETTLE_MS or more after it: visible from MIN_VISIBLE_MS before it until
   * OBSERVER_DELAY_MS after (what the observer computed then may have been true at the click),
   * not zoomed or resized meanwhile, and, for a hovering pointer, at rest on the card where the
   * click found it.
   */
  judge(click: ClickSample): Verdict {
    const from = click.time - MIN_VISIBLE_MS;
    const until = click.time + OBSERVER_DELAY_MS;
    const before = this.changes.filter((c) => c.time <= from).at(-1);
    const during = this.changes.filter((c) => c.time > from && c.time <= until);
    if (!before?.visible || during.some((c) => !c.visible)) return { ok: false, why: 'not-visible' };
    // Only changes up to the click: the card's own height changes once it answers a click, and the loader follows.
    if (this.devicePixelRatio < MIN_DEVICE_PIXEL_RATIO || this.reshaped.some((t) => t > from && t <= click.time)) return { ok: false, why: 'zoomed' };
    if (click.offset && (!this.offset || !samePlace(this.offset, click.offset) || this.offsetSince > from)) return { ok: false, why: 'moved' };
    return { ok: true };
  }
}

const samePlace = (a: ScreenOffset, b: ScreenOffset) => Math.abs(a.x - b.x) < SAME_PLACE_PX && Math.abs(a.y - b.y) < SAME_PLACE_PX;

/** IntersectionObserver v2's additions, not yet in TypeScript's DOM types. */
interface VisibilityInit extends IntersectionObserverInit {
  trackVisibility: boolean;
  delay: number;
}
interface VisibilityEntry extends IntersectionObserverEntry {
  isVisible?: boolean;
}

/** Whether this browser can tell occlusion and effects apart from being in view (IntersectionObserver v2). */
export function canTrackVisibility(): boolean {
  return typeof IntersectionObserver === 'function' && 'isVisible' in IntersectionObserverEntry.prototype;
}

export interface VisibilityWatch {
  /** Whether IntersectionObserver v2 judges occlusion and effects here (else only being in view). */
  readonly tracksVisibility: boolean;
  readonly record: VisibilityRecord;
  /** Judges a trusted click on the card, SETTLE_MS after it. */
  judge(click: MouseEvent): Promise<Verdict>;
  /** Calls `then` once the card has been in view for MIN_VISIBLE_MS (now, or later); returns a cancel. */
  whenVisible(then: () => void): () => void;
  disconnect(): void;
}

/** Watches `target` (the card) with every signal the frame has about itself, into a VisibilityRecord. */
export function watchVisibility(target: Element): VisibilityWatch {
  const tracksVisibility = canTrackVisibility();
  const record = new VisibilityRecord();
  let inView = false;
  const update = (time: number) => record.sawVisibility(time, inView && document.visibilityState === 'visible');
  const waiting = new Set<() => void>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  const wake = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (waiting.size === 0 || !record.visible) return;
    // The observer may report a change up to its delay late: in view for that much longer.
    const left = MIN_VISIBLE_MS + OBSERVER_DELAY_MS - record.visibleFor(performance.now());
    if (left > 0) {
      timer = setTimeout(wake, left + 10);
      return;
    }
    const due = [...waiting];
    waiting.clear();
    for (const then of due) then();
  };

  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries as VisibilityEntry[]) {
        // The whole card, and, where the browser can tell, really visible.
        inView = entry.intersectionRatio >= 0.99 && (!tracksVisibility || entry.isVisible === true);
        update(entry.time);
      }
      wake();
    },
    { threshold: [0, 0.5, 0.99, 1], ...(tracksVisibility ? { trackVisibility: true, delay: OBSERVER_DELAY_MS } : {}) } as VisibilityInit,
  );
  observer.observe(target);

  const onPageVisibility = () => {
    update(performance.now());
    wake();
  };
  const onPointer = (event: PointerEvent) => {
    if (event.pointerType === 'mouse' && event.isTrusted) record.sawPointer(event.timeStamp, offsetOf(event));
  };
  const onResize = () => record.sawResize(performance.now());
  let resolution: MediaQueryList | null = null;
  const watchZoom = () => {
    record.sawZoom(performance.now(), devicePixelRatio);
    resolution?.removeEventListener('change', watchZoom);
    resolution = matchMedia(`(resolution: ${devicePixelRatio}dppx)`);
    resolution.addEventListener('change', watchZoom);
  };
  record.sawZoom(-Infinity, devicePixelRatio);
  watchZoom();
  document.addEventListener('visibilitychange', onPageVisibility);
  for (const type of ['pointermove', 'pointerover', 'pointerdown'] as const) addEventListener(type, onPointer, true);
  addEventListener('resize', onResize);

  return {
    tracksVisibility,
    record,
    judge: (click) => {
      // A hovering pointer says where the card was; keys (detail 0) and touch say nothing before the click.
      const pointer = click instanceof PointerEvent ? click.pointerType : click.detail > 0 ? 'mouse' : '';
      const sample: ClickSample = { time: click.timeStamp, offset: pointer === 'mouse' ? offsetOf(click) : null };
      return new Promise((resolve) => setTimeout(() => resolve(record.judge(sample)), SETTLE_MS));
    },
    whenVisible(then) {
      waiting.add(then);
      wake();
      return () => waiting.delete(then);
    },
    disconnect() {
      observer.disconnect();
      if (timer) clearTimeout(timer);
      document.removeEventListener('visibilitychange', onPageVisibility);
      for (const type of ['pointermove', 'pointerover', 'pointerdown'] as const) removeEventListener(type, onPointer, true);
      removeEventListener('resize', onResize);
      resolution?.removeEventListener('change', watchZoom);
    },
  };
}

const offsetOf = (event: MouseEvent): ScreenOffset => ({ x: event.screenX - event.clientX, y: event.screenY - event.clientY });
