// The clickjacking guard's judgement of a click (src/embed/visibility.ts), from the observations
// each attack produces: a card that only just came into view, one hidden just before or just after
// the click (the observer reports up to 100 ms late), one slid under a resting pointer, one zoomed
// or resized. The browser suite (test/e2e/embed.test.ts) performs the attacks on a real page.
import { describe, expect, it } from 'vitest';
import { MIN_DEVICE_PIXEL_RATIO, MIN_VISIBLE_MS, OBSERVER_DELAY_MS, VisibilityRecord } from '../../src/embed/visibility.ts';

const at = { x: 40, y: 300 };
const CLICK = 10_000;

/** A card in view since `since`, with the pointer at rest on it since `pointerSince`. */
function record({ since = 0, pointerSince = 0 } = {}): VisibilityRecord {
  const r = new VisibilityRecord();
  r.sawZoom(-Infinity, 1);
  r.sawVisibility(since, true);
  r.sawPointer(pointerSince, at);
  return r;
}

describe('the clickjacking guard', () => {
  it('lets a click through once the card has been in view, still, and under a resting pointer for the dwell', () => {
    expect(record().judge({ time: CLICK, offset: at })).toEqual({ ok: true });
    expect(record({ since: CLICK - MIN_VISIBLE_MS }).judge({ time: CLICK, offset: at })).toEqual({ ok: true });
  });

  it('refuses a card that was never reported visible, or only just came into view', () => {
    expect(new VisibilityRecord().judge({ time: CLICK, offset: null })).toEqual({ ok: false, why: 'not-visible' });
    expect(record({ since: CLICK - MIN_VISIBLE_MS + 1 }).judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'not-visible' });
  });

  it('refuses a card hidden at any moment of the dwell, or reported hidden up to the observer\u2019s delay after the click', () => {
    const flicker = record();
    flicker.sawVisibility(CLICK - 200, false);
    flicker.sawVisibility(CLICK - 150, true);
    expect(flicker.judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'not-visible' });
    // Faded 50 ms before the click: the observer computes it only after, within its delay.
    const late = record();
    late.sawVisibility(CLICK + OBSERVER_DELAY_MS, false);
    expect(late.judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'not-visible' });
    const after = record();
    after.sawVisibility(CLICK + OBSERVER_DELAY_MS + 1, false);
    expect(after.judge({ time: CLICK, offset: at })).toEqual({ ok: true });
  });

  it('refuses a card slid under a resting pointer: no pointer event vouches for where it was', () => {
    // In view for 1.2 s with the pointer elsewhere; moved 200 px; the click's own event is the first the card sees.
    const slid = new VisibilityRecord();
    slid.sawVisibility(CLICK - 1200, true);
    slid.sawPointer(CLICK - 5, { x: at.x, y: at.y + 200 });
    expect(slid.judge({ time: CLICK, offset: { x: at.x, y: at.y + 200 } })).toEqual({ ok: false, why: 'moved' });
    // The pointer had rested on the card, which then moved under it: the offset at the click differs.
    const moved = record();
    expect(moved.judge({ time: CLICK, offset: { x: at.x, y: at.y - 200 } })).toEqual({ ok: false, why: 'moved' });
    // A pointer that only just came onto the card.
    expect(record({ pointerSince: CLICK - MIN_VISIBLE_MS + 1 }).judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'moved' });
    // No pointer in the card at all before a mouse click.
    const none = new VisibilityRecord();
    none.sawVisibility(0, true);
    expect(none.judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'moved' });
    // Keys and touch give no position: only visibility is judged.
    expect(none.judge({ time: CLICK, offset: null })).toEqual({ ok: true });
  });

  it('takes a pointer that moved across the card as at rest: only the frame\u2019s place on the screen counts', () => {
    const r = record();
    for (let t = CLICK - 400; t < CLICK; t += 16) r.sawPointer(t, { x: at.x + 0.4, y: at.y - 0.4 }); // the same frame position, rounded
    expect(r.judge({ time: CLICK, offset: at })).toEqual({ ok: true });
  });

  it('refuses a card zoomed or resized during the dwell, or drawn at less than half its size', () => {
    const zoomed = record();
    zoomed.sawZoom(CLICK - 100, 0.8);
    expect(zoomed.judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'zoomed' });
    const resized = record();
    resized.sawResize(CLICK - 100);
    expect(resized.judge({ time: CLICK, offset: at })).toEqual({ ok: false, why: 'zoomed' });
    // The card's own height changing after the click (it answers it) is no reason.
    resized.sawResize(CLICK + 50);
    const later = record();
    later.sawResize(CLICK + 50);
    expect(later.judge({ time: CLICK, offset: at })).toEqual({ ok: true });
    const tiny = new VisibilityRecord();
    tiny.sawZoom(-Infinity, MIN_DEVICE_PIXEL_RATIO - 0.01);
    tiny.sawVisibility(0, true);
    expect(tiny.judge({ time: CLICK, offset: null })).toEqual({ ok: false, why: 'zoomed' });
  });

  it('says how long the card has been in view, for remembered consent', () => {
    const r = record({ since: 1000 });
    expect(r.visibleFor(1600)).toBe(600);
    r.sawVisibility(1700, false);
    expect(r.visibleFor(1800)).toBe(0);
    expect(r.visible).toBe(false);
  });
});
