// Storage that behaves: corrupted cached bytes are noticed and fetched again; the module cache
// stays under its budget by evicting the least recently used, and the queue survives.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { waitForBatch } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { sha256Hex } from '../../src/protocol/index.ts';

const env = useServerAndBrowser('storage');

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const wordfreq = new Uint8Array(readFileSync(new URL('../fixtures/wasi/wordfreq.wasm', import.meta.url)));



async function publish(module: Uint8Array, args: string[], count: number) {
  const tasks = Array.from({ length: count }, () => ({ args, env: [] as [string, string][], stdin: null, files: [], preopens: ['/tmp'] }));
  return publishBatch(env.server.url, await buildBatch({ name: 'storage', module, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, env.server.key), env.server.key);
}

/** Runs a raw IndexedDB request against the client's database, from the page. */
function idb<T>(page: Page, fn: string, arg: unknown): Promise<T> {
  return page.evaluate(
    ([body, a]) =>
      new Promise<T>((resolve, reject) => {
        const open = indexedDB.open('dewgrid');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const db = open.result;
          const run = new Function('db', 'arg', 'resolve', 'reject', body as string) as (db: IDBDatabase, a: unknown, ok: (v: T) => void, no: (e: unknown) => void) => void;
          run(db, a, (v) => (db.close(), resolve(v)), (e) => (db.close(), reject(e)));
        };
      }),
    [fn, arg] as const,
  );
}

async function openClient(page: Page) {
  await page.goto(env.server.url);
  await page.waitForSelector('html[data-ready="true"]');
}

describe('storage', () => {
  it('drops a cached module whose bytes were corrupted, fetches it again, verifies and runs it', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await openClient(page);
    const first = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 1);
    await page.getByRole('button', { name: 'Start' }).click();
    await waitForBatch(env.server, first.batchId, (c) => c.done === 1);
    await page.getByRole('button', { name: 'Stop' }).click();

    const hash = await sha256Hex(fractal);
    await idb(page, `const tx = db.transaction('blobs', 'readwrite'); const s = tx.objectStore('blobs');
      const g = s.get(arg); g.onsuccess = () => { const v = g.result; v.bytes = new Uint8Array(v.bytes); v.bytes[100] ^= 0xff; s.put(v); };
      tx.oncomplete = () => resolve(true); tx.onerror = () => reject(tx.error);`, hash);

    const fetched: string[] = [];
    page.on('request', (r) => void (r.url().includes('/api/blobs/') && fetched.push(r.url())));
    const second = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 2);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await page.getByRole('button', { name: 'Start' }).click();
    await waitForBatch(env.server, second.batchId, (c) => c.done === 2);
    expect(fetched).toEqual([`${env.server.url}/api/blobs/${hash}`]);
    expect((await page.locator('.activity li').allTextContents()).join('\n')).toMatch(/no longer matched its hash; it was dropped and will be fetched again/);
    await context.close();
  });

  it('evicts the least recently used module to stay in budget, and the queue survives', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await openClient(page);
    // A budget that holds one of the two modules, not both.
    const budget = Math.max(fractal.length, wordfreq.length) + 1000;
    await idb(page, `const tx = db.transaction('meta', 'readwrite'); tx.objectStore('meta').put(arg, 'blobBudgetBytes'); tx.oncomplete = () => resolve(true);`, budget);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    const a = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 3);
    const b = await publish(wordfreq, ['wordfreq', '/tmp', '/tmp/report'], 3);
    await page.getByRole('button', { name: 'Start' }).click();
    await waitForBatch(env.server, a.batchId, (c) => c.done === 3);
    await waitForBatch(env.server, b.batchId, (c) => c.done === 3);
    const cached = await idb<{ sha256: string; size: number }[]>(page, `const r = db.transaction('blobs').objectStore('blobs').getAll(); r.onsuccess = () => resolve(r.result.map((v) => ({ sha256: v.sha256, size: v.size })));`, null);
    expect(cached.reduce((n, c) => n + c.size, 0)).toBeLessThanOrEqual(budget);
    expect(cached.map((c) => c.sha256)).toEqual([await sha256Hex(wordfreq)]); // the older one went
    await context.close();
  });
});
