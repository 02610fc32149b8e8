/**
 * The service worker: precaches the app shell (page, scripts, styles, the worker runtime) so
 * the page and the installed PWA open without a network, and posts waiting results by
 * Background Sync where the browser has it.
 */
import { clientsClaim } from 'workbox-core';
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';
import { openDewgridDB } from '../storage/db.ts';
import { WorkStore } from '../storage/work-store.ts';
import { resultBody } from '../storage/result-body.ts';
import { API } from '../protocol/api.ts';
import { MODULE_CACHE_NAME, MODULE_URL_PREFIX } from '../storage/module-cache.ts';

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: (string | { url: string; revision: string | null })[] };

export const OUTBOX_SYNC_TAG = 'dewgrid-outbox';

precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();
// Every navigation gets the shell; the API and blobs always go to the network, and so do the
// embed's card, whose frame page has headers of its own (a partner on this site may embed it), and
// the owner's status page (server-rendered).
registerRoute(new NavigationRoute(createHandlerBoundToURL('index.html'), { denylist: [/^\/api\//, /^\/embed\//, /^\/status(\?|$)/] }));
// Rewritten modules kept by the prepare worker (src/storage/module-cache.ts), answered from their
// cache: Chromium keeps compiled Wasm only for a module that fetch() returned, not cache.match().
// Nothing else serves these URLs: one not kept is a 404 (the prepare worker then reads the cache itself).
registerRoute(
  ({ url, request }) => url.origin === self.location.origin && url.pathname.startsWith(MODULE_URL_PREFIX) && request.method === 'GET',
  async ({ request }) => {
    const kept = await (await caches.open(MODULE_CACHE_NAME)).match(request);
    return kept ?? new Response(null, { status: 404 });
  },
);
// The first version takes the page at once; later versions wait until the page says so (workbox-window).
clientsClaim();

self.addEventListener('message', (event) => {
  if ((event.data as { type?: string } | null)?.type === 'SKIP_WAITING') void self.skipWaiting();
});

interface SyncEvent extends ExtendableEvent {
  tag: string;
}

self.addEventListener('sync', (event) => {
  const sync = event as SyncEvent;
  if (sync.tag === OUTBOX_SYNC_TAG) sync.waitUntil(postOutbox());
});

/** Posts waiting results with no page open. A failure leaves them for the next sync or page. */
async function postOutbox(): Promise<void> {
  const work = new WorkStore(await openDewgridDB());
  for (const entry of await work.outbox()) {
    const body = resultBody(entry.submission);
    const response = await fetch(API.results, { method: 'POST', headers: { 'content-type': body.type }, body });
    // 2xx: stored (or already stored). Any other 4xx but 408/429 is the server's final word on it.
    if (response.ok || (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429)) {
      await work.delivered(entry.leaseId);
    } else {
      throw new Error(`result ${entry.leaseId}: ${response.status}`); // the browser retries the sync later
    }
  }
}
