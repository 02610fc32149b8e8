/**
 * A task server on a loopback port with its own data folder and signing key, for tests and
 * benchmarks. Uses the same createServer as `npm start`. stop() and start() take it down and
 * bring it back on the same port and data, as a crash and restart (or a network outage) would.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, keyIdOf, toBase64 } from '../../src/protocol/index.ts';
import { createServer, type DewgridServer } from '../../server/app.ts';

export interface SigningKey {
  keyId: string;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

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

/** Writes a key in the data folder's format and pins it in trust.json (as `dewgrid keygen` does). */
export async function writeKey(dataDir: string, name = 'demo', pin = true): Promise<SigningKey> {
  const { secretKey, publicKey } = await generateKeyPair();
  const keyId = await keyIdOf(publicKey);
  mkdirSync(join(dataDir, 'keys'), { recursive: true });
  writeFileSync(
    join(dataDir, 'keys', `${name}.json`),
    JSON.stringify({ keyId, publicKey: toBase64(publicKey), secretKey: toBase64(secretKey) }),
    { mode: 0o600 },
  );
  if (pin) writeFileSync(join(dataDir, 'trust.json'), JSON.stringify({ projectName: 'Dewgrid test project', keys: { [keyId]: toBase64(publicKey) } }));
  return { keyId, secretKey, publicKey };
}

export async function startTestServer(options: { dataDir: string; staticDir?: string; port?: number }): Promise<TestServer> {
  const key = await writeKey(options.dataDir);
  const listen = async (port: number) => {
    const app = await createServer({ dataDir: options.dataDir, staticDir: options.staticDir, logger: false });
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
