/**
 * The client as the browser benchmarks drive it: built (trusting the test keys), served by a task
 * server on a fresh data folder, in a fresh Chromium; all of it torn down after `use`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { buildClient } from '../test/helpers/build.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { startTestServer, type TestServer } from '../test/helpers/server.ts';

export async function withBuiltClient<T>(name: string, use: (server: TestServer, browser: Browser) => Promise<T>): Promise<T> {
  const outDir = join(tmpdir(), `dewgrid-bench-${name}-dist`);
  await buildClient(outDir);
  const dataDir = mkdtempSync(join(tmpdir(), `dewgrid-bench-${name}-`));
  const server = await startTestServer({ dataDir, staticDir: outDir });
  const browser = await launchChromium();
  try {
    return await use(server, browser);
  } finally {
    await browser.close();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
