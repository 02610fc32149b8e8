/**
 * The person's consent to compute on one partner site, remembered for 30 days from the click that
 * gave it, then asked again; withdrawing forgets it at once. Kept in the frame's localStorage under
 * the partner's origin (browsers that partition third-party storage keep it per top-level site
 * besides). Where the browser gives the frame no storage, consent lasts for the page view only.
 */

export const CONSENT_DAYS = 30;
export const CONSENT_MS = CONSENT_DAYS * 24 * 60 * 60 * 1000;

export interface Consent {
  /** Whether consent was given less than 30 days ago. An expired or unreadable record is dropped. */
  given(now: number): boolean;
  give(now: number): void;
  withdraw(): void;
  /** False when nothing can be remembered here (no storage for this frame). */
  readonly remembered: boolean;
}

export function consentFor(partner: string, storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null): Consent {
  const key = `dewgrid:embed-consent:${partner}`;
  let givenAt: number | null = null; // for this page view, whatever the storage does
  const read = (): number | null => {
    try {
      const record = JSON.parse(storage?.getItem(key) ?? 'null') as { givenAt?: unknown } | null;
      return typeof record?.givenAt === 'number' ? record.givenAt : null;
    } catch {
      return null;
    }
  };
  const withdraw = () => {
    givenAt = null;
    try {
      storage?.removeItem(key);
    } catch {
      // nothing was kept
    }
  };
  return {
    remembered: storage !== null,
    given(now) {
      const at = givenAt ?? read();
      // A record from the future (the clock was put back) is as good as none.
      if (at !== null && at <= now && now - at < CONSENT_MS) return true;
      withdraw();
      return false;
    },
    give(now) {
      givenAt = now;
      try {
        storage?.setItem(key, JSON.stringify({ givenAt: now }));
      } catch {
        // storage full or refused: remembered for this page view only
      }
    },
    withdraw,
  };
}

/** The frame's localStorage, or null where the browser refuses it to this frame (it may throw). */
export function frameStorage(): Storage | null {
  try {
    const storage = globalThis.localStorage;
    return storage ?? null;
  } catch {
    return null;
  }
}
