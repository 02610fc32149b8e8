/**
 * Registers the service worker (workbox-window) and offers a waiting new version. Applying it
 * never cuts a task short: the controller finishes what is running first, then the page reloads
 * into the new version and carries on.
 */
import { Workbox } from 'workbox-window';
import type { Controller } from '../scheduler/controller.ts';

const OUTBOX_SYNC_TAG = 'dewgrid-outbox';

export interface UpdateOffer {
  /** Finishes the running tasks, then switches to the new version and reloads. */
  apply(): Promise<void>;
}

export function registerServiceWorker(controller: Controller, onUpdate: (offer: UpdateOffer) => void): void {
  if (!('serviceWorker' in navigator)) return;
  const wb = new Workbox('/sw.js');
  wb.addEventListener('waiting', () => {
    onUpdate({
      async apply() {
        await controller.drain();
        wb.addEventListener('controlling', () => location.reload());
        wb.messageSkipWaiting();
      },
    });
  });
  void wb.register().then((registration) => {
    // Background Sync, where the browser has it: results waiting to be sent go out even if the page closes.
    const sync = (registration as (ServiceWorkerRegistration & { sync?: { register(tag: string): Promise<void> } }) | undefined)?.sync;
    if (!sync) return;
    controller.on('status', (status) => {
      if (status.counts.unsent > 0) void sync.register(OUTBOX_SYNC_TAG).catch(() => undefined);
    });
  });
}
