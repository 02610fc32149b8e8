/**
 * The project owner's status page: GET /status (server/status-page.ts), `?refresh=SECONDS` to
 * change how often it refreshes, and /favicon.ico.
 *
 * Batches, devices and refusals are the owner's: the page shows them to a browser holding an owner
 * token (a link `dewgrid status --link` or `npm start` prints: `/status?token=...`, kept in an
 * HttpOnly, SameSite=Strict cookie and taken out of the address bar at once). Anyone else sees the
 * server's totals only: how many batches, tasks by state, active devices, and the expiry sweep.
 */
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { HttpError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import { OWNER_COOKIE, type OwnerAuth } from '../owner-auth.ts';
import type { ExpirySweep } from '../sweep.ts';
import { renderStatusPage } from '../status-page.ts';

export const STATUS_PAGE = '/status';
/** A device counts as active this long after its last lease, result or refusal. */
export const ACTIVE_WINDOW_MS = 15 * 60 * 1000;
const MAX_DEVICES_SHOWN = 100;
const DEFAULT_REFRESH_SECONDS = 10;
/** The icon browsers ask for whatever a page says (scripts/icons.ts makes it). */
const FAVICON = readFileSync(new URL('../../public/favicon.ico', import.meta.url));

export function statusRoutes(app: FastifyInstance, store: Store, options: { now: () => number; owner: OwnerAuth; sweep: ExpirySweep }): void {
  const { now, owner, sweep } = options;

  app.get('/favicon.ico', async (_request, reply) =>
    reply.header('content-type', 'image/x-icon').header('cache-control', 'public, max-age=86400').send(FAVICON),
  );

  app.get<{ Querystring: { refresh?: string; token?: string } }>(STATUS_PAGE, async (request, reply) => {
    const { refresh, token } = request.query;
    const refreshSeconds = refresh === undefined ? DEFAULT_REFRESH_SECONDS : Number(refresh);
    if (refresh !== undefined && !(/^\d{1,4}$/.test(refresh) && refreshSeconds >= 2 && refreshSeconds <= 3600)) {
      throw new HttpError(400, `refresh must be a whole number of seconds from 2 to 3600, got "${String(refresh).slice(0, 40)}"`);
    }
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
    let refused: string | null = null;
    if (typeof token === 'string') {
      const verdict = await owner.check(token);
      if (verdict.ok) {
        // Into a cookie, and out of the address bar (and history, and anything shown on screen).
        const maxAge = Math.max(0, Math.floor((verdict.claims.expiresAt - now()) / 1000));
        reply.header('set-cookie', `${OWNER_COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${request.protocol === 'https' ? '; Secure' : ''}`);
        return reply.redirect(refresh === undefined ? STATUS_PAGE : `${STATUS_PAGE}?refresh=${refreshSeconds}`, 303);
      }
      refused = verdict.detail;
    }
    const claims = refused === null ? await owner.optional(request, 'read') : null;
    const batches = await store.batchStatuses();
    const devices = await store.activeDevices(ACTIVE_WINDOW_MS, MAX_DEVICES_SHOWN + 1);
    const shown = claims ? devices.slice(0, MAX_DEVICES_SHOWN) : [];
    const credits = await Promise.all(shown.map((d) => store.deviceCredit(d.deviceId)));
    const page = renderStatusPage({
      now: now(),
      owner: claims !== null,
      tokenRefused: refused,
      batches,
      devices: shown.map((d, i) => ({ ...d, credit: credits[i]! })),
      activeDeviceCount: devices.length,
      keysetRefusals: claims ? (await store.keysetRefusals()).map(({ trusted, ...r }) => ({ ...r, newDevice: !trusted })) : [],
      moreDevices: devices.length > MAX_DEVICES_SHOWN,
      activeWindowMs: ACTIVE_WINDOW_MS,
      refreshSeconds,
      sweep: sweep.report(),
    });
    return reply
      .code(refused === null ? 200 : 401)
      .header('content-type', 'text/html; charset=utf-8')
      .send(page);
  });
}
