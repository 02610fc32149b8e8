// Acceptance (issue #4): the C, Rust and AssemblyScript conformance programs pass in the browser
// and give the same results as under Node's WASI (the known, explained differences aside: see
// test/helpers/conformance.ts). Each runs as a signed task that a Chromium donor page computes.
import { describe, expect, it } from 'vitest';
import { useServerAndBrowser } from '../helpers/e2e.ts';
import { agreed, openDonorPage, waitForBatch } from '../helpers/donor.ts';
import { runUnderNodeWasi } from '../helpers/node-wasi.ts';
import { compareStdout, conformancePrograms } from '../helpers/conformance.ts';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import { fromBase64, type BatchResults, type JsonBytes } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';

const env = useServerAndBrowser('wasi-conformance');
const MiB = 2 ** 20;
const bytesOf = (value: JsonBytes | null): Uint8Array =>
  value === null ? new Uint8Array(0) : typeof value === 'string' ? new TextEncoder().encode(value) : fromBase64(value.base64);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

describe('conformance programs in the browser', () => {
  it('C, Rust and AssemblyScript programs give node:wasi\'s results', async () => {
    const programs = conformancePrograms();
    const limits = { memoryBytes: 64 * MiB, wallTimeMs: 30_000, outputBytes: MiB };
    const published = [];
    for (const program of programs) {
      const { args, env: vars, stdin, files, preopens } = program.options;
      const request = await buildBatch(
        { name: `conformance ${program.name}`, module: program.wasm, tasks: [{ args, env: vars, stdin, files, preopens }], limits, redundancy: 1, expiresInMs: 3600_000 },
        env.server.key,
      );
      published.push({ program, batchId: (await publishBatch(env.server.url, request, env.server.key)).batchId });
    }
    const { page, errors } = await openDonorPage(env.browser, env.server.url);
    await page.evaluate(() => (window as unknown as { dewgrid: DewgridApi }).dewgrid.start());

    for (const { program, batchId } of published) {
      await waitForBatch(env.server, batchId, (counts) => agreed(counts) === 1, 60_000); // node:wasi's exit code, whatever it is
      const task = ((await (await env.server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults).tasks[0]!;
      const reference = await runUnderNodeWasi(program.wasm, {
        ...program.options,
        maxStdoutBytes: limits.outputBytes,
        maxStderrBytes: limits.outputBytes,
        maxOutputFileBytes: limits.outputBytes,
      });
      expect(task.error, program.name).toBeNull();
      expect(compareStdout(program, decode(bytesOf(task.stdout)), decode(reference.stdout))).toEqual([]);
      expect(decode(bytesOf(task.stderr)), program.name).toBe(decode(reference.stderr));
      expect(task.exitCode, program.name).toBe(reference.exitCode);
      expect(task.files.map((f) => ({ path: f.path, data: bytesOf(f.data) })), program.name).toEqual(reference.files);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
});
