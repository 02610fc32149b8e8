/** The project owner's status page: GET /status (server/status-page.ts), `?refresh=SECONDS` to change how often it refreshes. */
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import { renderStatusPage } from '../status-page.ts';

export const STATUS_PAGE = '/status';
/** A device counts as active this long after its last lease, result or refusal. */
export const ACTIVE_WINDOW_MS = 15 * 60 * 1000;
const MAX_DEVICES_SHOWN = 100;
const DEFAULT_REFRESH_SECONDS = 10;

export function statusRoutes(app: FastifyInstance, store: Store, now: () => number): void {
  app.get<{ Querystring: { refresh?: string } }>(STATUS_PAGE, async (request, reply) => {
    const refresh = request.query.refresh;
    const refreshSeconds = refresh === undefined ? DEFAULT_REFRESH_SECONDS : Number(refresh);
    if (refresh !== undefined && !(/^\d{1,4}$/.test(refresh) && refreshSeconds >= 2 && refreshSeconds <= 3600)) {
      throw new HttpError(400, `refresh must be a whole number of seconds from 2 to 3600, got "${String(refresh).slice(0, 40)}"`);
    }
    const devices = await store.activeDevices(ACTIVE_WINDOW_MS, MAX_DEVICES_SHOWN + 1);
    const shown = devices.slice(0, MAX_DEVICES_SHOWN);
    const credits = await Promise.all(shown.map((d) => store.deviceCredit(d.deviceId)));
    const page = renderStatusPage({
      now: now(),
      batches: await store.batchStatuses(),
      devices: shown.map((d, i) => ({ ...d, credit: credits[i]! })),
      keysetRefusals: (await store.keysetRefusals()).map(({ trusted, ...r }) => ({ ...r, newDevice: !trusted })),
      moreDevices: devices.length > MAX_DEVICES_SHOWN,
      activeWindowMs: ACTIVE_WINDOW_MS,
      refreshSeconds,
    });
    return reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-cache').send(page);
  });
}
