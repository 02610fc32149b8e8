// Remembered consent: 30 days from the click, then asked again; withdrawn at once; per partner;
// and for the page view only where the frame has no storage.
import { describe, expect, it } from 'vitest';
import { CONSENT_MS, consentFor } from '../../src/embed/consent.ts';

class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem = (key: string) => this.items.get(key) ?? null;
  setItem = (key: string, value: string) => void this.items.set(key, value);
  removeItem = (key: string) => void this.items.delete(key);
}

const DAY = 24 * 60 * 60 * 1000;
const t0 = Date.UTC(2026, 0, 1);

describe('consent', () => {
  it('is remembered for 30 days from when it was given, then forgotten', () => {
    const storage = new MemoryStorage();
    const consent = consentFor('https://partner.example', storage);
    expect(consent.given(t0)).toBe(false);
    consent.give(t0);
    // A later page view reads it back from storage.
    const later = consentFor('https://partner.example', storage);
    expect(later.given(t0 + 29 * DAY)).toBe(true);
    expect(later.given(t0 + CONSENT_MS - 1)).toBe(true);
    expect(consentFor('https://partner.example', storage).given(t0 + CONSENT_MS)).toBe(false);
    expect(storage.items.size).toBe(0); // the expired record is dropped
  });

  it('is kept per partner origin', () => {
    const storage = new MemoryStorage();
    consentFor('https://partner.example', storage).give(t0);
    expect(consentFor('https://other.example', storage).given(t0)).toBe(false);
    expect(consentFor('https://evil.partner.example', storage).given(t0)).toBe(false);
  });

  it('is forgotten at once when withdrawn', () => {
    const storage = new MemoryStorage();
    const consent = consentFor('https://partner.example', storage);
    consent.give(t0);
    consent.withdraw();
    expect(consent.given(t0 + 1)).toBe(false);
    expect(consentFor('https://partner.example', storage).given(t0 + 1)).toBe(false);
  });

  it('does not count a record from the future, nor a malformed one', () => {
    const storage = new MemoryStorage();
    consentFor('https://partner.example', storage).give(t0 + DAY);
    expect(consentFor('https://partner.example', storage).given(t0)).toBe(false);
    storage.setItem('dewgrid:embed-consent:https://partner.example', '{"givenAt":"yesterday"}');
    expect(consentFor('https://partner.example', storage).given(t0)).toBe(false);
    storage.setItem('dewgrid:embed-consent:https://partner.example', 'not json');
    expect(consentFor('https://partner.example', storage).given(t0)).toBe(false);
  });

  it('lasts for the page view only without storage, or when storage refuses', () => {
    const none = consentFor('https://partner.example', null);
    expect(none.remembered).toBe(false);
    none.give(t0);
    expect(none.given(t0 + 1)).toBe(true);
    const refusing = { getItem: () => null, setItem: () => { throw new Error('QuotaExceededError'); }, removeItem: () => undefined };
    const consent = consentFor('https://partner.example', refusing);
    consent.give(t0);
    expect(consent.given(t0 + 1)).toBe(true);
    expect(consentFor('https://partner.example', refusing).given(t0 + 1)).toBe(false);
  });
});

describe('withdrawal, across the cards of a partner site', () => {
  it('stops every other card of the site: on their shared channel, and by the storage event', async () => {
    const storage = new MemoryStorage();
    const name = `dewgrid:embed-consent:test-${Math.random()}`;
    const open = () => new BroadcastChannel(name);
    const [a, b] = [open(), open()];
    const first = consentFor('https://partner.example', storage, { channel: a, storageEvents: null });
    const second = consentFor('https://partner.example', storage, { channel: b, storageEvents: null });
    first.give(t0);
    expect(second.given(t0 + 1)).toBe(true);
    const heard: string[] = [];
    const stop = second.onWithdrawnElsewhere(() => heard.push('second'));
    first.onWithdrawnElsewhere(() => heard.push('first (its own withdrawal)'));
    first.withdraw();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(heard).toEqual(['second']);
    expect(second.given(t0 + 2)).toBe(false);
    // A storage event removing the record (another card without the channel) does the same.
    const events = new EventTarget();
    const third = consentFor('https://partner.example', storage, { channel: null, storageEvents: events });
    third.give(t0);
    let stopped = 0;
    third.onWithdrawnElsewhere(() => stopped++);
    events.dispatchEvent(Object.assign(new Event('storage'), { key: 'dewgrid:embed-consent:https://other.example', newValue: null }));
    events.dispatchEvent(Object.assign(new Event('storage'), { key: 'dewgrid:embed-consent:https://partner.example', newValue: '{"givenAt":1}' }));
    expect(stopped).toBe(0);
    storage.removeItem('dewgrid:embed-consent:https://partner.example'); // what the other card did
    events.dispatchEvent(Object.assign(new Event('storage'), { key: 'dewgrid:embed-consent:https://partner.example', newValue: null }));
    expect(stopped).toBe(1);
    expect(third.given(t0 + 1)).toBe(false); // forgotten in memory too, not only in storage
    stop();
    for (const c of [a, b]) c.close();
  });
});
