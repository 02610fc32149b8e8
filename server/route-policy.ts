/**
 * Who may call each API route, and how large a body it reads: one table for the whole API, applied
 * to every route as it is registered (an `onRoute` hook), so no route can be added without saying
 * both. A route missing from the table stops the server at start-up.
 *
 * - `owner`: the project owner's routes need an owner token (owner-auth.ts) of this scope, checked
 *   in onRequest, before the body is read.
 * - `device` / `public`: no credential (a device's requests are bound to its key and its leases
 *   by the routes themselves; public reads give out nothing secret).
 * - `bodyLimit`: the most the route can need, bytes; `route` when the route sets its own from the
 *   server's options (publishing, results). Everything else gets DEFAULT_BODY_LIMIT.
 */
import type { FastifyInstance, onRequestAsyncHookHandler, RouteOptions } from 'fastify';
import { API, type OwnerScope } from '../src/protocol/index.ts';
import type { OwnerAuth } from './owner-auth.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface RoutePolicy {
  who: `owner:${OwnerScope}` | 'device' | 'public';
  bodyLimit?: number | 'route';
}

/** `METHOD /path` (as registered, with `:params`) -> policy. GET also covers HEAD. */
export const ROUTE_POLICY: Record<string, RoutePolicy> = {
  // Devices: bodies as large as their schemas allow, with room for JSON's escapes.
  [`POST ${API.work}`]: { who: 'device', bodyLimit: 16 * KiB },
  [`POST ${API.renew}`]: { who: 'device', bodyLimit: 4 * KiB },
  [`POST ${API.refusals}`]: { who: 'device', bodyLimit: 32 * KiB }, // a detail of 2 000 characters, each up to 6 bytes escaped
  [`POST ${API.results}`]: { who: 'device', bodyLimit: 'route' }, // a task's outputs at their caps
  [`GET ${API.device(':deviceId')}`]: { who: 'public' },
  [`GET ${API.blob(':sha256')}`]: { who: 'public' },
  // As public as each blob alone; the answer is bounded (MAX_BLOB_BATCH_BYTES), read one blob at a time.
  [`POST ${API.blobBatch}`]: { who: 'public', bodyLimit: 80 * KiB }, // 1 000 hashes of 64 hex, quoted, with commas
  [`GET ${API.keyset}`]: { who: 'public' },
  // A keyset carries its root's signature: whoever sends it, the server takes only what a root signed.
  [`POST ${API.keyset}`]: { who: 'public', bodyLimit: 256 * KiB }, // 256 keys at most
  [`GET ${API.info}`]: { who: 'public' },
  // npm start's demo only (routes/demo.ts): a donor may ask for the next picture once one is finished.
  [`GET ${API.demo}`]: { who: 'public' },
  [`POST ${API.demoNext}`]: { who: 'public', bodyLimit: 1 * KiB },
  // The owner's.
  [`POST ${API.missingBlobs}`]: { who: 'owner:all', bodyLimit: 8 * MiB }, // 100 000 hashes
  [`POST ${API.batches}`]: { who: 'owner:all', bodyLimit: 'route' }, // the modules and inputs travel in it
  [`GET ${API.batches}`]: { who: 'owner:read' },
  [`GET ${API.batch(':batchId')}`]: { who: 'owner:read' },
  [`GET ${API.batchResults(':batchId')}`]: { who: 'owner:read' },
  [`GET ${API.batchEvents(':batchId')}`]: { who: 'owner:read' },
  [`POST ${API.batchCancel(':batchId')}`]: { who: 'owner:all', bodyLimit: 1 * KiB },
  [`GET ${API.keysetRefusals}`]: { who: 'owner:read' },
};

/** A body limit for routes the table gives none: what a small JSON request can need. */
export const DEFAULT_BODY_LIMIT = 64 * KiB;

/** Applies ROUTE_POLICY to every /api route registered after this. @throws Error for an /api route the table does not name. */
export function applyRoutePolicy(app: FastifyInstance, owner: OwnerAuth): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (!route.url.startsWith('/api/')) return;
    for (const method of [route.method].flat()) {
      const policy = ROUTE_POLICY[`${method === 'HEAD' ? 'GET' : method} ${route.url}`];
      if (!policy) throw new Error(`server/route-policy.ts says nothing of ${method} ${route.url}: add it to ROUTE_POLICY (who may call it, how large a body it reads)`);
      if (typeof policy.bodyLimit === 'number') route.bodyLimit = policy.bodyLimit;
      if (policy.who.startsWith('owner:')) {
        const guard = owner.require(policy.who.slice('owner:'.length) as OwnerScope);
        const existing = [route.onRequest ?? []].flat() as onRequestAsyncHookHandler[];
        route.onRequest = [guard, ...existing];
      }
    }
  });
}
