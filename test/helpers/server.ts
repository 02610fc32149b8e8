/**
 * A task server on a loopback port with its own data folder and signing key, for tests and
 * benchmarks. Uses the same createServer as `npm start`. stop() and start() take it down and
 * bring it back on the same port and data, as a crash and restart (or a network outage) would.
 */
import { createServer, type DewgridServer } from '../../server/app.ts';
import { cpSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { currentSigningKey, keyPath, readKey, ROOT_KEY_NAME, type SigningKey } from '../../server/keys.ts';
import { MAX_OWNER_TOKEN_MS, signOwnerToken, type OwnerScope } from '../../src/protocol/index.ts';

export type { SigningKey };

/**
 * The project owner's credential for a test: an owner token signed by the project's key, living
 * as long as a token may (tests move the server's clock by hours).
 */
export async function ownerHeaders(key: { keyId: string; secretKey: Uint8Array }, scope: OwnerScope = 'all'): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${await signOwnerToken(key, { scope, lifetimeMs: MAX_OWNER_TOKEN_MS })}` };
}

/** A loopback port nothing listens on now (one was, a moment ago): a server that is down. */
export async function closedPort(): Promise<number> {
  const { createServer: tcp } = await import('node:net');
  return new Promise((resolve) => {
    const probe = tcp().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** fetch as the project owner. */
export async function ownerFetch(server: { url: string; key: { keyId: string; secretKey: Uint8Array } }, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', (await ownerHeaders(server.key)).authorization);
  return fetch(server.url + path, { ...init, headers });
}

export interface TestServer {
  url: string;
  dataDir: string;
  /** The project's task-signing key (its keyset's first). */
  key: SigningKey;
  /** The project's root key, which signs keysets (for rotation and revocation tests). */
  root: SigningKey;
  /** GET (or any request) as the project owner, with a token the project's key signed. */
  owner(path: string, init?: RequestInit): Promise<Response>;
  /** The running server (replaced by start()). */
  app: DewgridServer;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The test project's keys (test/fixtures/keys): what `dewgrid keygen` makes (a root, its trust
 * file, a signing key and keyset version 1), committed so that every test server is trusted by the
 * one client build the browser tests share (the client's trust is compiled in: see buildClient).
 */
export const TEST_KEYS_DIR = fileURLToPath(new URL('../fixtures/keys', import.meta.url));

/** Puts the test project's keys, trust file and keyset into a data folder; returns its signing key. */
export async function writeKey(dataDir: string): Promise<SigningKey> {
  cpSync(TEST_KEYS_DIR, dataDir, { recursive: true });
  return currentSigningKey(dataDir);
}

export async function startTestServer(options: {
  dataDir: string;
  staticDir?: string;
  port?: number;
  crossOriginIsolated?: boolean;
  onRequest?: (method: string, url: string) => void;
  /** Lease terms (server/store/rules.ts, leaseTerms): shorter, for tests that watch a lease lapse or be renewed. */
  leaseMarginMs?: number;
  prepareBytesPerMs?: number;
  /** Run `npm start`'s demo: a donor on this machine may ask for the next picture. */
  demo?: boolean;
}): Promise<TestServer> {
  const key = await writeKey(options.dataDir);
  const root = await readKey(keyPath(options.dataDir, ROOT_KEY_NAME));
  const listen = async (port: number) => {
    const app = await createServer({
      dataDir: options.dataDir,
      staticDir: options.staticDir,
      logger: false,
      crossOriginIsolated: options.crossOriginIsolated,
      onRequest: options.onRequest,
      leaseMarginMs: options.leaseMarginMs,
      prepareBytesPerMs: options.prepareBytesPerMs,
      demo: options.demo ? { module: new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url))), key } : undefined,
    });
    const url = await app.app.listen({ port, host: '127.0.0.1' });
    return { app, url };
  };
  let { app, url } = await listen(options.port ?? 0);
  const port = Number(new URL(url).port);
  let up = true;
  const server: TestServer = {
    url,
    dataDir: options.dataDir,
    key,
    root,
    app,
    owner: (path, init) => ownerFetch(server, path, init),
    async stop() {
      if (!up) return;
      up = false;
      // An outage: requests in flight are dropped, as a crash drops them, not given the grace of
      // a SIGTERM (server/app.ts, close()).
      await server.app.close({ graceMs: 0 });
    },
    async start() {
      if (up) return;
      ({ app, url } = await listen(port));
      server.app = app;
      up = true;
    },
    close: () => server.stop(),
  };
  return server;
}
