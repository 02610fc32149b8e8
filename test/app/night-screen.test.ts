// Night mode's rules (src/app/night-screen.ts): the screen is held on only with the setting on,
// on the charger, with work, not paused, visible and not touched since the device was plugged in;
// the installed app offers the setting once, the first time it sees the device charge.
import { describe, expect, it } from 'vitest';
import { NightScreen, OFFER_KEY, type WakeLockApi } from '../../src/app/night-screen.ts';
import type { Status } from '../../src/scheduler/controller.ts';
import { DEFAULT_SETTINGS } from '../../src/scheduler/policies/settings.ts';
import { settle } from '../helpers/fake-clock.ts';

function fakeWakeLock() {
  const events: string[] = [];
  const api: WakeLockApi = {
    async request() {
      events.push('request');
      const sentinel = new EventTarget() as EventTarget & { release(): Promise<void> };
      sentinel.release = async () => {
        events.push('release');
        sentinel.dispatchEvent(new Event('release'));
      };
      return sentinel;
    },
  };
  return { api, events };
}

function status(change: { charging?: boolean | null; setting?: boolean; queued?: number; paused?: boolean; running?: boolean } = {}): Status {
  return {
    running: change.running ?? true,
    limits: { cpu: 1, workers: 1 },
    settings: { ...DEFAULT_SETTINGS, keepScreenOnWhileCharging: change.setting ?? true },
    activity: change.paused ? { state: 'paused', cpu: 1, reason: 'Paused: on battery at 90%.' } : { state: 'running', cpu: 1, reason: 'Running at full speed.' },
    load: { method: 'waits', pressureObserved: false, ownShare: 0.5, othersShare: 0, othersByPressure: 0, othersByWaits: 0, coreSpeed: null },
    charging: change.charging === undefined ? true : change.charging,
    progress: { work: 0, busyMs: 0, lastPauseAt: 0 },
    computed: { work: 0, busyMs: 0 },
    counts: { running: 1, queued: change.queued ?? 3, unsent: 0, done: 5, failed: 0, refused: 0 },
    deviceId: 'd',
    project: 'p',
    credit: null,
  };
}

function setUp(options: { visible?: boolean; installed?: boolean } = {}) {
  const lock = fakeWakeLock();
  const memory = new Map<string, string>();
  const offers = { getItem: (k: string) => memory.get(k) ?? null, setItem: (k: string, v: string) => void memory.set(k, v) };
  let visible = options.visible ?? true;
  const night = new NightScreen(lock.api, () => visible, () => options.installed ?? false, offers);
  return { night, lock, memory, setVisible: (v: boolean) => (visible = v) };
}

describe('NightScreen', () => {
  it('holds the screen on while charging with work, with the setting on; releases it on battery', async () => {
    const { night, lock } = setUp();
    night.update(status({ charging: false }));
    await settle(1);
    expect(lock.events).toEqual([]);
    night.update(status({ charging: true }));
    await settle(1);
    expect(lock.events).toEqual(['request']);
    expect(night.current().active).toBe(true);
    night.update(status({ charging: false, paused: true }));
    await settle(1);
    expect(lock.events).toEqual(['request', 'release']);
    expect(night.current().active).toBe(false);
  });

  it('never with the setting off, without work, when a rule pauses the work, or while hidden', async () => {
    for (const s of [status({ setting: false }), status({ queued: 0, running: true }), status({ paused: true }), status({ running: false })]) {
      const { night, lock } = setUp();
      if (s.counts.queued === 0) s.counts.running = 0;
      night.update(s);
      await settle(1);
      expect(lock.events).toEqual([]);
    }
    const { night, lock } = setUp({ visible: false });
    night.update(status());
    await settle(1);
    expect(lock.events).toEqual([]);
  });

  it('a touch lets the screen sleep, until the device is plugged in again', async () => {
    const { night, lock } = setUp();
    night.update(status());
    await settle(1);
    night.dismiss();
    await settle(1);
    expect(lock.events).toEqual(['request', 'release']);
    night.update(status());
    await settle(1);
    expect(lock.events).toHaveLength(2);
    night.update(status({ charging: false }));
    night.update(status({ charging: true }));
    await settle(1);
    expect(lock.events).toEqual(['request', 'release', 'request']);
  });

  it('the installed app offers the setting the first time it sees the device charge; once', () => {
    const { night, memory } = setUp({ installed: true });
    night.update(status({ setting: false, charging: false }));
    expect(night.current().offer).toBe(false);
    night.update(status({ setting: false, charging: true }));
    expect(night.current().offer).toBe(true);
    expect(memory.has(OFFER_KEY)).toBe(true);
    night.answerOffer();
    night.update(status({ setting: false, charging: false }));
    night.update(status({ setting: false, charging: true }));
    expect(night.current().offer).toBe(false);
    // A tab (not the installed app) never offers.
    const tab = setUp({ installed: false });
    tab.night.update(status({ setting: false, charging: false }));
    tab.night.update(status({ setting: false, charging: true }));
    expect(tab.night.current().offer).toBe(false);
  });
});
