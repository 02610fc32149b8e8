/**
 * What each of Debian's browsers shows a Dewgrid page, read by feature tests in the page itself:
 * the "seen here" column of docs/engines.md. The built client is served as `npm start` serves it
 * (cross-origin isolated), and the embed's card on a partner page of another site.
 *
 *   node --import tsx scripts/capabilities.ts
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient } from '../test/helpers/build.ts';
import { startTestServer, TEST_KEYS_DIR } from '../test/helpers/server.ts';
import { launchEngine, type EngineName, type EngineOptions } from '../test/helpers/engines/index.ts';
import { startPartnerSite } from '../demo/partner/server.ts';

const CONFIGS: [EngineName, EngineOptions][] = [
  ['chromium', { computePressure: true }],
  ['firefox', {}],
  ['webkit', { profile: 'ephemeral' }],
  ['webkit', { profile: 'persistent', sharedArrayBuffer: true }],
];

/** Runs in the page: each capability as the page can tell it. */
async function probe(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  out.crossOriginIsolated = crossOriginIsolated;
  out['SharedArrayBuffer global'] = typeof SharedArrayBuffer === 'function';
  out['memory shared with a worker'] = (() => {
    let buffer: unknown;
    try {
      buffer = typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(8) : new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer;
    } catch {
      return false;
    }
    const channel = new MessageChannel();
    try {
      channel.port1.postMessage(buffer);
      return true;
    } catch {
      return false;
    } finally {
      channel.port1.close();
    }
  })();
  out['IndexedDB keeps Blobs'] = await new Promise((resolve) => {
    const open = indexedDB.open('capabilities-probe');
    open.onupgradeneeded = () => open.result.createObjectStore('s');
    open.onerror = () => resolve(`open failed: ${open.error?.name}`);
    open.onsuccess = () => {
      const tx = open.result.transaction('s', 'readwrite');
      const put = tx.objectStore('s').put(new Blob(['x']), 'k');
      put.onsuccess = () => resolve(true);
      put.onerror = () => resolve(false);
    };
  });
  out['Compute Pressure'] = typeof (globalThis as { PressureObserver?: unknown }).PressureObserver === 'function';
  out['Battery Status'] = typeof (navigator as { getBattery?: unknown }).getBattery === 'function';
  out['IntersectionObserver v2'] = 'isVisible' in IntersectionObserverEntry.prototype;
  out['Background Sync'] = 'SyncManager' in globalThis;
  out['WebCrypto Ed25519'] = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']).then(
    () => true,
    (e: Error) => e.name,
  );
  out['storage.persist()'] = typeof navigator.storage?.persist === 'function';
  out['Screen Wake Lock'] = 'wakeLock' in navigator;
  out['JSPI (WebAssembly.Suspending)'] = typeof (WebAssembly as { Suspending?: unknown }).Suspending === 'function';
  out.hardwareConcurrency = navigator.hardwareConcurrency;
  out['service worker controls the page'] = await new Promise((resolve) => {
    const deadline = Date.now() + 15_000;
    const look = () => (navigator.serviceWorker.controller !== null ? resolve(true) : Date.now() > deadline ? resolve(false) : setTimeout(look, 100));
    look();
  });
  return out;
}

const dist = mkdtempSync(join(tmpdir(), 'dewgrid-capabilities-dist-'));
const data = mkdtempSync(join(tmpdir(), 'dewgrid-capabilities-'));
await buildClient(dist);
const server = await startTestServer({ dataDir: data, staticDir: dist });
const { projectName } = JSON.parse(readFileSync(join(TEST_KEYS_DIR, 'trust.json'), 'utf8')) as { projectName: string };
const site = await startPartnerSite({ dewgridOrigin: new URL(server.url).origin, projectName });
const columns: { name: string; values: Record<string, unknown> }[] = [];
try {
  for (const [name, options] of CONFIGS) {
    const engine = await launchEngine(name, options);
    try {
      const page = await engine.newPage();
      await page.goto(server.url);
      await page.waitFor(() => document.documentElement.dataset.ready === 'true', undefined);
      const values = await page.evaluate(probe);
      // Document-Isolation-Policy: is the card isolated inside a partner page that is not?
      await page.goto(site.url.replace('127.0.0.1', 'localhost'));
      const card = await page.frame('iframe[title^="Dewgrid"]');
      values['Document-Isolation-Policy (card isolated)'] = await card.waitFor(() => document.readyState === 'complete' && String(crossOriginIsolated), undefined);
      await page.close();
      columns.push({ name: engine.description, values });
    } finally {
      await engine.close();
    }
  }
} finally {
  await site.close();
  await server.close();
  rmSync(dist, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
}
const rows = Object.keys(columns[0]!.values);
console.log(`| seen by a Dewgrid page | ${columns.map((c) => c.name).join(' | ')} |`);
console.log(`| --- | ${columns.map(() => '---').join(' | ')} |`);
for (const row of rows) console.log(`| ${row} | ${columns.map((c) => String(c.values[row])).join(' | ')} |`);
