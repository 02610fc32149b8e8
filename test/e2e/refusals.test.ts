// Acceptance (issue #2): a tampered module (one byte changed on the server's disk) and a task
// signed by another key are refused before compiling; the refusal shows in the page and in
// `dewgrid status`; honest work still completes.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { agreed, countCompilations, openDonorPage, waitForBatch, pressStart } from '../helpers/donor.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { generateKeyPair, keyIdOf, sha256Hex } from '../../src/protocol/index.ts';
import { blobFile } from '../../server/store/files.ts';

const env = useServerAndBrowser('refusals');




const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const wordfreq = new Uint8Array(readFileSync(new URL('../fixtures/wasi/wordfreq.wasm', import.meta.url)));
const spec = (module: Uint8Array, name: string, args: string[][]) => ({
  name,
  module,
  tasks: args.map((a) => ({ args: a, env: [] as [string, string][], stdin: null, files: [], preopens: ['/tmp'] })),
  limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 30_000, outputBytes: 2 ** 20 },
  redundancy: 1,
  expiresInMs: 3600_000,
});

describe('refusals', () => {
  it('refuses a tampered module and a foreign signature before compiling, and honest tasks complete', async () => {
    // Tampered: published honestly, then one byte flipped on the server's disk.
    const tampered = await publishBatch(env.server.url, await buildBatch(spec(fractal, 'tampered', [['fractal', '8', '8', '0', '0', '8', '8']]), env.server.key), env.server.key);
    const blobPath = blobFile(join(env.dataDir, 'blobs'), await sha256Hex(fractal));
    const onDisk = readFileSync(blobPath);
    onDisk[onDisk.length - 10]! ^= 0xff;
    writeFileSync(blobPath, onDisk);

    // Foreign: signed by a key the client does not pin, slipped straight into the store (a compromised server).
    const stranger = await generateKeyPair();
    const strangerKey = { keyId: await keyIdOf(stranger.publicKey), ...stranger };
    const foreign = await buildBatch({ ...spec(wordfreq, 'foreign', [['wordfreq', '/tmp', '/tmp/r']]), batchId: 'foreign' }, strangerKey);
    await env.server.app.store.writeBlobs(new Map([[await sha256Hex(wordfreq), wordfreq]]));
    await env.server.app.store.publishBatch({ batchId: 'foreign', name: 'foreign', digest: 'x', adaptive: false, tasks: foreign.tasks });

    // Honest work, with another module, in the same run.
    const honest = await publishBatch(env.server.url, await buildBatch(spec(wordfreq, 'honest', [['wordfreq', '/tmp', '/tmp/a'], ['wordfreq', '/tmp', '/tmp/b']]), env.server.key), env.server.key);

    const page = await env.browser.newPage();
    // Count compilations in the page: refused modules must never reach WebAssembly.compile.
    const compilations = await countCompilations(page);
    await page.goto(env.server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await pressStart(page);

    await waitForBatch(env.server, honest.batchId, (c) => agreed(c) === 2); // its results agreed, whatever wordfreq's exit code
    const tamperedStatus = await waitForBatch(env.server, tampered.batchId, () => true);
    const foreignStatus = await waitForBatch(env.server, 'foreign', () => true);
    await page.waitForFunction(() => document.querySelectorAll('li[data-level="refused"]').length >= 2);

    expect(tamperedStatus.refusals.map((r) => r.reason)).toEqual(['module-hash-mismatch']);
    expect(foreignStatus.refusals.map((r) => r.reason)).toEqual(['unknown-key']);
    expect(tamperedStatus.counts.done).toBe(0);
    expect(foreignStatus.counts.done).toBe(0);
    expect(await compilations()).toBe(1); // wordfreq only

    const log = await page.locator('li[data-level="refused"]').allTextContents();
    expect(log.join('\n')).toMatch(/do not match the hash the project signed/);
    expect(log.join('\n')).toMatch(/signed by a key this client does not trust/);
    // The counters are redrawn with the page's coalesced status (a moment after the log's line).
    await page.waitForFunction(() => document.querySelector('[data-count="refused"] dd')?.textContent === '2');

    const { stdout } = await promisify(execFile)(process.execPath, ['server/bin/dewgrid.js', 'status', tampered.batchId, '--server', env.server.url, '--data', env.server.dataDir]);
    expect(stdout).toMatch(/module-hash-mismatch: the module's bytes do not match the hash the project signed/);
    await page.close();
  });
});
