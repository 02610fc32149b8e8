// Deterministic mode across devices: a task with redundancy 2 runs on two browser devices (two
// contexts, each its own workers), and the two results it gets are the same to the byte, though
// the program reads clocks, sleeps, draws random numbers, stamps files and lists a folder.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { waitForBatch, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';

const env = useServerAndBrowser('deterministic');

describe('deterministic runs in the browser', () => {
  it('give byte-identical results on two devices', async () => {
    const wasm = new Uint8Array(readFileSync(new URL('../fixtures/wasi/nondeterminism.wasm', import.meta.url)));
    const { batchId } = await publishBatch(
      env.server.url,
      await buildBatch(
        { name: 'deterministic', module: wasm, tasks: [{ args: ['nondeterminism'], env: [], stdin: null, files: [], preopens: ['/out'] }], limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 30_000, outputBytes: 2 ** 20 }, redundancy: 2, expiresInMs: 3600_000 },
        env.server.key,
      ), env.server.key,
    );
    const devices = await Promise.all([env.browser.newContext(), env.browser.newContext()]);
    for (const context of devices) {
      const page = await context.newPage();
      await page.goto(env.server.url);
      await page.waitForSelector('html[data-ready="true"]');
      await pressStart(page);
    }
    await waitForBatch(env.server, batchId, (c) => c.done === 1);
    // The two results' output digests (SHA-256 over exit code, stdout, stderr and every file) are equal.
    const [task] = await env.server.app.store.tasks(batchId);
    const results = task!.quorum.results;
    expect(results).toHaveLength(2);
    expect(results[0]!.deviceId).not.toBe(results[1]!.deviceId);
    expect(results.map((r) => r.validation)).toEqual(['valid', 'valid']);
    expect(results[1]!.digest).toBe(results[0]!.digest);
    expect(task!.canonical!.stdout.toString()).toMatch(/^realtime 1577836800\./);
    for (const context of devices) await context.close();
  });
});
