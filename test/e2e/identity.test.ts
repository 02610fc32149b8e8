// Device identity (issue #3): where the browser has no Ed25519 in WebCrypto, the device's key pair
// is made with @noble/ed25519 instead, and its signed results are accepted all the same.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { storedValue, waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { DewgridApi } from '../../src/app/api.ts';
import type { DeviceCredit } from '../../src/protocol/index.ts';

const env = useServerAndBrowser('identity');
const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));

describe('device identity', () => {
  it('falls back to @noble/ed25519 where WebCrypto cannot make an Ed25519 key, and its results verify', async () => {
    const page = await env.browser.newPage();
    // A browser without Ed25519 key generation (as Safari before 17, or Firefox before 129).
    await page.addInitScript(() => {
      const generateKey = SubtleCrypto.prototype.generateKey;
      SubtleCrypto.prototype.generateKey = function (this: SubtleCrypto, algorithm: AlgorithmIdentifier, ...rest: unknown[]) {
        const name = typeof algorithm === 'string' ? algorithm : algorithm.name;
        if (name === 'Ed25519') return Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'));
        return (generateKey as (...args: unknown[]) => Promise<CryptoKeyPair>).call(this, algorithm, ...rest);
      } as SubtleCrypto['generateKey'];
    });
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    const kind = await (await storedValue(page, 'meta', 'identity')).evaluate((stored: { kind?: string } | undefined) => stored?.kind);
    expect(kind).toBe('noble');

    const { batchId } = await publishBatch(
      env.server.url,
      await buildBatch({ name: 'noble', module: fractal, tasks: [0, 1].map((i) => ({ args: ['fractal', '32', '32', String(i * 16), '0', '16', '16', '500'], env: [], stdin: null, files: [], preopens: [] })), limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 30_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key), env.server.key,
    );
    await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.start());
    await waitForBatch(env.server, batchId, (c) => c.done === 2);
    const { deviceId } = await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.status());
    const credit = (await (await fetch(`${env.server.url}/api/devices/${deviceId}`)).json()) as DeviceCredit;
    expect(credit.results).toMatchObject({ valid: 2, invalid: 0 });
    await page.close();
  });
});
