// Acceptance (issue #4): a WASIX task runs under @wasmer/sdk in the cross-origin isolated PWA, with
// the output the SDK gives it in Node; the same client on a page without isolation never asks
// for WASIX tasks (they stay queued, never leased to it) while its preview1 work goes on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { Wasmer } from '@wasmer/sdk/node';
import { launchChromium } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { openDonorPage, waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch, type BatchSpec } from '../../server/publish.ts';
import type { BatchResults } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';
import { TEST_DIST } from '../global-setup.ts';

const wasix = new Uint8Array(readFileSync(new URL('../fixtures/wasix/wasixinfo.wasm', import.meta.url)));
const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const limits = { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 };
const wasixSpec = (): BatchSpec => ({
  name: 'wasix',
  engine: 'wasix',
  module: wasix,
  tasks: [{ args: ['wasixinfo', '/data', '3000'], env: [['GREETING', 'hi']], stdin: null, files: [{ path: '/data/in.txt', data: new TextEncoder().encode('input\n') }], preopens: [] }],
  limits,
  redundancy: 1,
  expiresInMs: 3600_000,
});
const preview1Spec = (): BatchSpec => ({
  name: 'preview1',
  module: fractal,
  tasks: [{ args: ['fractal', '64', '64', '0', '0', '64', '64'], env: [], stdin: null, files: [], preopens: [] }],
  limits,
  redundancy: 1,
  expiresInMs: 3600_000,
});

/** The module under the SDK in Node: the reference for what the browser must produce. */
async function underWasmerInNode(): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const wasmer = new Wasmer({ cache: false });
  try {
    const pkg = await wasmer.packages.create({ modules: { task: wasix }, commands: { task: { module: 'task' } }, files: { '/data/in.txt': 'input\n' } });
    const sandbox = await wasmer.sandboxes.create({ packages: [pkg], env: { GREETING: 'hi' } });
    try {
      const output = await sandbox.command(pkg, ['/data', '3000']).run({ check: false });
      return { exitCode: output.exitCode, stdout: new TextDecoder().decode(output.stdout.bytes), stderr: new TextDecoder().decode(output.stderr.bytes) };
    } finally {
      await sandbox.close();
    }
  } finally {
    await wasmer.close();
  }
}

let browser: Browser;
let work: string;
const servers: TestServer[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-wasix-'));
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  for (const server of servers) await server.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the WASIX engine', () => {
  it('runs a WASIX task under @wasmer/sdk in the isolated page, as the SDK does in Node', async () => {
    const server = await startTestServer({ dataDir: join(work, 'isolated'), staticDir: TEST_DIST });
    servers.push(server);
    const { batchId } = await publishBatch(server.url, await buildBatch(wasixSpec(), server.key), server.key);
    const { page, errors } = await openDonorPage(browser, server.url);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.start());
    await waitForBatch(server, batchId, (counts) => counts.done === 1 || counts.failed === 1, 90_000);
    const task = ((await (await server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults).tasks[0]!;
    const reference = await underWasmerInNode();
    expect(task.error).toBeNull();
    expect(task.state).toBe('done');
    expect({ exitCode: task.exitCode, stdout: task.stdout, stderr: task.stderr }).toEqual(reference);
    // What only a WASIX host does: chdir and getcwd, and the integer work's known result.
    expect(task.stdout).toContain('chdir /data: errno 0\ngetcwd: errno 0, /data\n');
    expect(task.stdout).toContain('sum of squares of the first 3000 primes mod 2^32: ');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('is never asked for by a page that is not cross-origin isolated', async () => {
    const server = await startTestServer({ dataDir: join(work, 'plain'), staticDir: TEST_DIST, crossOriginIsolated: false });
    servers.push(server);
    const wasixBatch = await publishBatch(server.url, await buildBatch(wasixSpec(), server.key), server.key);
    const preview1Batch = await publishBatch(server.url, await buildBatch(preview1Spec(), server.key), server.key);
    const { page } = await openDonorPage(browser, server.url);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
    await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.start());
    await waitForBatch(server, preview1Batch.batchId, (counts) => counts.done === 1, 60_000);
    // Another full round of asking for work, then: the WASIX task was never leased to this device.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect((await server.app.store.tasks(wasixBatch.batchId)).map((t) => t.leases)).toEqual([0]);
    const status = await waitForBatch(server, wasixBatch.batchId, () => true);
    expect(status.counts.queued).toBe(1);
    await page.close();
  });
});
