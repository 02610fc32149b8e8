/**
 * A task server on a loopback port with its own data folder and signing key, for tests and
 * benchmarks. Uses the same createServer as `npm start`. stop() and start() take it down and
 * bring it back on the same port and data, as a crash and restart (or a network outage) would.
 */
import { createServer, type DewgridServer } from '../../server/app.ts';
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { currentSigningKey, keyPath, readKey, ROOT_KEY_NAME, type SigningKey } from '../../server/keys.ts';

export type { SigningKey };

export interface TestServer {
  url: string;
  dataDir: string;
  /** The project's task-signing key (its keyset's first). */
  key: SigningKey;
  /** The project's root key, which signs keysets (for rotation and revocation tests). */
  root: SigningKey;
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
    async stop() {
      if (!up) return;
      up = false;
      await server.app.close();
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
