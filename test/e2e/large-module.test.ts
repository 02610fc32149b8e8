// Acceptance (issue #16, item 4): a 30 MB module over a slow link. The lease's terms count the
// module's size, the client renews the lease while it prepares (showing the bytes it has readied,
// signed), so the one lease lives through a prepare longer than its first term; the server never
// leases the task to the device again, so the device never refuses its own lease as a replay.
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { ownerHeaders } from '../helpers/server.ts';
import { TamperProxy } from '../helpers/tamper-proxy.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { API, sha256Hex, type BatchStatus, type TaskResultView } from '../../src/protocol/index.ts';
import { prepareAllowanceMs } from '../../server/store/rules.ts';
import type { DewgridApi } from '../../src/app/api.ts';

/** The pace the server assumes a device readies bytes at (the default is 250 kB/s): here 10 MB/s, so the first term is short. */
const ASSUMED_BYTES_PER_MS = 10_000;
/** The link's pace, far slower than the server assumes: the prepare outlives the lease's first term. */
const LINK_BYTES_PER_SECOND = 600_000;
const MARGIN_MS = 2_000;
const env = useServerAndBrowser('large-module', { leaseMarginMs: MARGIN_MS, prepareBytesPerMs: ASSUMED_BYTES_PER_MS });
type Win = { dewgrid: DewgridApi };

/**
 * A 30 MB WASI program: wordfreq (test/fixtures/wasi) with a 30 MB custom section appended (a
 * section any engine skips), so its bytes are as large as a big program's while it runs as wordfreq.
 */
function largeModule(): Uint8Array {
  const base = new Uint8Array(readFileSync(new URL('../fixtures/wasi/wordfreq.wasm', import.meta.url)));
  const name = new TextEncoder().encode('dewgrid-padding');
  const payload = 30 * 2 ** 20;
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n) byte |= 0x80;
      out.push(byte);
    } while (n);
    return out;
  };
  const body = [...leb(name.length), ...name];
  const header = [0, ...leb(body.length + payload)];
  const module = new Uint8Array(base.length + header.length + body.length + payload);
  module.set(base);
  module.set([...header, ...body], base.length);
  module.fill(0x2a, base.length + header.length + body.length);
  return module;
}

let proxy: TamperProxy;
beforeAll(async () => {
  proxy = await TamperProxy.start(env.server.url);
});
afterAll(async () => {
  await proxy?.close();
});

describe('a 30 MB module', () => {
  it('is prepared under one lease, renewed while preparing, and never refused as a replay', async () => {
    const module = largeModule();
    const moduleHash = await sha256Hex(module);
    proxy.throttles.push((exchange) => (exchange.path === API.blob(moduleHash) ? LINK_BYTES_PER_SECOND : null));
    const spec = {
      name: 'large',
      module,
      tasks: [{ args: ['wordfreq', '/data', '/tmp/out'], env: [] as [string, string][], stdin: null, files: [{ path: '/data/words.txt', data: new TextEncoder().encode('a b a') }], preopens: ['/data', '/tmp'] }],
      limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 20_000, outputBytes: 2 ** 20 },
      redundancy: 1,
      expiresInMs: 3600_000,
    };
    const batch = await publishBatch(env.server.url, await buildBatch(spec, env.server.key), env.server.key);
    const taskId = `${batch.batchId}-0`;
    // The first term: the time to prepare 30 MB at the assumed pace, the wall time, the margin.
    const firstTermMs = prepareAllowanceMs(module.length, ASSUMED_BYTES_PER_MS) + 20_000 + MARGIN_MS;
    const downloadMs = (module.length / LINK_BYTES_PER_SECOND) * 1000;
    expect(downloadMs).toBeGreaterThan(firstTermMs);

    const page = await env.browser.newPage();
    await page.goto(proxy.url);
    await page.waitForSelector('html[data-ready="true"]');
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());

    const results = async () => ((await (await fetch(env.server.url + API.batchResults(batch.batchId), { headers: await ownerHeaders(env.server.key, 'read') })).json()) as { tasks: TaskResultView[] }).tasks[0]!;
    await expect.poll(async () => (await results()).state, { timeout: downloadMs + 120_000, interval: 1000 }).toBe('done');
    const [task] = await env.server.app.store.tasks(batch.batchId);
    expect(task!.leases).toBe(1);
    const status = (await (await fetch(env.server.url + API.batch(batch.batchId), { headers: await ownerHeaders(env.server.key, 'read') })).json()) as BatchStatus;
    expect(status.refusals).toEqual([]);
    expect(status.failures).toEqual([]);
    // Renewed while preparing: renewals with phase 'preparing' went out and were taken.
    const renewals = proxy.log.filter((e) => e.path === API.renew).map((e) => ({ status: e.status, body: JSON.parse(e.requestBody.toString()) as { phase: string; progress: number; taskId: string } }));
    const preparing = renewals.filter((r) => r.body.phase === 'preparing' && r.body.taskId === taskId);
    expect(preparing.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    expect(preparing.map((r) => r.body.progress)).toEqual([...preparing.map((r) => r.body.progress)].sort((a, b) => a - b));
    expect((await results()).stdout).toContain('a');
    await page.close();
  });
});
