/**
 * Start is the donor's decision, and it lasts: pressed once, the page computes after every reload
 * until Stop (issue #13, item 11). A page that sends the donor here (a link, window.open, a
 * navigation) could have the donor's next click land on Start before they saw it: the page opened
 * under a resting pointer, or the button slid there just before the click. So a click on Start
 * counts only when it is trusted (a person's, not a script's) and passes the embed card's rule
 * (src/embed/visibility.ts): the button fully in view (and, where IntersectionObserver v2 can
 * tell, uncovered and unfaded) for MIN_VISIBLE_MS before the click and at it, the page not zoomed
 * or resized meanwhile, and a mouse at rest on it where the click found it.
 *
 * `window.dewgrid.start()` (kiosk and lab operators) starts the page too, but only for the page's
 * session: a script's Start never survives a reload.
 */
import { MIN_VISIBLE_MS, watchVisibility, type Verdict } from '../embed/visibility.ts';

export { MIN_VISIBLE_MS };

export type StartVerdict = { counts: true } | { counts: false; why: string };

const WHY: Record<Exclude<Verdict, { ok: true }>['why'], string> = {
  'not-visible': 'the button had not been in view for long enough (or was covered)',
  moved: 'the button moved under the pointer, or the pointer had not come to rest on it',
  zoomed: 'the page was zoomed or resized just before it',
};

/** What a click on Start is, from whether it was a person's and the visibility rule's verdict on it. */
export function startVerdict(trusted: boolean, verdict: Verdict): StartVerdict {
  if (!trusted) return { counts: false, why: 'it was not a click by a person' };
  return verdict.ok ? { counts: true } : { counts: false, why: WHY[verdict.why] };
}

export interface StartGuard {
  /** The verdict on a click on the button: a moment after it, once what held at the click has been reported. */
  judge(event: MouseEvent): Promise<StartVerdict>;
  disconnect(): void;
}

/** Watches the Start button so that judge() can tell a donor's click from a lured one. */
export function guardStart(button: Element): StartGuard {
  const watch = watchVisibility(button);
  return {
    async judge(event) {
      if (!event.isTrusted) return startVerdict(false, { ok: true });
      return startVerdict(true, await watch.judge(event));
    },
    disconnect: () => watch.disconnect(),
  };
}
