/**
 * The task server: the API of docs/protocol.md, blobs by hash, the keyset, and the built PWA.
 * Every body is validated with the shared protocol schemas; every error is `{ error, message }`;
 * a rejected request changes nothing. Who may call each route, and how large a body it reads, is
 * one table (route-policy.ts).
 */
import { API, MAX_RESULT_BODY_BYTES, PROTOCOL_VERSION, RESULT_BODY_TYPE, type ServerInfo } from '../src/protocol/index.ts';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { mkdirSync } from 'node:fs';
import { errorBody, installErrorHandler, installJsonParser } from './errors.ts';
import { batchRoutes } from './routes/batches.ts';
import { blobRoutes } from './routes/blobs.ts';
import { DEFAULT_DEVICE_LIMITS, deviceRoutes, type DeviceLimits } from './routes/devices.ts';
import { siteRoutes } from './routes/site.ts';
import { statusRoutes } from './routes/status.ts';
import { eventRoutes } from './routes/events.ts';
import { demoRoutes, type DemoOptions } from './routes/demo.ts';
import { openStore, type Store } from './store/index.ts';
import { Keysets } from './keyset.ts';
import { embedHeaders } from './embed-headers.ts';
import { ownerAuth } from './owner-auth.ts';
import { applyRoutePolicy, DEFAULT_BODY_LIMIT } from './route-policy.ts';
import { ExpirySweep } from './sweep.ts';
import { readTrust } from './keys.ts';

export { jsonBytes } from './routes/batches.ts';
export { DEFAULT_BODY_LIMIT };

export interface ServerOptions {
  /** Holds trust.json (the roots), and with SQLite dewgrid.sqlite and blobs/; made if missing. */
  dataDir: string;
  /** `postgres://...`: keep the state in that PostgreSQL database (shared by every server on it) instead of SQLite in dataDir. */
  databaseUrl?: string;
  /** PostgreSQL connections this server holds at most; default 10. */
  databasePoolSize?: number;
  /** The built PWA; served at / when the folder exists. */
  staticDir?: string;
  /** The clock, ms since epoch; tests move it to expire leases and manifests. */
  now?: () => number;
  logger?: boolean;
  /** Body limit for publishing (modules travel in it), bytes. Default 256 MiB. */
  publishBodyLimit?: number;
  /** Body limit for routes the route policy gives none, bytes. Default 64 KiB (route-policy.ts). */
  bodyLimit?: number;
  /** Body limit for results, bytes: big enough for a task's outputs at their caps. */
  resultBodyLimit?: number;
  /**
   * Serve the page cross-origin isolated (COOP + COEP), as it must be to run WASIX tasks. Default
   * true; false only to see how a client behaves on a host that cannot send those headers. The
   * embed's card isolates itself another way (server/embed-headers.ts), also only when true.
   */
  crossOriginIsolated?: boolean;
  /** Draws adaptive replication's spot checks; default Math.random. */
  random?: () => number;
  /** How long past the time to prepare and run its task a lease lasts, ms; default 60 s. */
  leaseMarginMs?: number;
  /** The pace leases assume a device readies a task's bytes at, bytes per ms; default 250 (rules.leaseTerms). */
  prepareBytesPerMs?: number;
  /** Told of every request as it arrives (tests count requests per route with it). */
  onRequest?: (method: string, url: string) => void;
  /** Rate limits on the device routes (routes/devices.ts); default DEFAULT_DEVICE_LIMITS. */
  deviceLimits?: Partial<DeviceLimits>;
  /**
   * Behind a reverse proxy: take the client's address from X-Forwarded-For when the request comes
   * from these proxies (Fastify's trustProxy: true for any, or their addresses or CIDR ranges). The limits on
   * new device keys are per client address.
   */
  trustProxy?: boolean | string | string[];
  /** How often queued tasks past their expiry are ended, ms (sweep.ts); default 60 s, 0 for never. */
  sweepIntervalMs?: number;
  /** `npm start`'s demo: donors on this machine may ask for the next picture (routes/demo.ts). */
  demo?: DemoOptions;
}

export interface DewgridServer {
  app: FastifyInstance;
  store: Store;
  keysets: Keysets;
  /**
   * Stops listening, gives the requests in flight `graceMs` to finish (default CLOSE_GRACE_MS; 0
   * drops them at once, as a crash would), then closes the database.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** How long requests in flight may take to finish when the server closes (SIGTERM): under docs/deploy.md's `TimeoutStopSec`. */
export const CLOSE_GRACE_MS = 10_000;
/** How often a closing server looks for connections to close. */
const CLOSE_POLL_MS = 50;

/**
 * Closes `app`'s server. Node closes idle keep-alive connections only when the close begins: one
 * whose request ends later stays open for Fastify's keep-alive timeout (72 s), and one whose client
 * stalls midway (Fastify sets no request timeout) for ever, and the close waits for them. So until
 * it is done, connections are closed as they fall idle, and all of them once the grace is over.
 */
async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  const poll = setInterval(() => (Date.now() >= deadline ? app.server.closeAllConnections() : app.server.closeIdleConnections()), CLOSE_POLL_MS);
  try {
    await app.close();
  } finally {
    clearInterval(poll);
  }
}

export const DEFAULT_PUBLISH_BODY_LIMIT = 256 * 2 ** 20;

const COMMON_HEADERS = {
  // CORP so the page's own resources load under COEP.
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  // No other site may frame the page to lure a click on Start: the embed's card is for that, and it guards its button.
  'content-security-policy': "frame-ancestors 'self'",
};
/** Cross-origin isolation for the page: SharedArrayBuffer, which the WASIX engine's workers share. */
const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export async function createServer(options: ServerOptions): Promise<DewgridServer> {
  const now = options.now ?? Date.now;
  const headers = options.crossOriginIsolated === false ? COMMON_HEADERS : { ...COMMON_HEADERS, ...ISOLATION_HEADERS };
  mkdirSync(options.dataDir, { recursive: true });
  const store = await openStore({
    dataDir: options.dataDir,
    databaseUrl: options.databaseUrl,
    poolSize: options.databasePoolSize,
    now: options.now,
    random: options.random,
    leaseMarginMs: options.leaseMarginMs,
    prepareBytesPerMs: options.prepareBytesPerMs,
  });
  let keysets: Keysets;
  try {
    keysets = await Keysets.open(store, options.dataDir);
  } catch (error) {
    await store.close();
    throw error;
  }
  const owner = ownerAuth(keysets, now);
  const sweep = new ExpirySweep(store, options.sweepIntervalMs ?? 60_000, now);
  const app = Fastify({
    logger: options.logger ?? false,
    trustProxy: options.trustProxy ?? false,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // A URL that does not decode (`/api/batches/%E0%A4%A`) is answered before routing, so say it here.
    frameworkErrors(error, _request, reply) {
      (reply as FastifyReply).headers(headers).code(400).send(errorBody(400, error.message));
    },
  });

  const onRequest = options.onRequest;
  if (onRequest) app.addHook('onRequest', async (request) => onRequest(request.method, request.url));
  app.addHook('onSend', async (request, reply) => {
    reply.headers(embedHeaders(request.url, options.crossOriginIsolated !== false) ?? headers);
  });
  // Every API body is JSON (Fastify would otherwise parse text/plain into a string), but for
  // results, which may also come as a binary body (RESULT_BODY_TYPE).
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return;
    const type = request.headers['content-type'] ?? '';
    if (request.url === API.results && type.split(';')[0]!.trim().toLowerCase() === RESULT_BODY_TYPE) return;
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return reply.code(415).send(errorBody(415, `the body must be application/json, not ${type || 'untyped'}`));
    }
  });
  installErrorHandler(app);
  installJsonParser(app);
  applyRoutePolicy(app, owner);

  deviceRoutes(app, store, keysets, {
    now,
    resultBodyLimit: options.resultBodyLimit ?? MAX_RESULT_BODY_BYTES,
    limits: { ...DEFAULT_DEVICE_LIMITS, ...options.deviceLimits },
  });
  blobRoutes(app, store);
  batchRoutes(app, store, keysets, { now, publishBodyLimit: options.publishBodyLimit ?? DEFAULT_PUBLISH_BODY_LIMIT });
  eventRoutes(app, store, { headers });
  app.get(API.info, async (): Promise<ServerInfo> => {
    let projectName: string | null = null;
    try {
      projectName = readTrust(options.dataDir)?.projectName ?? null;
    } catch {
      // an unreadable trust file names no project
    }
    return { service: 'dewgrid', protocol: PROTOCOL_VERSION, projectName, keysetVersion: (await keysets.current())?.keyset.version ?? 0, demo: options.demo !== undefined };
  });
  if (options.demo) demoRoutes(app, store, options.demo);
  statusRoutes(app, store, { now, owner, sweep });
  await siteRoutes(app, { staticDir: options.staticDir });

  await app.ready();
  sweep.start();
  return {
    app,
    store,
    keysets,
    async close({ graceMs = CLOSE_GRACE_MS } = {}) {
      sweep.stop();
      await closeGracefully(app, graceMs);
      await store.close();
    },
  };
}
