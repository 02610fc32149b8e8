// The frame's messages to the partner page: the union is checked field by field, anything else is
// a TypeError that names the problem, and extra fields never ride along.
import { describe, expect, it } from 'vitest';
import { checkFrameMessage, MAX_CARD_HEIGHT } from '../../src/embed/messages.ts';

const source = 'dewgrid-embed';

describe('checkFrameMessage', () => {
  it('accepts each kind, rebuilt from its known fields', () => {
    expect(checkFrameMessage({ source, type: 'started', extra: 1 })).toEqual({ source, type: 'started' });
    expect(checkFrameMessage({ source, type: 'stopped' })).toEqual({ source, type: 'stopped' });
    expect(checkFrameMessage({ source, type: 'progress', counts: { done: 3, running: 1, failed: 0, secret: 'x' }, state: 'paused' })).toEqual({
      source,
      type: 'progress',
      counts: { done: 3, running: 1, failed: 0 },
      state: 'paused',
    });
    expect(checkFrameMessage({ source, type: 'resize', height: 240 })).toEqual({ source, type: 'resize', height: 240 });
  });

  it('refuses everything else, saying why', () => {
    const cases: [unknown, RegExp][] = [
      [null, /null, not an object/],
      ['started', /string, not an object/],
      [{ type: 'started' }, /source is undefined/],
      [{ source: 'other', type: 'started' }, /source is "other"/],
      [{ source, type: 'consent' }, /unknown type "consent"/],
      [{ source, type: 'progress', state: 'running' }, /progress without counts/],
      [{ source, type: 'progress', counts: { done: -1, running: 0, failed: 0 }, state: 'running' }, /counts.done is -1/],
      [{ source, type: 'progress', counts: { done: 1, running: 0.5, failed: 0 }, state: 'running' }, /counts.running is 0.5/],
      [{ source, type: 'progress', counts: { done: 1, running: 0 }, state: 'running' }, /counts.failed is undefined/],
      [{ source, type: 'progress', counts: { done: 1, running: 0, failed: 0 }, state: 'on battery at 20%' }, /state is "on battery at 20%"/],
      [{ source, type: 'resize', height: MAX_CARD_HEIGHT + 1 }, /height is 801/],
      [{ source, type: 'resize', height: '200px' }, /height is "200px"/],
    ];
    for (const [data, problem] of cases) {
      expect(() => checkFrameMessage(data), JSON.stringify(data)).toThrow(TypeError);
      expect(() => checkFrameMessage(data), JSON.stringify(data)).toThrow(problem);
    }
  });
});
