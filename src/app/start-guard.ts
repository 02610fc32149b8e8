/**
 * Start is the donor's decision, and it lasts: pressed once, the page computes after every reload
 * until Stop (issue #13, item 11). A page that sends the donor here (a link, window.open, a
 * navigation) could have the donor's next click land on Start before they saw it: opened under the
 * pointer, or moved there just before the click. So a click on Start counts only when it is
 * trusted (a person's, not a script's) and when, for MIN_VISIBLE_MS before it, the page has been
 * visible and focused and the button in view, still, and (where the browser can tell,
 * IntersectionObserver v2) uncovered: the embed card's rule (src/embed/visibility.ts).
 *
 * `window.dewgrid.start()` (kiosk and lab operators) starts the page too, but only for the page's
 * session: a script's Start never survives a reload.
 */
import { guardVisibility, MIN_VISIBLE_MS } from '../embed/visibility.ts';

export { MIN_VISIBLE_MS };

/** What a click's verdict rests on: each `since` is performance.now() from when it last became true, null while it is not. */
export interface ClickFacts {
  trusted: boolean;
  now: number;
  /** The page visible (not in a background tab or minimised). */
  shownSince: number | null;
  /** The page's window focused. */
  focusedSince: number | null;
  /** The whole button in the viewport, where it was when this began. */
  stillSince: number | null;
  /** IntersectionObserver v2 says the button is uncovered and unfaded long enough, or the browser cannot tell. */
  uncovered: boolean;
}

export type ClickVerdict = { counts: true } | { counts: false; why: string };

/** Whether a click on Start is the donor's decision (see the file's comment). */
export function judgeClick(facts: ClickFacts): ClickVerdict {
  if (!facts.trusted) return { counts: false, why: 'it was not a click by a person' };
  const held = (since: number | null) => since !== null && facts.now - since >= MIN_VISIBLE_MS;
  if (!held(facts.shownSince) || !held(facts.focusedSince)) return { counts: false, why: 'it came too soon after this page appeared' };
  if (!held(facts.stillSince)) return { counts: false, why: 'the button had only just come into view, or moved' };
  if (!facts.uncovered) return { counts: false, why: 'the button was covered or faded' };
  return { counts: true };
}

export interface StartGuard {
  /** The verdict on a click on the button, now. */
  judge(event: Event): ClickVerdict;
  disconnect(): void;
}

/** How often the button's place is looked at: a move restarts its dwell. */
const PLACE_CHECK_MS = 100;

/** Watches the Start button and the page so that judge() can tell a donor's click from a lured one. */
export function guardStart(button: HTMLElement): StartGuard {
  const now = () => performance.now();
  let shownSince = document.visibilityState === 'visible' ? now() : null;
  let focusedSince = document.hasFocus() ? now() : null;
  let stillSince: number | null = null;
  let place = '';
  const placeOf = () => {
    const r = button.getBoundingClientRect();
    const inView = r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
    return inView ? `${r.left},${r.top},${r.width},${r.height}` : '';
  };
  const look = () => {
    const current = placeOf();
    if (current !== place) {
      place = current;
      stillSince = current ? now() : null;
    }
  };
  const onVisibility = () => {
    shownSince = document.visibilityState === 'visible' ? now() : null;
  };
  const onFocus = () => {
    focusedSince = now();
  };
  const onBlur = () => {
    focusedSince = null;
  };
  document.addEventListener('visibilitychange', onVisibility);
  addEventListener('focus', onFocus);
  addEventListener('blur', onBlur);
  look();
  const timer = setInterval(look, PLACE_CHECK_MS);
  const visibility = guardVisibility(button);
  return {
    judge(event) {
      look(); // a move just before the click restarts the dwell
      const at = now();
      return judgeClick({ trusted: event.isTrusted, now: at, shownSince, focusedSince, stillSince, uncovered: visibility.allows(at) });
    },
    disconnect() {
      clearInterval(timer);
      visibility.disconnect();
      document.removeEventListener('visibilitychange', onVisibility);
      removeEventListener('focus', onFocus);
      removeEventListener('blur', onBlur);
    },
  };
}
