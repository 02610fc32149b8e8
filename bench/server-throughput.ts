/**
 * (b) Lease + result cycles per second the task server sustains with simulated clients on
 * loopback, and the latency of one cycle (POST /api/work, then POST /api/results).
 * Bounded: a fixed number of cycles, then it stops.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API, sha256Hex, signTask, toBase64, type PublishRequest, type TaskManifest } from '../src/protocol/index.ts';
import { spawn } from 'node:child_process';
import { writeKey } from '../test/helpers/server.ts';
import { TestDevice } from '../test/helpers/device.ts';
import { quantile, fmt } from './stats.ts';

export interface ThroughputReport {
  clients: number;
  cycles: number;
  seconds: number;
  cyclesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const MODULE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);

async function post(base: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

export async function benchServerThroughput(clients = 32, cycles = 20000): Promise<ThroughputReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-bench-'));
  const key = await writeKey(dataDir);
  // The server in its own process, as deployed: the simulated clients here do not share its event loop.
  const child = spawn(process.execPath, [...(process.env.DEWGRID_BENCH_SERVER_FLAGS?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', 'server/main.ts'], {
    // Each simulated client makes about a hundred requests a second, far above one browser's: the per-device limit is raised out of the way.
    env: { ...process.env, PORT: '0', DEWGRID_DATA: dataDir, DEWGRID_STATIC: join(dataDir, 'no-static'), DEWGRID_DEVICE_RATE: '1000000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk;
      const match = /on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
  const server = { url, key };
  try {
    const moduleHash = await sha256Hex(MODULE);
    const now = Date.now();
    const batchSize = 5000;
    for (let b = 0; b * batchSize < cycles; b++) {
      const batchId = `bench-${b}`;
      const tasks = [];
      for (let i = 0; i < batchSize; i++) {
        const manifest: TaskManifest = {
          v: 1, keyId: server.key.keyId, taskId: `${batchId}-${i}`, batchId, name: 'bench', issuedAt: now, expiresAt: now + 3600_000,
          engine: 'wasi-preview1', module: { sha256: moduleHash, size: MODULE.length }, args: ['bench', String(i)], env: [], stdin: null,
          files: [], preopens: [], limits: { memoryBytes: 2 ** 24, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1,
        };
        tasks.push(await signTask(manifest, server.key.secretKey));
      }
      const request: PublishRequest = { batch: { batchId, name: 'bench' }, tasks, blobs: { [moduleHash]: toBase64(MODULE) } };
      await post(server.url, API.batches, request);
    }

    const latencies: number[] = [];
    let remaining = cycles;
    const stdout = toBase64(new TextEncoder().encode('x'.repeat(256)));
    // Each client a device with its own key; results signed as the page signs them (the signing,
    // done by the client, is inside the cycle time; the server verifies each signature).
    const devices = await Promise.all(Array.from({ length: clients }, () => TestDevice.create()));
    const client = async (c: number) => {
      const device = devices[c]!;
      while (remaining > 0) {
        remaining--;
        const started = performance.now();
        const { leases } = (await post(server.url, API.work, device.work(1))) as { leases: { leaseId: string; task: { manifest: TaskManifest } }[] };
        const lease = leases[0];
        if (!lease) break;
        await post(server.url, API.results, await device.sign({
          leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: device.deviceId, exitCode: 0, stdout, stderr: '', files: [],
          truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 0, compileMs: 0, runMs: 1 }, work: 1000,
        }));
        latencies.push(performance.now() - started);
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
    const seconds = (performance.now() - started) / 1000;
    return { clients, cycles: latencies.length, seconds, cyclesPerSecond: latencies.length / seconds, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printServerThroughput(r: ThroughputReport): void {
  console.log(`\n(b) Task server, lease + result cycles on loopback: ${r.clients} simulated clients, ${r.cycles} cycles in ${fmt(r.seconds)} s`);
  console.log(`    ${fmt(r.cyclesPerSecond, 0)} cycles/s (${fmt((r.cyclesPerSecond * 86400) / 1e6)} million tasks/day); cycle latency p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms`);
  console.log(`    for scale: BOINC's 2005 server handed out ~8.8 million tasks/day (~100/s): ${fmt(r.cyclesPerSecond / 100, 1)}x that`);
}
