// Which engine runs what: a WASIX module cannot run under the preview1 shim (it is refused at link
// time, naming what it imports), and a page advertises WASIX only when cross-origin isolated.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runJob } from '../../worker/run-job.ts';
import { runnableEngines } from '../../src/scheduler/engines.ts';

describe('engines', () => {
  it('the preview1 runtime refuses a WASIX module with a link error naming its wasix_32v1 imports', () => {
    const module = new WebAssembly.Module(readFileSync(new URL('../fixtures/wasix/wasixinfo.wasm', import.meta.url)));
    const outcome = runJob({
      taskId: 't',
      engine: 'wasi-preview1',
      module,
      args: ['wasixinfo'],
      env: [],
      stdin: new Uint8Array(0),
      files: [],
      preopens: [],
      limits: { memoryBytes: 2 ** 26, outputBytes: 2 ** 20 },
      cpu: 1,
      deterministic: false,
    });
    expect(outcome.error?.code).toBe('link');
    expect(outcome.error?.message).toMatch(/wasix_32v1\.chdir .*wasix_32v1\.getcwd/);
  });

  it('advertises wasix only on a cross-origin isolated page', () => {
    expect(runnableEngines({ crossOriginIsolated: true })).toEqual(['wasi-preview1', 'wasix']);
    expect(runnableEngines({ crossOriginIsolated: false })).toEqual(['wasi-preview1']);
    expect(runnableEngines({})).toEqual(['wasi-preview1']);
  });
});
