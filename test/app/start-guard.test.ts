// The donor page's Start guard (issue #13, item 11): which clicks count as the donor's decision,
// under the embed card's visibility rule (test/embed/ tests the rule itself with every attack).
// The browser side (a page opened under the pointer, a script's click, a click after a dwell, and
// what survives a reload) is test/e2e/start-guard.test.ts.
import { describe, expect, it } from 'vitest';
import { startVerdict, MIN_VISIBLE_MS } from '../../src/app/start-guard.ts';
import { VisibilityRecord } from '../../src/embed/visibility.ts';

describe('startVerdict', () => {
  const mouse = { x: 10, y: 20 };
  const settled = () => {
    const record = new VisibilityRecord();
    record.sawVisibility(0, true);
    record.sawPointer(100, mouse);
    return record;
  };

  it('counts a person\'s click on a button in view, still, under a resting pointer for MIN_VISIBLE_MS', () => {
    expect(startVerdict(true, settled().judge({ time: 100 + MIN_VISIBLE_MS, offset: mouse }))).toEqual({ counts: true });
    expect(startVerdict(true, settled().judge({ time: 100 + MIN_VISIBLE_MS, offset: null }))).toEqual({ counts: true }); // a key press
  });

  it('refuses a script\'s click, a click on a page that just appeared, one under a pointer that never moved on it, one on a moved page', () => {
    expect(startVerdict(false, { ok: true })).toEqual({ counts: false, why: 'it was not a click by a person' });
    const fresh = new VisibilityRecord();
    fresh.sawVisibility(1000, true);
    expect(startVerdict(true, fresh.judge({ time: 1010, offset: null }))).toMatchObject({ counts: false, why: expect.stringMatching(/in view for long enough/) });
    // Opened under a resting pointer: no pointer event vouches for where the page is.
    const resting = new VisibilityRecord();
    resting.sawVisibility(0, true);
    expect(startVerdict(true, resting.judge({ time: 5000, offset: mouse }))).toMatchObject({ counts: false, why: expect.stringMatching(/moved/) });
    const moved = settled();
    moved.sawPointer(4900, { x: 210, y: 20 });
    expect(startVerdict(true, moved.judge({ time: 5000, offset: { x: 210, y: 20 } }))).toMatchObject({ counts: false, why: expect.stringMatching(/moved/) });
  });
});
