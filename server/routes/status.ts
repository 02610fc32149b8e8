/** The project owner's status page: GET /status (server/status-page.ts), `?refresh=SECONDS` to change how often it refreshes. */
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.ts';
import type { Store } from '../store.ts';
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
    const at = now();
    const devices = store.activeDevices(at - ACTIVE_WINDOW_MS, at, MAX_DEVICES_SHOWN + 1);
    const page = renderStatusPage({
      now: at,
      batches: store.batchIds().map((id) => store.batchStatus(id, at)!),
      devices: devices.slice(0, MAX_DEVICES_SHOWN).map((d) => ({ ...d, credit: store.deviceCredit(d.deviceId) })),
      keysetRefusals: store.keysetRefusals(),
      moreDevices: devices.length > MAX_DEVICES_SHOWN,
      activeWindowMs: ACTIVE_WINDOW_MS,
      refreshSeconds,
    });
    return reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-cache').send(page);
  });
}
