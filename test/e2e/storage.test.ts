// Storage that behaves: corrupted cached bytes are noticed and fetched again; the module cache
// stays under its budget by evicting the least recently used, and the queue survives.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { tmpdir } from 'node:os';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { launchChromiumProfile } from '../helpers/browser.ts';
import { agreed, waitForBatch, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { sha256Hex } from '../../src/protocol/index.ts';

const env = useServerAndBrowser('storage');

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const wordfreq = new Uint8Array(readFileSync(new URL('../fixtures/wasi/wordfreq.wasm', import.meta.url)));



async function publish(module: Uint8Array, args: string[], count: number, files: { path: string; data: Uint8Array }[] = []) {
  const tasks = Array.from({ length: count }, () => ({ args, env: [] as [string, string][], stdin: null, files, preopens: ['/tmp'] }));
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
    await pressStart(page);
    await waitForBatch(env.server, first.batchId, (c) => c.done === 1);
    await page.getByRole('button', { name: 'Stop' }).click();

    const hash = await sha256Hex(fractal);
    await idb(page, `const tx = db.transaction('blobs', 'readwrite'); const s = tx.objectStore('blobs');
      const g = s.get(arg); g.onsuccess = () => { const v = g.result; v.bytes = new Uint8Array(v.bytes); v.bytes[100] ^= 0xff; s.put(v); };
      tx.oncomplete = () => resolve(true); tx.onerror = () => reject(tx.error);`, hash);

    // The rewritten module kept in Cache Storage would be used instead of the bytes: gone too.
    await page.evaluate(() => caches.delete('dewgrid-modules'));

    const fetched: string[] = [];
    page.on('request', (r) => void (r.url().includes('/api/blobs/') && fetched.push(r.url())));
    const second = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 2);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page);
    await waitForBatch(env.server, second.batchId, (c) => c.done === 2);
    expect(fetched).toEqual([`${env.server.url}/api/blobs/${hash}`]);
    expect((await page.locator('.activity li').allTextContents()).join('\n')).toMatch(/no longer matched its hash; it was dropped and will be fetched again/);

    // The rewritten module in Cache Storage corrupted: dropped, and made again from the cached
    // original (nothing fetched), then kept again.
    const kept = () => page.evaluate(async () => {
      const cache = await caches.open('dewgrid-modules');
      return Promise.all((await cache.keys()).map(async (key) => {
        const response = (await cache.match(key))!;
        const bytes = new Uint8Array(await response.arrayBuffer());
        const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
        return { url: key.url, ok: hash === response.headers.get('x-dewgrid-sha256') };
      }));
    });
    await page.getByRole('button', { name: 'Stop' }).click();
    // Kept while the module compiles, so perhaps just after the task: waited for.
    await expect.poll(kept, { timeout: 10_000 }).toEqual([{ url: expect.stringContaining(hash), ok: true }]);
    await page.evaluate(async () => {
      const cache = await caches.open('dewgrid-modules');
      const key = (await cache.keys())[0]!;
      const response = (await cache.match(key))!;
      const bytes = new Uint8Array(await response.arrayBuffer());
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
      await cache.put(key, new Response(bytes, { headers: response.headers }));
    });
    expect(await kept()).toEqual([{ url: expect.stringContaining(hash), ok: false }]);
    fetched.length = 0;
    const third = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 1);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page);
    await waitForBatch(env.server, third.batchId, (c) => c.done === 1);
    expect(fetched).toEqual([]);
    await expect.poll(kept, { timeout: 10_000 }).toEqual([{ url: expect.stringContaining(hash), ok: true }]);
    await context.close();
  });

  it('compiles a kept module as the service worker answers it, so a new browser session starts from Chromium\'s compiled code', async () => {
    // A donor's browser: a profile on disk, closed and opened again (a reload in one renderer finds
    // V8's in-process module cache instead). Chromium keeps compiled code only for a module that
    // fetch() returned: the service worker answers for the kept one. V8 writes it once 1 MB of the
    // module is optimised at once, or after 2 s without more (a timer that did not fire in
    // Chromium 156 here: bench/wasm-code-cache.ts); the fractal is far smaller, so that timeout is
    // 0 here: written as soon as 1000 bytes are optimised.
    const profile = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-code-cache-'));
    const args = ['fractal', '256', '256', '0', '0', '256', '256'];
    const session = async <T>(use: (page: Page) => Promise<T>): Promise<T> => {
      const context = await launchChromiumProfile(profile, { extraArgs: ['--js-flags=--wasm-caching-timeout-ms=0'] });
      try {
        const page = context.pages()[0] ?? (await context.newPage());
        await openClient(page);
        await page.evaluate(() => (window as unknown as { dewgrid: { setSettings(s: object): void } }).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, backOffWhileInUse: false, backOffForOtherPrograms: false }));
        return await use(page);
      } finally {
        await context.close();
      }
    };
    const runOne = async (page: Page) => {
      const batch = await publish(fractal, args, 1);
      await page.evaluate(() => (window as unknown as { dewgrid: { start(): void } }).dewgrid.start());
      await waitForBatch(env.server, batch.batchId, (c) => c.done === 1);
      await page.evaluate(() => (window as unknown as { dewgrid: { stop(): void } }).dewgrid.stop());
    };
    const traced = async (page: Page, work: () => Promise<void>): Promise<string[]> => {
      const cdp = await page.context().newCDPSession(page);
      const names: string[] = [];
      cdp.on('Tracing.dataCollected', (e) => void names.push(...e.value.map((v) => v.name!)));
      const complete = new Promise<void>((resolve) => cdp.once('Tracing.tracingComplete', () => resolve()));
      await cdp.send('Tracing.start', { traceConfig: { includedCategories: ['disabled-by-default-devtools.timeline', 'v8.wasm'] }, transferMode: 'ReportEvents' });
      await work();
      await page.waitForTimeout(500); // the code is kept from a background thread, as the task ends
      await cdp.send('Tracing.end');
      await complete;
      return names;
    };
    try {
      await session(async (page) => {
        await runOne(page); // rewritten, compiled from memory, kept
        await page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined)); // installed before the browser closes
      });
      // The kept module, fetched through the service worker and compiled; once optimised, its code is kept beside it.
      const second = await session((page) => traced(page, () => runOne(page)));
      expect(second).toContain('v8.wasm.cachedModule');
      expect(second).not.toContain('v8.wasm.moduleCacheHit');
      // The next session deserialises that code instead of compiling the module.
      const third = await session((page) => traced(page, () => runOne(page)));
      expect(third).toContain('v8.wasm.moduleCacheHit');
      expect(third).toContain('wasm.Deserialize');
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
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
    await pressStart(page);
    await waitForBatch(env.server, a.batchId, (c) => c.done === 3);
    await waitForBatch(env.server, b.batchId, (c) => agreed(c) === 3); // its result agreed, whatever wordfreq's exit code
    const cached = await idb<{ sha256: string; size: number }[]>(page, `const r = db.transaction('blobs').objectStore('blobs').getAll(); r.onsuccess = () => resolve(r.result.map((v) => ({ sha256: v.sha256, size: v.bytes.length })));`, null);
    expect(cached.reduce((n, c) => n + c.size, 0)).toBeLessThanOrEqual(budget);
    expect(cached.map((c) => c.sha256)).toEqual([await sha256Hex(wordfreq)]); // the older one went
    // The index says the same, without the bytes.
    const indexed = await idb<{ sha256: string; size: number }[]>(page, `const r = db.transaction('blobIndex').objectStore('blobIndex').getAll(); r.onsuccess = () => resolve(r.result.map((v) => ({ sha256: v.sha256, size: v.size })));`, null);
    expect(indexed).toEqual(cached);
    await context.close();
  });

  it('takes a version 6 database to version 7: its cached blobs indexed by size and last use, the rewritten modules dropped', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    // A same-origin page that does not start the client, to make the old database in.
    await page.goto(`${env.server.url}/api/keyset`);
    const hash = await sha256Hex(fractal);
    await page.evaluate(
      ([sha256, bytes]) =>
        new Promise<void>((resolve, reject) => {
          const open = indexedDB.open('dewgrid', 6);
          open.onupgradeneeded = () => {
            const db = open.result;
            db.createObjectStore('blobs', { keyPath: 'sha256' }).createIndex('lastUsed', 'lastUsed');
            db.createObjectStore('meta');
            db.createObjectStore('leases', { keyPath: 'leaseId' }).createIndex('addedAt', 'addedAt');
            db.createObjectStore('outbox', { keyPath: 'leaseId' }).createIndex('nextAttemptAt', 'nextAttemptAt');
            db.createObjectStore('checkpoints', { keyPath: 'leaseId' });
            db.createObjectStore('instrumented', { keyPath: 'key' }).createIndex('lastUsed', 'lastUsed');
            db.createObjectStore('completed', { keyPath: 'taskId' }).createIndex('expiresAt', 'expiresAt');
            open.transaction!.objectStore('blobs').put({ sha256, bytes: new Uint8Array(bytes), size: bytes.length, lastUsed: 1234 });
          };
          open.onsuccess = () => (open.result.close(), resolve());
          open.onerror = () => reject(open.error);
        }),
      [hash, Array.from(fractal)] as const,
    );
    await openClient(page);
    const after = await idb<{ version: number; stores: string[]; index: unknown[] }>(page, `const r = db.transaction('blobIndex').objectStore('blobIndex').getAll(); r.onsuccess = () => resolve({ version: db.version, stores: [...db.objectStoreNames], index: r.result });`, null);
    expect(after.version).toBe(7);
    expect(after.stores).not.toContain('instrumented');
    expect(after.index).toEqual([{ sha256: hash, size: fractal.length, lastUsed: 1234 }]);
    // And the kept bytes serve a task without a fetch.
    const fetched: string[] = [];
    page.on('request', (r) => void (r.url().includes('/api/blobs/') && fetched.push(r.url())));
    const batch = await publish(fractal, ['fractal', '16', '16', '0', '0', '16', '16'], 1);
    await pressStart(page);
    await waitForBatch(env.server, batch.batchId, (c) => c.done === 1);
    expect(fetched).toEqual([]);
    await context.close();
  });

  it('records a cache hit in the index alone: the bytes are written once, when first stored', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await openClient(page);
    const input = { path: '/tmp/words.txt', data: new TextEncoder().encode('a cached input, read again after a reload\n') };
    const first = await publish(wordfreq, ['wordfreq', '/tmp', '/tmp/report'], 1, [input]);
    await pressStart(page);
    await waitForBatch(env.server, first.batchId, (c) => c.done === 1);
    await page.getByRole('button', { name: 'Stop' }).click();
    const hash = await sha256Hex(input.data);
    const lastUsed = () => idb<number>(page, `const r = db.transaction('blobIndex').objectStore('blobIndex').get(arg); r.onsuccess = () => resolve(r.result.lastUsed);`, hash);
    const stored = () => idb<string[]>(page, `const r = db.transaction('blobs').objectStore('blobs').get(arg); r.onsuccess = () => resolve(Object.keys(r.result).sort());`, hash);
    const before = await lastUsed();
    expect(await stored()).toEqual(['bytes', 'sha256']); // no size, no time: those are the index's
    // Another task with the same input, after a reload: the input is read from the cache, a hit.
    const second = await publish(wordfreq, ['wordfreq', '/tmp', '/tmp/report'], 1, [input]);
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page);
    await waitForBatch(env.server, second.batchId, (c) => c.done === 1);
    // Hits are written to the index together, just after: wait for it.
    await expect.poll(lastUsed, { timeout: 10_000 }).toBeGreaterThan(before);
    expect(await stored()).toEqual(['bytes', 'sha256']);
    await context.close();
  });
  it('fetches a task\'s many small inputs in one request, and the task runs on them', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await openClient(page);
    const files = Array.from({ length: 40 }, (_, i) => ({ path: `/tmp/in/${i}.txt`, data: new TextEncoder().encode(`input number ${i} of forty\n`) }));
    const requests: string[] = [];
    page.on('request', (r) => void (r.url().includes('/api/blobs/') && requests.push(`${r.method()} ${r.url().slice(env.server.url.length)}`)));
    const batch = await publish(wordfreq, ['wordfreq', '/tmp/in', '/tmp/report'], 1, files);
    await pressStart(page);
    await waitForBatch(env.server, batch.batchId, (c) => c.done === 1);
    expect(requests.sort()).toEqual([`GET /api/blobs/${await sha256Hex(wordfreq)}`, 'POST /api/blobs/batch']);
    await context.close();
  });
});
