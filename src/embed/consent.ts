/**
 * The person's consent to compute on one partner site, remembered for 30 days from the click that
 * gave it, then asked again; withdrawing forgets it at once, in every card of that site. Kept in
 * the frame's localStorage under the partner's origin (browsers that partition third-party storage
 * keep it per top-level site besides). Where the browser gives the frame no storage, consent lasts
 * for the page view only.
 *
 * One consent per partner site, however many cards the partner adds: a withdrawal is announced on
 * a BroadcastChannel named after the partner, and shows as a storage event besides, to every other
 * card of that site (both are Dewgrid's origin, within the same partitioned storage), which stops.
 */

export const CONSENT_DAYS = 30;
export const CONSENT_MS = CONSENT_DAYS * 24 * 60 * 60 * 1000;

export interface Consent {
  /** Whether consent was given less than 30 days ago. An expired or unreadable record is dropped. */
  given(now: number): boolean;
  give(now: number): void;
  /** Forgets it here, and tells every other card of this partner site. */
  withdraw(): void;
  /** Calls `listener` when another card of this partner site withdraws (it is forgotten here first); returns an unsubscribe. */
  onWithdrawnElsewhere(listener: () => void): () => void;
  /** False when nothing can be remembered here (no storage for this frame). */
  readonly remembered: boolean;
}

/** How cards of one partner site hear each other: the frame's BroadcastChannel and its window (storage events). */
export interface ConsentNeighbours {
  channel: Pick<BroadcastChannel, 'postMessage' | 'addEventListener' | 'removeEventListener'> | null;
  /** Where storage events arrive (the frame's window). */
  storageEvents: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> | null;
}

/** The message a card posts when the person withdraws. */
const WITHDRAWN = 'withdrawn';

export function consentFor(partner: string, storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null, neighbours: ConsentNeighbours = { channel: null, storageEvents: null }): Consent {
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
  const forget = () => {
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
      forget();
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
    withdraw() {
      forget();
      neighbours.channel?.postMessage(WITHDRAWN);
    },
    onWithdrawnElsewhere(listener) {
      const heard = () => {
        givenAt = null;
        listener();
      };
      const onMessage = (event: Event) => (event as MessageEvent).data === WITHDRAWN && heard();
      // Another card removed the record (a storage event fires only in the other documents).
      const onStorage = (event: Event) => {
        const { key: changed, newValue } = event as StorageEvent;
        if ((changed === key || changed === null) && newValue === null) heard();
      };
      neighbours.channel?.addEventListener('message', onMessage);
      neighbours.storageEvents?.addEventListener('storage', onStorage);
      return () => {
        neighbours.channel?.removeEventListener('message', onMessage);
        neighbours.storageEvents?.removeEventListener('storage', onStorage);
      };
    },
  };
}

/** The channel every card of `partner` shares (Dewgrid's origin, partitioned by the top-level site), or null where there is none. */
export function consentChannel(partner: string): BroadcastChannel | null {
  try {
    return typeof BroadcastChannel === 'function' ? new BroadcastChannel(`dewgrid:embed-consent:${partner}`) : null;
  } catch {
    return null;
  }
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
