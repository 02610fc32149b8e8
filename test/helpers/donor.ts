/** A donor page in Chromium: open, start, wait for a batch on the server. */
import type { Browser, JSHandle, Page, Worker } from 'playwright-core';
import { MIN_VISIBLE_MS } from '../../src/embed/visibility.ts';
import { ownerHeaders } from './server.ts';

export async function openDonorPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('html[data-ready="true"]');
  return { page, errors };
}

/** Tasks whose result devices agreed on, whatever the program's exit code (`done` and `exit-nonzero`). */
export function agreed(counts: Record<string, number>): number {
  return (counts.done ?? 0) + (counts['exit-nonzero'] ?? 0);
}

/**
 * Polls a batch's status as its owner until `done` holds of its counts.
 * @param server the test server (its URL and the project's key, which signs the owner's token)
 */
export async function waitForBatch(server: { url: string; key: { keyId: string; secretKey: Uint8Array } }, batchId: string, done: (counts: Record<string, number>) => boolean, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  const headers = await ownerHeaders(server.key);
  for (;;) {
    const status = (await (await fetch(`${server.url}/api/batches/${batchId}`, { headers })).json()) as { counts: Record<string, number>; refusals: { reason: string; taskId: string }[] };
    if (done(status.counts)) return status;
    if (Date.now() > deadline) throw new Error(`batch ${batchId} did not finish: ${JSON.stringify(status.counts)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Polls an async predicate in the page until it is truthy. (page.waitForFunction does not await
 * a promise its predicate returns: a pending promise counts as truthy.)
 */
export async function waitForAsync<A>(page: Page, predicate: (arg: A) => Promise<unknown>, arg: A, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(predicate as (arg: unknown) => Promise<unknown>, arg as unknown))) {
    if (Date.now() > deadline) throw new Error(`waitForAsync: still false after ${timeoutMs} ms: ${predicate.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Counts WebAssembly.compile and compileStreaming calls in the page from its first script on, and
 * in its prepare worker (where modules are compiled) from its start (read it with compilations()):
 * what a refusal stops must never reach the compiler.
 */
export async function countCompilations(page: Page): Promise<() => Promise<number>> {
  const count = () => {
    const scope = globalThis as unknown as { compiled?: number };
    if (scope.compiled !== undefined) return;
    scope.compiled = 0;
    const { compile, compileStreaming } = WebAssembly;
    WebAssembly.compile = (bytes) => {
      scope.compiled!++;
      return compile(bytes);
    };
    WebAssembly.compileStreaming = (source) => {
      scope.compiled!++;
      return compileStreaming(source);
    };
  };
  await page.addInitScript(count);
  // The prepare worker starts with the client, long before the first lease is prepared.
  const workers: Worker[] = [];
  page.on('worker', (worker) => {
    if (!worker.url().includes('prepare-worker')) return;
    workers.push(worker);
    void worker.evaluate(count).catch(() => undefined);
  });
  return async () => {
    let total = await page.evaluate(() => (globalThis as unknown as { compiled: number }).compiled);
    for (const worker of workers) total += await worker.evaluate(() => (globalThis as unknown as { compiled?: number }).compiled ?? 0).catch(() => 0);
    return total;
  };
}

/**
 * A handle on what the client's IndexedDB holds under `key` in `store` (undefined if nothing): read
 * it with `.jsonValue()`, or `.evaluate()` for what does not leave the page (a CryptoKey).
 */
export function storedValue(page: Page, store: string, key: string): Promise<JSHandle> {
  return page.evaluateHandle(
    ([store, key]) =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('dewgrid');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const read = open.result.transaction(store).objectStore(store).get(key);
          read.onerror = () => reject(read.error);
          read.onsuccess = () => {
            open.result.close();
            resolve(read.result);
          };
        };
      }),
    [store, key] as const,
  );
}

/**
 * Presses Start as a donor does, so that it counts and is remembered (src/app/start-guard.ts):
 * the pointer comes to rest on the button once it has been in view for a moment, then clicks.
 */
export async function pressStart(page: Page): Promise<void> {
  const start = page.getByRole('button', { name: 'Start' });
  await start.hover();
  await page.waitForTimeout(MIN_VISIBLE_MS + 250);
  await start.click();
  await page.getByRole('button', { name: 'Stop' }).waitFor({ timeout: 10_000 });
}
