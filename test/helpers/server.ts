/**
 * A task server on a loopback port with its own data folder and signing key, for tests and
 * benchmarks. Uses the same createServer as `npm start`. stop() and start() take it down and
 * bring it back on the same port and data, as a crash and restart (or a network outage) would.
 */
import { createServer, type DewgridServer } from '../../server/app.ts';
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { keyPath, readKey, type SigningKey } from '../../server/keys.ts';

export type { SigningKey };

export interface TestServer {
  url: string;
  dataDir: string;
  key: SigningKey;
  /** The running server (replaced by start()). */
  app: DewgridServer;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The test project's keys (test/fixtures/keys): what `dewgrid keygen` makes, committed so that
 * every test server is trusted by the one client build the browser tests share (the client's
 * trust is compiled into it: see buildClient).
 */
export const TEST_KEYS_DIR = fileURLToPath(new URL('../fixtures/keys', import.meta.url));

/** Puts the test project's keys and trust file into a data folder. */
export function writeKey(dataDir: string): Promise<SigningKey> {
  cpSync(TEST_KEYS_DIR, dataDir, { recursive: true });
  return readKey(keyPath(dataDir, 'demo'));
}

export async function startTestServer(options: {
  dataDir: string;
  staticDir?: string;
  port?: number;
  crossOriginIsolated?: boolean;
  onRequest?: (method: string, url: string) => void;
}): Promise<TestServer> {
  const key = await writeKey(options.dataDir);
  const listen = async (port: number) => {
    const app = await createServer({
      dataDir: options.dataDir,
      staticDir: options.staticDir,
      logger: false,
      crossOriginIsolated: options.crossOriginIsolated,
      onRequest: options.onRequest,
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
