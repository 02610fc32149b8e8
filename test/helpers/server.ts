/**
 * A task server on a loopback port with its own data folder and signing key, for tests and
 * benchmarks. Uses the same createServer as `npm start`. stop() and start() take it down and
 * bring it back on the same port and data, as a crash and restart (or a network outage) would.
 */
import { createServer, type DewgridServer } from '../../server/app.ts';
import { createKey, type SigningKey } from '../../server/keys.ts';

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

/** A demo key in the data folder, pinned in its trust.json: what `dewgrid keygen` makes. */
export function writeKey(dataDir: string): Promise<SigningKey> {
  return createKey(dataDir, 'demo', { projectName: 'Dewgrid test project' });
}

export async function startTestServer(options: { dataDir: string; staticDir?: string; port?: number; crossOriginIsolated?: boolean }): Promise<TestServer> {
  const key = await writeKey(options.dataDir);
  const listen = async (port: number) => {
    const app = await createServer({ dataDir: options.dataDir, staticDir: options.staticDir, logger: false, crossOriginIsolated: options.crossOriginIsolated });
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
