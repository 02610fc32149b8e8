/**
 * Hostile modules that try to make the WASI shim hold the donor's memory (issue #13 item 5; the
 * sources in test/fixtures/hostile/), each run as a signed task by a donor page while the page's
 * renderer processes are measured from outside (renderer-memory.ts). Used by the hostile suite
 * (test/e2e/hostile.test.ts) and by `npm run bench -- hostile-memory`.
 */
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { buildBatch, publishBatch } from '../../server/publish.ts';
import type { BatchResults, TaskManifest } from '../../src/protocol/index.ts';
import { shimBudgetBytes } from '../../worker/wasi/budget.ts';
import { rendererRssBytes, sampleRendererMemory } from './renderer-memory.ts';
import type { SigningKey } from '../../server/keys.ts';

const MiB = 2 ** 20;
const read = (path: string) => new Uint8Array(readFileSync(new URL(`../../${path}`, import.meta.url)));

export type TaskResult = BatchResults['tasks'][number];

export interface MemoryAttack {
  name: string;
  module: string;
  preopens: string[];
  files?: { path: string; data: Uint8Array }[];
  /** What the program must print (or the run end with) once the shim holds it to its budget. */
  held: RegExp;
  /** What it printed on the tree before the fix, for the record (docs/benchmarks.md). */
  before: string;
}

/** Every attack runs under these limits: the issue's `--memory 32 --output-limit 1`. */
export const ATTACK_LIMITS: TaskManifest['limits'] = { memoryBytes: 32 * MiB, wallTimeMs: 20_000, outputBytes: MiB };

/**
 * What the renderer may hold for one task: its linear memory, stdout and stderr, the shim's budget,
 * its input files twice (the manifest's bytes and the file made of them) and one waiting
 * checkpoint copy: docs/wasi.md, "What a task can make the shim hold".
 */
export function taskMemoryBound(attack: MemoryAttack, limits = ATTACK_LIMITS): number {
  const inputs = (attack.files ?? []).reduce((sum, f) => sum + f.data.length, 0);
  return limits.memoryBytes + 2 * limits.outputBytes + shimBudgetBytes(limits) + 2 * inputs + limits.outputBytes;
}

/** What a donor page's renderer may take beyond a task's own bound: a worker, compiling, results, caches. */
export const RENDERER_CONSTANT_BYTES = 64 * MiB;

export const MEMORY_ATTACKS: MemoryAttack[] = [
  {
    name: 'symbolic links with 16 MiB targets',
    module: 'test/fixtures/hostile/symlinks.wasm',
    preopens: ['/out'],
    held: /^made 0 links; then: Filename too long\n$/,
    before: 'made 32 links (512 MiB of targets)',
  },
  {
    name: 'a 4000-byte name, then directories with 255-byte names',
    module: 'test/fixtures/hostile/names.wasm',
    preopens: ['/out'],
    held: /^a 4000-byte name: Filename too long\nmade \d+ directories; then: No space left on device\n$/,
    before: 'a 4000-byte name: made; made 400000 directories (about 300 MiB)',
  },
  {
    name: 'the same file opened 20 000 times',
    module: 'test/fixtures/hostile/fds.wasm',
    preopens: ['/out'],
    held: /^open 10\d\d files; then: No file descriptors available\n$/,
    before: 'open 20000 files (each open slower than the last)',
  },
  {
    name: 'files filled, deleted and kept open',
    module: 'test/fixtures/hostile/unlinked.wasm',
    preopens: ['/out'],
    held: /^1 files held; write: No space left on device\n$/,
    before: '256 files held (256 MiB under a 1 MiB cap)',
  },
  {
    name: 'input files deleted or truncated to make room',
    module: 'test/fixtures/hostile/inputs.wasm',
    preopens: ['/out', '/in'],
    files: [
      { path: '/in/a', data: new Uint8Array(4 * MiB).fill(0x61) },
      { path: '/in/b', data: new Uint8Array(4 * MiB).fill(0x62) },
    ],
    held: /^five files after deleting \/in\/a: wrote 1048576 bytes; then: No space left on device\ninto \/in\/b, truncated: wrote 1048576 bytes; then: File too large\n$/,
    before: 'wrote 5 MiB after deleting /in/a, and 5 MiB into /in/b truncated, under a 1 MiB cap',
  },
  {
    name: 'stdout a byte per call',
    module: 'test/fixtures/hostile/stdio.wasm',
    preopens: [],
    held: /^o{1048576}$/,
    before: 'a separate array per write: a million of them',
  },
  {
    name: 'a 1 MiB checkpoint closed 2000 times',
    module: 'test/fixtures/hostile/checkpoints.wasm',
    preopens: ['/checkpoint'],
    held: /^2000 checkpoints\n$/,
    before: 'every close handed to the page: 2 GB',
  },
];

export interface AttackMeasurement {
  attack: MemoryAttack;
  task: TaskResult;
  /** The renderers' resident bytes when the task was published (the page idle), and at most while it ran. */
  baselineBytes: number;
  peakBytes: number;
  boundBytes: number;
}

/**
 * Publishes one attack, lets the page (already started, one worker) run it, and returns its
 * result with the renderers' memory around it.
 * @param resultOf how to read the task's result from the server (the caller knows how it may)
 */
export async function runMemoryAttack(
  server: { url: string; key: SigningKey },
  attack: MemoryAttack,
  resultOf: (batchId: string) => Promise<TaskResult | null>,
  timeoutMs = 90_000,
): Promise<AttackMeasurement> {
  const baselineBytes = rendererRssBytes();
  const sampler = sampleRendererMemory();
  try {
    const spec = { args: [attack.name], env: [] as [string, string][], stdin: null, files: attack.files ?? [], preopens: attack.preopens };
    const request = await buildBatch({ name: attack.name, module: read(attack.module), tasks: [spec], limits: ATTACK_LIMITS, redundancy: 1, expiresInMs: 3600_000 }, server.key);
    const { batchId } = await publishBatch(server.url, request, server.key);
    for (const deadline = Date.now() + timeoutMs; ; ) {
      const task = await resultOf(batchId);
      if (task && (task.error || task.exitCode !== null)) {
        return { attack, task, baselineBytes, peakBytes: sampler.stop(), boundBytes: taskMemoryBound(attack) };
      }
      if (Date.now() > deadline) throw new Error(`${attack.name}: no result after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    sampler.stop();
  }
}

/**
 * Runs one ordinary task first, so the worker exists and the client has settled before the first
 * attack's baseline is read (a worker's own start is not the attack's doing).
 */
export async function warmUp(server: { url: string; key: SigningKey }, resultOf: (batchId: string) => Promise<TaskResult | null>): Promise<void> {
  const spec = { args: ['fractal', '32', '32', '0', '0', '32', '32'], env: [] as [string, string][], stdin: null, files: [], preopens: [] };
  const request = await buildBatch({ name: 'warm-up', module: read('demo/fractal/fractal.wasm'), tasks: [spec], limits: ATTACK_LIMITS, redundancy: 1, expiresInMs: 3600_000 }, server.key);
  const { batchId } = await publishBatch(server.url, request, server.key);
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const task = await resultOf(batchId);
    if (task && (task.error || task.exitCode !== null)) return;
  }
  throw new Error('the warm-up task did not finish in 60 s');
}

/** What the program printed, for matching against `held`. */
export function printed(task: TaskResult): string {
  return typeof task.stdout === 'string' ? task.stdout : `(base64) ${task.stdout?.base64 ?? ''}`;
}

/** Starts the page's client with one worker, so attacks run one at a time. */
export async function startDonor(page: Page): Promise<void> {
  await page.evaluate(() => {
    const dewgrid = (window as unknown as { dewgrid: { setLimits(l: { workers: number }): void; start(): void } }).dewgrid;
    dewgrid.setLimits({ workers: 1 });
    dewgrid.start();
  });
}
