/**
 * Installing the page as an app. Chromium-based browsers fire `beforeinstallprompt` once the
 * page is installable: it is held, and the page offers its own Install button, which shows the
 * browser's prompt (once per event: prompt() cannot be called twice). iOS Safari has no such
 * event; there the page explains Share, then Add to Home Screen. Nothing is offered in the
 * installed app itself (standalone display), nor after `appinstalled`.
 *
 * The listeners go on when this module is first imported (main.tsx imports it before the app
 * boots), so an event fired while IndexedDB opens is not missed.
 */

/** Chromium's event (not in TypeScript's DOM types: it is not standardised). */
interface BeforeInstallPromptEvent extends Event {
  prompt(): Promise<unknown>;
  readonly userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>;
}

export type InstallOffer =
  /** The browser can install the page now: install() shows its prompt. */
  | { kind: 'prompt'; install(): Promise<void> }
  /** iOS Safari, in a tab: installing is Share, then Add to Home Screen. */
  | { kind: 'ios-hint' }
  | { kind: 'none' };

/** Safari on an iPhone or iPad (iPadOS asks for desktop pages as a Mac, with a touch screen); not the other iOS browsers. */
export function isIosSafari(userAgent: string, maxTouchPoints: number): boolean {
  const ios = /\b(iPhone|iPad|iPod)\b/.test(userAgent) || (/\bMacintosh\b/.test(userAgent) && maxTouchPoints > 1);
  return ios && /\bSafari\//.test(userAgent) && !/\b(CriOS|FxiOS|EdgiOS|OPiOS|GSA)\//.test(userAgent);
}

/** Open as an installed app: the manifest's standalone display, or iOS's home-screen web app. */
export function isStandalone(): boolean {
  return matchMedia('(display-mode: standalone)').matches || (navigator as Navigator & { standalone?: boolean }).standalone === true;
}

type Listener = (offer: InstallOffer) => void;

export class InstallOffers {
  private offer: InstallOffer;
  private readonly listeners = new Set<Listener>();

  constructor() {
    this.offer = !isStandalone() && isIosSafari(navigator.userAgent, navigator.maxTouchPoints) ? { kind: 'ios-hint' } : { kind: 'none' };
    addEventListener('beforeinstallprompt', (event) => {
      // Our button instead of the browser's own mini-infobar.
      event.preventDefault();
      const prompt = event as BeforeInstallPromptEvent;
      this.set({
        kind: 'prompt',
        install: async () => {
          // Whatever the donor answers, this event is used up; the browser fires a new one if it may ask again.
          this.set({ kind: 'none' });
          await prompt.prompt();
          await prompt.userChoice;
        },
      });
    });
    addEventListener('appinstalled', () => this.set({ kind: 'none' }));
  }

  current(): InstallOffer {
    return this.offer;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(offer: InstallOffer): void {
    this.offer = offer;
    for (const listener of this.listeners) listener(offer);
  }
}

export const installOffers = new InstallOffers();
