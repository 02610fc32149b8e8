// Acceptance (issue #3): key rotation end to end without rebuilding the app. The page keeps
// running while the project rotates its signing key (tasks signed by the new key run: the page
// fetches the new keyset itself) and then revokes the old one (tasks signed by it, even ones the
// page holds already, are refused; the server refuses to publish more of them).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { openDonorPage, waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch, type BatchSpec } from '../../server/publish.ts';
import { ServerRefusedError } from '../../owner/index.ts';
import { ownerFetch } from '../helpers/server.ts';
import { revokeKey, rotateKey } from '../../server/keys.ts';
import { API, type BatchStatus, type SignedKeyset } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('rotation');
const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
type Win = { dewgrid: DewgridApi };

const spec = (batchId: string, args: string[][]): BatchSpec => ({
  batchId,
  name: batchId,
  module: fractal,
  tasks: args.map((a) => ({ args: a, env: [], stdin: null, files: [], preopens: [] })),
  limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 },
  redundancy: 1,
  expiresInMs: 3600_000,
});
const small = (n: number) => Array.from({ length: n }, (_, i) => ['fractal', '32', '32', String(i * 8), '0', '8', '8', '500']);

async function push(keyset: SignedKeyset): Promise<void> {
  const response = await fetch(env.server.url + API.keyset, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(keyset) });
  expect(response.status, await response.clone().text()).toBe(200);
}

const logText = (page: Page) => page.locator('.activity li').allTextContents().then((lines) => lines.join('\n'));

describe('key rotation', () => {
  it('runs tasks of the new key and refuses those of the revoked one, on the same page', async () => {
    const { page } = await openDonorPage(env.browser, env.server.url);
    // The suite's other files are other programs to this page; backing off for them is not what this test is about.
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, backOffForOtherPrograms: false }));
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    const oldKey = env.server.key;
    await publishBatch(env.server.url, await buildBatch(spec('before', small(2)), oldKey), env.server.key);
    await waitForBatch(env.server, 'before', (c) => c.done === 2);

    // Rotation: a new signing key, the old one retiring in an hour; the page learns of it by itself.
    const { key: newKey, keyset: v2 } = await rotateKey(env.dataDir, { graceMs: 3600_000 });
    await push(v2);
    await publishBatch(env.server.url, await buildBatch(spec('rotated', small(2)), newKey), env.server.key);
    const rotated = await waitForBatch(env.server, 'rotated', (c) => c.done === 2);
    expect(rotated.refusals).toEqual([]);
    await expect.poll(() => logText(page)).toMatch(/The project's signing keys changed \(version 2: 2 keys\)/);

    // Revocation while the page holds tasks the old key signed: a long task first, then two of the old key's.
    await publishBatch(env.server.url, await buildBatch(spec('long', [['fractal', '960', '720', '860', '640', '80', '80', '300000']]), newKey), env.server.key);
    await publishBatch(env.server.url, await buildBatch(spec('doomed', small(2)), oldKey), env.server.key);
    await page.waitForFunction(() => {
      const s = (window as unknown as Win).dewgrid.status();
      return s.counts.running === 1 && s.counts.queued >= 2;
    });
    const v3 = await revokeKey(env.dataDir, oldKey.keyId);
    await push(v3);
    await expect.poll(() => logText(page), { timeout: 20_000 }).toMatch(/The project's signing keys changed \(version 3: 2 keys, 1 revoked\)/);

    // The old key was the owner's too: from now on the owner signs with the new one.
    const owner = { url: env.server.url, key: newKey };
    const doomed = await waitForBatch(owner, 'doomed', (c) => c.revoked === 2, 60_000);
    await expect
      .poll(async () => ((await (await ownerFetch(owner, API.batch('doomed'))).json()) as BatchStatus).refusals.map((r) => r.reason), { timeout: 60_000 })
      .toEqual(['revoked-key', 'revoked-key']);
    expect(doomed.counts.done).toBe(0);
    await waitForBatch(owner, 'long', (c) => c.done === 1, 60_000);
    expect(await logText(page)).toMatch(/signed by a key the project has revoked/);

    // The server takes no more of the old key's tasks; the new key still publishes.
    const refused = await publishBatch(env.server.url, await buildBatch(spec('late', small(1)), oldKey), newKey).catch((error: ServerRefusedError) => error);
    expect(refused).toBeInstanceOf(ServerRefusedError);
    expect((refused as ServerRefusedError).message).toMatch(/refused \(revoked-key\)/);
    // Nor its owner tokens.
    expect((await ownerFetch(env.server, API.batches)).status).toBe(401);
    await publishBatch(env.server.url, await buildBatch(spec('after', small(1)), newKey), newKey);
    await waitForBatch(owner, 'after', (c) => c.done === 1);
    await page.close();
  });
});
