// Tasks at once before the donor chooses (src/scheduler/processors.ts): half the processors the
// browser reports, rounded up, at least one; WebKit's rounded 4 on a 2-core machine gives 2.
import { describe, expect, it } from 'vitest';
import { defaultWorkers } from '../../src/scheduler/processors.ts';

describe('defaultWorkers', () => {
  it('is half the reported processors, rounded up, and at least one', () => {
    expect([1, 2, 3, 4, 8, 16].map((reported) => defaultWorkers(reported))).toEqual([1, 1, 2, 2, 4, 8]);
  });
});
