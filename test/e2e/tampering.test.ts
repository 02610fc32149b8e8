// Acceptance (issue #3): a tampering proxy between the page and the server flips a byte of the
// module, of the manifest and of the signature, serves tasks signed by an unknown key and by a
// revoked key, an expired task, a replay of a task the device completed, and an older keyset. The
// client executes none of them, the server records each refusal with its reason code, and the
// honest tasks of the same batch complete.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { countCompilations, storedValue, waitForBatch, pressStart } from '../helpers/donor.ts';
import { ownerFetch } from '../helpers/server.ts';
import { TamperProxy, type Exchange } from '../helpers/tamper-proxy.ts';
import { buildBatch, publishBatch, type BatchSpec } from '../../server/publish.ts';
import { readKeyset, revokeKey, rotateKey, type SigningKey } from '../../server/keys.ts';
import {
  API,
  fromBase64,
  generateKeyPair,
  keyIdOf,
  parseResultBody,
  sha256Hex,
  signTask,
  toBase64,
  type BatchResults,
  type Lease,
  type SignedKeyset,
  type SignedTask,
  type WorkResponse,
} from '../../src/protocol/index.ts';

const env = useServerAndBrowser('tampering');

/** The task id of a posted result, binary (the client's) or JSON. */
function resultTaskId(body: Buffer): unknown {
  const binary = parseResultBody(new Uint8Array(body));
  return binary.ok ? (binary.head as { taskId?: unknown }).taskId : (JSON.parse(body.toString()) as { taskId?: unknown }).taskId;
}
let proxy: TamperProxy;
let retired: SigningKey;
let current: SigningKey;
let firstKeyset: SignedKeyset;

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
/** The demo module with a custom section appended: the same code under another hash. */
const variant = new Uint8Array([...fractal, 0x00, 0x08, 0x07, ...new TextEncoder().encode('variant')]);

const spec = (name: string, module: Uint8Array, tiles: number): BatchSpec => ({
  batchId: name,
  name,
  module,
  tasks: Array.from({ length: tiles }, (_, i) => ({ args: ['fractal', '64', '64', String((i % 4) * 16), String(Math.floor(i / 4) * 16), '16', '16', '2000'], env: [], stdin: null, files: [], preopens: [] })),
  limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 30_000, outputBytes: 2 ** 20 },
  redundancy: 1,
  expiresInMs: 3600_000,
});

beforeAll(async () => {
  // The project rotated its signing key and revoked the old one: keyset version 3.
  firstKeyset = readKeyset(env.dataDir)!;
  retired = env.server.key;
  current = (await rotateKey(env.dataDir, { graceMs: 3600_000 })).key;
  const v3 = await revokeKey(env.dataDir, retired.keyId);
  const pushed = await fetch(env.server.url + API.keyset, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v3) });
  expect(pushed.status).toBe(200);
  proxy = await TamperProxy.start(env.server.url);
});
afterAll(async () => {
  await proxy?.close();
});

/** The project owner, signing with the current key (the first one is revoked, and its owner tokens with it). */
const owner = () => ({ url: env.server.url, key: current });

describe('through a tampering proxy', () => {
  it('executes nothing tampered with, reports each refusal with its reason, and finishes the honest tasks', async () => {
    const honest = await buildBatch(spec('honest', fractal, 8), current);
    await publishBatch(env.server.url, honest, current);
    await publishBatch(env.server.url, await buildBatch(spec('modtamper', variant, 1), current), current);
    const variantHash = await sha256Hex(variant);
    const original = (taskId: string) => honest.tasks.find((t) => t.manifest.taskId === taskId)!;
    const stranger = await generateKeyPair();
    const strangerKey = { keyId: await keyIdOf(stranger.publicKey), ...stranger };
    const now = Date.now();

    // What the proxy puts in place of each attacked task's envelope, and the refusal expected.
    const attacks: Record<string, { envelope: (task: SignedTask) => Promise<SignedTask>; reason: string }> = {
      'honest-1': { reason: 'bad-signature', envelope: async (t) => ({ ...t, manifest: { ...t.manifest, args: [...t.manifest.args.slice(0, -1), '2001'] } }) },
      'honest-2': {
        reason: 'bad-signature',
        envelope: async (t) => {
          const signature = fromBase64(t.signature);
          signature[17]! ^= 0x01;
          return { ...t, signature: toBase64(signature) };
        },
      },
      'honest-3': { reason: 'unknown-key', envelope: (t) => signTask({ ...t.manifest, keyId: strangerKey.keyId }, strangerKey.secretKey) },
      'honest-4': { reason: 'revoked-key', envelope: (t) => signTask({ ...t.manifest, keyId: retired.keyId }, retired.secretKey) },
      'honest-5': { reason: 'expired-task', envelope: (t) => signTask({ ...t.manifest, issuedAt: now - 7200_000, expiresAt: now - 3600_000 }, current.secretKey) },
    };

    // The lease of honest-0 as first served, replayed once its result has gone by.
    let firstLeaseOfZero: Lease | null = null;
    let zeroAnswered = false;
    let replayed = false;
    let staleKeyset = false;
    proxy.tampers.push(async (x: Exchange) => {
      if (x.method === 'POST' && x.path === API.work && x.status === 200) {
        const work = JSON.parse(x.body.toString()) as WorkResponse;
        for (const lease of work.leases) {
          const id = lease.task.manifest.taskId;
          if (id === 'honest-0') firstLeaseOfZero ??= structuredClone(lease);
          if (attacks[id]) lease.task = await attacks[id].envelope(original(id));
        }
        if (zeroAnswered && !replayed && firstLeaseOfZero) {
          replayed = true;
          work.leases.push(firstLeaseOfZero);
        }
        return Buffer.from(JSON.stringify(work));
      }
      if (x.method === 'POST' && x.path === API.results && resultTaskId(x.requestBody) === 'honest-0') zeroAnswered = true;
      if (x.method === 'GET' && x.path === API.blob(variantHash) && x.status === 200) {
        const bytes = Buffer.from(x.body);
        bytes[bytes.length - 20]! ^= 0xff;
        return bytes;
      }
      if (staleKeyset && x.method === 'GET' && x.path === API.keyset) {
        // An older keyset, in which the revoked key was still good.
        x.status = 200;
        x.contentType = 'application/json';
        return Buffer.from(JSON.stringify(firstKeyset));
      }
      return x.body;
    });

    const page = await env.browser.newPage();
    // Count compilations in the page: nothing refused may reach WebAssembly.compile.
    const compilations = await countCompilations(page);
    await page.goto(proxy.url);
    await page.waitForSelector('html[data-ready="true"]'); // it holds keyset 3 now
    staleKeyset = true; // from here on the proxy serves keyset 1
    await page.evaluate(() => (window as unknown as { dewgrid: { setLimits(l: object): void } }).dewgrid.setLimits({ workers: 1 }));
    await pressStart(page);

    await waitForBatch(owner(), 'honest', (c) => c.done === 3);
    // Every refusal on record: five attacked tasks, the replay, the module, and the keyset.
    const refusalsRecorded = async () => {
      const honestRefusals = (await waitForBatch(owner(), 'honest', () => true)).refusals.length;
      const moduleRefusals = (await waitForBatch(owner(), 'modtamper', () => true)).refusals.length;
      return honestRefusals + moduleRefusals + Math.min(1, (await env.server.app.store.keysetRefusals()).length);
    };
    await expect.poll(refusalsRecorded, { timeout: 30_000 }).toBe(8);
    await page.waitForFunction(() => document.querySelectorAll('li[data-level="refused"]').length >= 8, null, { timeout: 20_000 });

    const results = (await (await ownerFetch(owner(), API.batchResults('honest'))).json()) as BatchResults;
    const byId = new Map(results.tasks.map((t) => [t.taskId, t]));
    // Honest tasks done; honest-0 once, though it was served twice.
    for (const id of ['honest-0', 'honest-6', 'honest-7']) expect(byId.get(id), id).toMatchObject({ state: 'done', results: 1 });
    // Each attacked task: refused with its reason, nothing ever returned for it.
    for (const [id, { reason }] of Object.entries(attacks)) {
      const t = byId.get(id)!;
      expect(t.refusals.map((r) => r.reason), id).toEqual([reason]);
      expect(t.quorum.results, id).toEqual([]);
      expect(t.state, id).not.toBe('done');
    }
    expect(byId.get('honest-0')!.refusals.map((r) => r.reason)).toEqual(['replayed-task']);
    const modtamper = (await (await ownerFetch(owner(), API.batchResults('modtamper'))).json()) as BatchResults;
    expect(modtamper.tasks[0]!.refusals.map((r) => r.reason)).toEqual(['module-hash-mismatch']);
    expect(modtamper.tasks[0]!.quorum.results).toEqual([]);
    expect(await env.server.app.store.keysetRefusals()).toMatchObject([{ version: 1, reason: 'keyset-rollback' }]);

    // One module compiled (the honest one); the tampered module is not kept as if trusted.
    expect(await compilations()).toBe(1);
    const cached = await (await storedValue(page, 'blobs', variantHash)).evaluate((blob) => blob !== undefined);
    expect(cached).toBe(false);

    // The page says why, in plain words.
    const log = (await page.locator('li[data-level="refused"]').allTextContents()).join('\n');
    for (const words of [
      /the signature does not match the task/,
      /signed by a key this client does not trust/,
      /signed by a key the project has revoked/,
      /the task has expired/,
      /already completed this task \(a replay\)/,
      /do not match the hash the project signed/,
      /older than the one this client holds \(a rollback\)/,
    ]) {
      expect(log).toMatch(words);
    }
    await page.close();
  });
});
