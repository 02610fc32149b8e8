/**
 * (b) Lease + result cycles per second the task server sustains with simulated clients on
 * loopback, and the latency of one cycle (POST /api/work, then POST /api/results).
 * Bounded: a fixed number of cycles, then it stops.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeKey } from '../test/helpers/server.ts';
import { publishTasks, runFleet } from '../test/helpers/fleet.ts';
import { spawnServer } from '../test/helpers/server-process.ts';
import { quantile, fmt } from './stats.ts';

export interface ThroughputReport {
  clients: number;
  cycles: number;
  seconds: number;
  cyclesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export async function benchServerThroughput(clients = 32, cycles = 20000): Promise<ThroughputReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-bench-'));
  const key = await writeKey(dataDir);
  // The server in its own process, as deployed: the simulated clients here do not share its event loop.
  const server = await spawnServer({ DEWGRID_DATA: dataDir }, { flags: process.env.DEWGRID_BENCH_SERVER_FLAGS?.split(' ').filter(Boolean) });
  try {
    await publishTasks(server.url, key, { prefix: 'bench', count: cycles });
    // Each client a device with its own key; results signed as the page signs them (the signing,
    // done by the client, is inside the cycle time; the server verifies each signature).
    const run = await runFleet({ servers: () => [server.url], devices: clients, cycles });
    return { clients, cycles: run.cycles, seconds: run.seconds, cyclesPerSecond: run.cycles / run.seconds, p50Ms: quantile(run.latencies, 0.5), p99Ms: quantile(run.latencies, 0.99) };
  } finally {
    await server.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printServerThroughput(r: ThroughputReport): void {
  console.log(`\n(b) Task server, lease + result cycles on loopback: ${r.clients} simulated clients, ${r.cycles} cycles in ${fmt(r.seconds)} s`);
  console.log(`    ${fmt(r.cyclesPerSecond, 0)} cycles/s (${fmt((r.cyclesPerSecond * 86400) / 1e6)} million tasks/day); cycle latency p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms`);
  console.log(`    for scale: BOINC's 2005 server handed out ~8.8 million tasks/day (~100/s): ${fmt(r.cyclesPerSecond / 100, 1)}x that`);
}
