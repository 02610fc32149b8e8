// The page's side of the prepare worker checks every answer: one that is not a prepared module is
// this device's failure, named, never handed on as if it were one.
import { describe, expect, it } from 'vitest';
import { checkedModuleSource } from '../../src/scheduler/prepare-worker-client.ts';
import type { ModuleSource, PreparedModule } from '../../src/scheduler/module-preparer.ts';
import { manifest } from '../helpers/scheduler-fakes.ts';

const empty = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
const ready: PreparedModule = { kind: 'ready', module: empty, moduleBytes: null, stdin: new Uint8Array(1), files: [{ path: '/in', data: new Uint8Array(2) }], fetchMs: 3, compileMs: 4, source: 'fresh' };

/** A remote whose prepare answers `answer` and whose warnings are `warnings`. */
function remote(answer: unknown, warnings: unknown = []): ModuleSource {
  return { prepare: async () => answer as PreparedModule, prefetch: async () => undefined, takeWarnings: async () => warnings as string[] };
}

describe("the prepare worker's answers, as the page takes them", () => {
  it('passes a prepared module and a refusal on as they are', async () => {
    expect(await checkedModuleSource(remote(ready)).prepare(manifest('t'), Infinity)).toEqual(ready);
    const refused = { kind: 'refused', reason: 'module-hash-mismatch', detail: 'x' };
    expect(await checkedModuleSource(remote(refused)).prepare(manifest('t'), Infinity)).toEqual(refused);
  });

  it('turns an answer that is not a prepared module into a device failure naming the problem', async () => {
    for (const [answer, problem] of [
      [{ ...ready, module: new Uint8Array(8) }, 'module: '],
      [{ ...ready, stdin: 'text' }, 'stdin: must be a Uint8Array'],
      [{ kind: 'refused', reason: 'no-such-reason', detail: 'x' }, 'reason: '],
      [{ kind: 'done' }, 'kind: '],
      [undefined, ''],
    ] as const) {
      const prepared = await checkedModuleSource(remote(answer)).prepare(manifest('t'), Infinity);
      expect(prepared).toMatchObject({ kind: 'failed', code: 'device', message: expect.stringContaining('the prepare worker answered with something that is not a prepared module (' + problem) });
    }
  });

  it('turns warnings that are not text into one warning that says so', async () => {
    expect(await checkedModuleSource(remote(ready, ['disk full'])).takeWarnings()).toEqual(['disk full']);
    expect(await checkedModuleSource(remote(ready, [42])).takeWarnings()).toEqual([expect.stringMatching(/^the prepare worker sent warnings that are not text \(0: /)]);
  });
});
