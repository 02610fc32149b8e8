/**
 * (m) The renderer's memory under the hostile-shim suite: each module of test/helpers/hostile-memory.ts
 * (symbolic links with 16 MiB targets, long names and many directories, descriptors, deleted files
 * kept open, deleted inputs, a byte per write, checkpoints in a loop) run as a signed task by a
 * donor page in Chromium, one worker, under the limits (32 MiB memory, 1 MiB output). The
 * page's renderer processes are read from /proc every 50 ms, outside the page: the growth from
 * before the task was published to the highest reading while it ran, against the task's bound
 * (its linear memory, stdout and stderr, the shim's budget, its inputs twice, one waiting
 * checkpoint) plus RENDERER_CONSTANT_BYTES. Bytes, not time, though a loaded machine moves them a
 * little (garbage collected later or sooner).
 */
import type { BatchResults } from '../src/protocol/index.ts';
import { withBuiltClient } from './client-under-test.ts';
import { MEMORY_ATTACKS, printed, RENDERER_CONSTANT_BYTES, runMemoryAttack, startDonor, warmUp, type AttackMeasurement } from '../test/helpers/hostile-memory.ts';

export async function benchHostileMemory(): Promise<AttackMeasurement[]> {
  return withBuiltClient('hostile-memory', async (server, browser) => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('html[data-ready="true"]');
    await startDonor(page);
    const resultOf = async (batchId: string) => ((await (await server.owner(`/api/batches/${batchId}/results`)).json()) as BatchResults).tasks[0] ?? null;
    await warmUp(server, resultOf);
    const out: AttackMeasurement[] = [];
    for (const attack of MEMORY_ATTACKS) out.push(await runMemoryAttack(server, attack, resultOf));
    return out;
  });
}

export function printHostileMemory(measurements: AttackMeasurement[]): void {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  console.log(`\n(m) Renderer memory under the hostile-shim suite (/proc, outside the page): growth while each task ran, against its bound + ${mib(RENDERER_CONSTANT_BYTES)}`);
  for (const m of measurements) {
    const grew = m.peakBytes - m.baselineBytes;
    const held = m.attack.held.test(printed(m.task)) && !m.task.error;
    console.log(
      `    ${m.attack.name.padEnd(56)} ${mib(grew).padStart(8)} of ${mib(m.boundBytes + RENDERER_CONSTANT_BYTES).padStart(8)} ${grew <= m.boundBytes + RENDERER_CONSTANT_BYTES && held ? 'held' : 'NOT HELD'}`,
    );
  }
}
