// Acceptance (issue #2): `dewgrid publish` of a WASI program that is not the demo, with args,
// env, stdin, files and a preopened folder; a browser donates; `dewgrid results` gives exit code,
// stdout, stderr and output files byte-identical to the same module under Node's WASI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { openDonorPage, waitForBatch, pressStart } from '../helpers/donor.ts';
import { runUnderNodeWasi } from '../helpers/node-wasi.ts';
import { TEST_DIST } from '../global-setup.ts';

const run = promisify(execFile);
let server: TestServer;
let browser: Browser;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-cli-'));
  server = await startTestServer({ dataDir: join(work, 'data'), staticDir: TEST_DIST });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

function dewgrid(...args: string[]) {
  return run(process.execPath, ['server/bin/dewgrid.js', ...args, '--server', server.url, '--data', join(work, 'data')], { maxBuffer: 64 * 2 ** 20 });
}

describe('a program we did not write for the demo, through the CLI and a browser', () => {
  it('matches node:wasi byte for byte', async () => {
    const corpus = join(work, 'corpus');
    mkdirSync(join(corpus, 'nested'), { recursive: true });
    writeFileSync(join(corpus, 'one.txt'), 'It was the best of times, it was the worst of times.\n');
    writeFileSync(join(corpus, 'two.txt'), 'Call me Ishmael. Some years ago, never mind how long precisely.\n');
    writeFileSync(join(corpus, 'nested', 'deep.txt'), 'deep deep down\n');
    writeFileSync(join(corpus, 'binary.dat'), Buffer.from([0, 1, 2, 253, 254, 255]));
    writeFileSync(join(work, 'stdin.txt'), 'stdin says hello\nand goodbye\n');
    writeFileSync(join(work, 'extra.txt'), 'an extra file placed by --file\n');
    const wasm = 'test/fixtures/wasi/wordfreq.wasm';

    const published = await dewgrid(
      'publish', wasm,
      '--arg', '/data', '--arg', '/out/report-{i}.tsv',
      '--env', 'WORDFREQ_TOP=4', '--env', 'WORDFREQ_EXIT={i}',
      '--stdin', join(work, 'stdin.txt'),
      '--dir', `${corpus}:/data`,
      '--file', `/out/extra.txt=${join(work, 'extra.txt')}`,
      '--count', '2', '--json',
    );
    const { batchId, tasks } = JSON.parse(published.stdout) as { batchId: string; tasks: string[] };
    expect(tasks).toHaveLength(2);

    const { page, errors } = await openDonorPage(browser, server.url);
    await pressStart(page);
    await waitForBatch(server, batchId, (c) => c.done === 1 && c['exit-nonzero'] === 1); // task 1 exits 1 (WORDFREQ_EXIT={i})
    expect(errors).toEqual([]);

    const { stdout } = await dewgrid('results', batchId, '--json', '--accept-failures');
    const results = JSON.parse(stdout) as { batchId: string; tasks: { taskId: string; state: string; exitCode: number; stdout: string; stderr: string; files: { path: string; data: string }[]; error: unknown }[] };
    expect(results.batchId).toBe(batchId);

    // The reference: the same module, inputs and flags under node:wasi.
    const files = [
      ...['binary.dat', 'nested/deep.txt', 'one.txt', 'two.txt'].map((name) => ({ path: `/data/${name}`, data: new Uint8Array(readFileSync(join(corpus, name))) })),
      { path: '/out/extra.txt', data: new Uint8Array(readFileSync(join(work, 'extra.txt'))) },
    ];
    for (const [i, task] of results.tasks.entries()) {
      const reference = await runUnderNodeWasi(new Uint8Array(readFileSync(wasm)), {
        args: ['wordfreq', '/data', `/out/report-${i}.tsv`],
        env: [['WORDFREQ_TOP', '4'], ['WORDFREQ_EXIT', String(i)]],
        stdin: new Uint8Array(readFileSync(join(work, 'stdin.txt'))),
        files,
        preopens: ['/data', '/out'],
        maxStdoutBytes: 1 << 24,
        maxStderrBytes: 1 << 24,
        maxOutputFileBytes: 1 << 24,
      });
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      expect(task.state).toBe(i === 0 ? 'done' : 'exit-nonzero'); // honest: exit 1 is agreed on, but no success
      expect(task.error).toBeNull();
      expect(task.exitCode).toBe(reference.exitCode);
      expect(task.exitCode).toBe(i);
      expect(task.stdout).toBe(text(reference.stdout));
      expect(task.stderr).toBe(text(reference.stderr));
      expect(task.files).toEqual(reference.files.map((f) => ({ path: f.path, data: text(f.data) })));
      expect(task.files.map((f) => f.path)).toEqual([`/out/report-${i}.tsv`]);
    }

    // --out writes the same bytes to disk.
    const out = join(work, 'results');
    await dewgrid('results', batchId, '--out', out, '--accept-failures');
    expect(readdirSync(out).sort()).toEqual([...tasks].sort());
    expect(readFileSync(join(out, tasks[1]!, 'exit-code'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(out, tasks[1]!, 'files', 'out', 'report-1.tsv'), 'utf8')).toBe(results.tasks[1]!.files[0]!.data);
    await page.close();
  });
});
