/**
 * (d) Task start latency in the browser client: the fetchMs + compileMs it reports for each task
 * (module bytes from the network or IndexedDB, size and hash check, memory cap, compile). The
 * envelope's signature check (about 1 ms) comes before and is not included. Three cases:
 *  - cold: a module this device has never seen (fetched, verified, cached, compiled);
 *  - warm: the same module again in the same session (compiled module reused: nothing fetched);
 *  - reloaded: after a page reload (module bytes from IndexedDB, re-hashed, compiled once more).
 * Distinct "new" modules are the demo module with a custom section naming a variant: same code,
 * another hash.
 */
import { readFileSync } from 'node:fs';
import { withBuiltClient } from './client-under-test.ts';
import type { Page } from 'playwright-core';
import type { TestServer } from '../test/helpers/server.ts';
import { waitForBatch } from '../test/helpers/donor.ts';
import { buildBatch, publishBatch } from '../server/publish.ts';
import { fmt, median, quantile } from './stats.ts';

export interface StartLatencyReport {
  cold: { median: number; p95: number; n: number };
  warm: { median: number; p95: number; n: number };
  reloaded: { median: number; p95: number; n: number };
}

/** The module with a custom section appended: a valid module with a different hash. */
function variant(bytes: Uint8Array, n: number): Uint8Array {
  const name = new TextEncoder().encode(`dewgrid-bench-${n}`);
  const payload = [name.length, ...name];
  return new Uint8Array([...bytes, 0, payload.length, ...payload]);
}

async function publishTasks(server: TestServer, module: Uint8Array, count: number): Promise<string> {
  const tasks = Array.from({ length: count }, () => ({ args: ['fractal', '8', '8', '0', '0', '8', '8'], env: [] as [string, string][], stdin: null, files: [], preopens: [] }));
  const { batchId } = await publishBatch(server.url, await buildBatch({ name: 'latency', module, tasks, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, server.key), server.key);
  return batchId;
}

async function startTimes(server: TestServer, batchId: string): Promise<number[]> {
  // Redundancy 1: each task's one result is its canonical one; in the order they arrived.
  const tasks = (await server.app.store.tasks(batchId)).filter((t) => t.canonical).sort((a, b) => a.quorum.results[0]!.at - b.quorum.results[0]!.at);
  return tasks.map(({ canonical }) => canonical!.timings.fetchMs + canonical!.timings.compileMs);
}

const summary = (values: number[]) => ({ median: median(values), p95: quantile(values, 0.95), n: values.length });

export async function benchStartLatency(samples = 15): Promise<StartLatencyReport> {
  const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
  return withBuiltClient('latency', async (server, browser) => {
    const page: Page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await page.evaluate(() => (window as unknown as { dewgrid: { setLimits(l: object): void; start(): void } }).dewgrid.setLimits({ workers: 1 }));
    await page.evaluate(() => (window as unknown as { dewgrid: { start(): void } }).dewgrid.start());

    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < samples; i++) {
      // One batch per new module: its first task is cold, the next ones warm.
      const batchId = await publishTasks(server, variant(fractal, i), 3);
      await waitForBatch(server, batchId, (c) => c.done === 3);
      const [first, ...rest] = await startTimes(server, batchId);
      cold.push(first!);
      warm.push(...rest);
    }
    const reloaded: number[] = [];
    for (let i = 0; i < samples; i++) {
      // A module already cached in IndexedDB by the loop above, in a fresh session.
      await page.reload();
      await page.waitForSelector('html[data-ready="true"]');
      const batchId = await publishTasks(server, variant(fractal, i), 1);
      await waitForBatch(server, batchId, (c) => c.done === 1);
      reloaded.push(...(await startTimes(server, batchId)));
    }
    return { cold: summary(cold), warm: summary(warm), reloaded: summary(reloaded) };
  });
}

export function printStartLatency(r: StartLatencyReport): void {
  console.log('\n(d) Task start latency in the browser: fetchMs + compileMs the client reports (module fetch or cache read, hash check, compile)');
  for (const [name, s] of [['module not cached', r.cold], ['compiled this session', r.warm], ['cached, after reload', r.reloaded]] as const) {
    console.log(`    ${name.padEnd(22)} median ${fmt(s.median)} ms, p95 ${fmt(s.p95)} ms (n=${s.n})`);
  }
}
