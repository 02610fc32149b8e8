/**
 * Night mode: how a phone donates its nights. No browser lets a page compute with the screen off,
 * so, where the donor chose "Keep the screen on while charging", the page holds a Screen Wake Lock
 * while the device charges and there is work, and shows a dim, mostly black screen with the
 * progress (an OLED screen draws almost nothing for black). The lock goes on battery, at a rule
 * that pauses the work (battery, heat, other programs), when the page is hidden (the browser
 * releases it then), or when the donor touches the screen (then not again until the next time the
 * device is plugged in). The installed app offers the setting the first time it sees the device charge.
 */
import type { Status } from '../scheduler/controller.ts';

/** The part of the Screen Wake Lock API used here (navigator.wakeLock). */
export interface WakeLockApi {
  request(type: 'screen'): Promise<WakeLockSentinelLike>;
}
export interface WakeLockSentinelLike extends EventTarget {
  release(): Promise<void>;
}

export interface NightState {
  /** The screen is held on: the dim screen shows. */
  active: boolean;
  /** The installed app offers the setting (the device is charging for the first time it has seen). */
  offer: boolean;
}

type Listener = (state: NightState) => void;

/** Where the offer, once made, is remembered: it is made once per device. */
export const OFFER_KEY = 'dewgrid:night-offered';

export class NightScreen {
  private state: NightState = { active: false, offer: false };
  private sentinel: WakeLockSentinelLike | null = null;
  private requesting = false;
  /** The donor touched the screen: not again until the device is plugged in again. */
  private dismissed = false;
  private charging: boolean | null = null;
  private last: Status | null = null;
  private readonly listeners = new Set<Listener>();

  /**
   * @param wakeLock navigator.wakeLock, or null where the browser has none (then nothing is held, and nothing shows)
   * @param visible whether the page is visible (a hidden page holds no lock)
   * @param installed whether the page runs as the installed app (the offer is made there only)
   * @param offers a device's memory of the offer (localStorage)
   */
  constructor(
    private readonly wakeLock: WakeLockApi | null,
    private readonly visible: () => boolean,
    private readonly installed: () => boolean,
    private readonly offers: Pick<Storage, 'getItem' | 'setItem'> | null,
  ) {}

  current(): NightState {
    return this.state;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The controller's status changed, or the page's visibility did: hold or release the lock. */
  update(status: Status | null = this.last): void {
    if (!status) return;
    this.last = status;
    const plugged = status.charging === true && this.charging !== true;
    this.charging = status.charging;
    if (plugged) this.dismissed = false;
    const s = status.settings;
    let offer = this.state.offer && !s.keepScreenOnWhileCharging;
    if (plugged && !s.keepScreenOnWhileCharging && this.installed() && this.offers && this.offers.getItem(OFFER_KEY) === null) {
      this.offers.setItem(OFFER_KEY, String(Date.now())); // made once per device, whatever the answer
      offer = true;
    }
    const work = status.counts.running + status.counts.queued > 0;
    const wanted =
      this.wakeLock !== null && s.keepScreenOnWhileCharging && status.charging === true && status.running && work && status.activity.state !== 'paused' && !this.dismissed && this.visible();
    if (wanted) this.hold();
    else this.release();
    this.set({ active: wanted, offer });
  }

  /** The donor touched the screen, or pressed a key: they are here, the screen may sleep again. */
  dismiss(): void {
    this.dismissed = true;
    this.update();
  }

  /** The donor answered the offer (either way): it is not made again. */
  answerOffer(): void {
    this.set({ ...this.state, offer: false });
  }

  private hold(): void {
    if (this.sentinel || this.requesting || !this.wakeLock) return;
    this.requesting = true;
    this.wakeLock.request('screen').then(
      (sentinel) => {
        this.requesting = false;
        this.sentinel = sentinel;
        // The browser lets go of it when the page is hidden; shown again, update() asks anew.
        sentinel.addEventListener('release', () => {
          if (this.sentinel === sentinel) this.sentinel = null;
        });
        if (!this.state.active) this.release();
      },
      () => {
        this.requesting = false; // refused (not visible, a permissions policy): the screen sleeps as usual
        this.set({ ...this.state, active: false });
      },
    );
  }

  private release(): void {
    const sentinel = this.sentinel;
    this.sentinel = null;
    void sentinel?.release().catch(() => undefined);
  }

  private set(state: NightState): void {
    if (state.active === this.state.active && state.offer === this.state.offer) return;
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }
}
