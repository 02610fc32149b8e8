// The donor page's Start guard (issue #13, item 11): which clicks count as the donor's decision.
// The browser side (a page opened under the pointer, a script's click, a click after a dwell, and
// what survives a reload) is test/e2e/start-guard.test.ts.
import { describe, expect, it } from 'vitest';
import { judgeClick, MIN_VISIBLE_MS, type ClickFacts } from '../../src/app/start-guard.ts';

const settled: ClickFacts = { trusted: true, now: 10_000, shownSince: 0, focusedSince: 0, stillSince: 0, uncovered: true };

describe('judgeClick', () => {
  it('counts a trusted click on a button visible, focused, still and uncovered for MIN_VISIBLE_MS', () => {
    expect(judgeClick(settled)).toEqual({ counts: true });
    expect(judgeClick({ ...settled, now: MIN_VISIBLE_MS, shownSince: 0, focusedSince: 0, stillSince: 0 })).toEqual({ counts: true });
  });

  it('refuses a script\'s click, a click just after the page appeared or got focus, a moved button, a covered one', () => {
    expect(judgeClick({ ...settled, trusted: false })).toEqual({ counts: false, why: 'it was not a click by a person' });
    expect(judgeClick({ ...settled, shownSince: settled.now - 10 })).toMatchObject({ counts: false, why: expect.stringMatching(/too soon/) });
    expect(judgeClick({ ...settled, focusedSince: null })).toMatchObject({ counts: false, why: expect.stringMatching(/too soon/) });
    expect(judgeClick({ ...settled, stillSince: settled.now - MIN_VISIBLE_MS + 1 })).toMatchObject({ counts: false, why: expect.stringMatching(/moved/) });
    expect(judgeClick({ ...settled, stillSince: null })).toMatchObject({ counts: false });
    expect(judgeClick({ ...settled, uncovered: false })).toMatchObject({ counts: false, why: expect.stringMatching(/covered/) });
  });
});
