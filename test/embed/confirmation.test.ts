// The confirmation window's messages (src/embed/confirmation.ts): each is rebuilt from its known
// fields, and anything else is a TypeError that names the problem; its address holds the nonce alone.
import { describe, expect, it } from 'vitest';
import { checkConfirmMessage, CONFIRM_SOURCE, confirmUrl, newNonce } from '../../src/embed/confirmation.ts';

const nonce = '00112233445566778899aabbccddeeff';

describe('the confirmation window\u2019s messages', () => {
  it('rebuilds hello, welcome and answer from their fields only', () => {
    expect(checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'hello', extra: 1 })).toEqual({ source: CONFIRM_SOURCE, nonce, kind: 'hello' });
    expect(checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'welcome', partner: 'https://partner.example', maxCpu: 0.5 })).toEqual({
      source: CONFIRM_SOURCE,
      nonce,
      kind: 'welcome',
      partner: 'https://partner.example',
      maxCpu: 0.5,
    });
    expect(checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'answer', answer: 'yes' })).toEqual({ source: CONFIRM_SOURCE, nonce, kind: 'answer', answer: 'yes' });
  });

  it('names what is wrong with anything else', () => {
    expect(() => checkConfirmMessage('yes')).toThrow(new TypeError('not a Dewgrid confirmation message: string, not an object'));
    expect(() => checkConfirmMessage({ source: 'dewgrid-embed', nonce, kind: 'answer', answer: 'yes' })).toThrow(/source is "dewgrid-embed"/);
    expect(() => checkConfirmMessage({ source: CONFIRM_SOURCE, nonce: 'x', kind: 'answer', answer: 'yes' })).toThrow(/nonce is not 32 hex digits/);
    expect(() => checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'answer', answer: true })).toThrow(/answer is true, not "yes" or "no"/);
    expect(() => checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'welcome', partner: 'https://partner.example/path', maxCpu: 0.5 })).toThrow(/not an origin/);
    expect(() => checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'welcome', partner: 'https://partner.example', maxCpu: 2 })).toThrow(/maxCpu is 2/);
    expect(() => checkConfirmMessage({ source: CONFIRM_SOURCE, nonce, kind: 'consent' })).toThrow(/unknown kind "consent"/);
  });

  it('puts only the nonce in the window\u2019s address, and makes a fresh one each time', () => {
    expect(confirmUrl('https://dewgrid.example', nonce)).toBe(`https://dewgrid.example/embed/confirm.html?nonce=${nonce}`);
    expect(newNonce()).toMatch(/^[0-9a-f]{32}$/);
    expect(newNonce()).not.toBe(newNonce());
  });
});
