/**
 * The common frame of a browser test file: a task server on its own data folder serving the
 * built PWA, and a Chromium; both torn down after the file.
 */
import { afterAll, beforeAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from './browser.ts';
import { startTestServer, type TestServer } from './server.ts';

type ServerOptions = Omit<Parameters<typeof startTestServer>[0], 'dataDir' | 'staticDir'>;
import { TEST_DIST } from '../global-setup.ts';

export interface E2E {
  server: TestServer;
  browser: Browser;
  dataDir: string;
}

export function useServerAndBrowser(name: string, serverOptions: ServerOptions = {}): E2E {
  const env = {} as E2E;
  beforeAll(async () => {
    env.dataDir = mkdtempSync(join(tmpdir(), `dewgrid-e2e-${name}-`));
    env.server = await startTestServer({ ...serverOptions, dataDir: env.dataDir, staticDir: TEST_DIST });
    env.browser = await launchChromium();
  });
  afterAll(async () => {
    await env.browser?.close();
    await env.server?.close();
    if (env.dataDir) rmSync(env.dataDir, { recursive: true, force: true });
  });
  return env;
}
