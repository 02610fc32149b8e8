/**
 * Simulated donor devices for load and failure tests and for the throughput benchmarks: each its
 * own ed25519 key, asking for work and posting signed results as the page does (POST /api/work,
 * then POST /api/results), over HTTP on loopback to one server or several. With several, a device
 * asks a different server on every request, as it would behind a load balancer; a request that
 * fails (the server gone, a 5xx) is sent again, to the next server, until it succeeds or the
 * fleet's patience runs out. Every request and every retry is counted.
 */
import { API, sha256Hex, signTask, toBase64, type PublishRequest, type ResultSubmission, type TaskManifest } from '../../src/protocol/index.ts';
import { TestDevice } from './device.ts';
import { ownerHeaders, type SigningKey } from './server.ts';

export const BENCH_MODULE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);

async function post(base: string, path: string, body: unknown, timeoutMs?: number, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Publishes `count` tasks in batches of at most `batchSize` (signed with `key`); returns the batch ids. */
export async function publishTasks(
  url: string,
  key: SigningKey,
  options: { prefix: string; count: number; batchSize?: number; redundancy?: number; wallTimeMs?: number },
): Promise<string[]> {
  const moduleHash = await sha256Hex(BENCH_MODULE);
  const now = Date.now();
  const batchSize = options.batchSize ?? 5000;
  const ids: string[] = [];
  for (let b = 0; b * batchSize < options.count; b++) {
    const batchId = `${options.prefix}-${b}`;
    const tasks = [];
    for (let i = b * batchSize; i < Math.min(options.count, (b + 1) * batchSize); i++) {
      const manifest: TaskManifest = {
        v: 1, keyId: key.keyId, taskId: `${batchId}-${i}`, batchId, name: options.prefix, issuedAt: now, expiresAt: now + 3600_000,
        engine: 'wasi-preview1', module: { sha256: moduleHash, size: BENCH_MODULE.length }, args: [options.prefix, String(i)], env: [], stdin: null,
        files: [], preopens: [], limits: { memoryBytes: 2 ** 24, wallTimeMs: options.wallTimeMs ?? 60_000, outputBytes: 2 ** 20 }, redundancy: options.redundancy ?? 1,
      };
      tasks.push(await signTask(manifest, key.secretKey));
    }
    const request: PublishRequest = { batch: { batchId, name: options.prefix }, tasks, blobs: { [moduleHash]: toBase64(BENCH_MODULE) } };
    const response = await post(url, API.batches, request, undefined, await ownerHeaders(key)); // as the project owner
    if (response.status !== 201) throw new Error(`publishing ${batchId}: ${response.status} ${JSON.stringify(response.body)}`);
    ids.push(batchId);
  }
  return ids;
}

/** How long a server that did not answer is passed over. */
const SERVER_DOWN_MS = 5000;

export interface FleetOptions {
  /** The servers' URLs now (read on every request: a test may take one away or bring one back). */
  servers: () => readonly string[];
  devices: number;
  /** Stop after this many lease + result cycles in all. */
  cycles?: number;
  /** Stop when this says so (checked after an empty work response, and between cycles). */
  done?: (report: FleetReport) => boolean;
  /** Send a failed request again (next server) instead of throwing; for failure tests. */
  retry?: boolean;
  /** How long a request may keep failing before the fleet gives up on it (with retry). Default 30 s. */
  patienceMs?: number;
  /** A request unanswered this long is given up and sent to the next server (with retry), as a load balancer's upstream timeout would. */
  requestTimeoutMs?: number;
  /** Called once a cycle's result is in, with how many cycles are done. */
  onCycle?: (cycles: number) => void;
}

export interface FleetReport {
  cycles: number;
  seconds: number;
  /** Per cycle, ms: from the work request to the result's answer. */
  latencies: number[];
  /** Requests that failed (a network error or a 5xx) and were sent again. */
  retried: { path: string; status: number | string }[];
  /** Requests that failed for good: a 4xx, or a failure past the fleet's patience. */
  failed: { path: string; status: number | string; message: string }[];
  /** For each work request answered with no lease: how many leases the fleet had received by then. */
  emptyAt: number[];
  leases: number;
  /** Results the server said it took ('accepted'), and retries of them it knew ('duplicate'). */
  accepted: number;
  duplicates: number;
  /** Per device id: the leases it posted a result for (accepted or duplicate). */
  answered: Map<string, Set<string>>;
}

/** The output a device computes for a task: the same on every honest device, so replicas agree. */
export function honestOutput(taskId: string): string {
  return toBase64(new TextEncoder().encode(`result of ${taskId} `.padEnd(256, '.')));
}

export async function runFleet(options: FleetOptions): Promise<FleetReport> {
  const devices = await Promise.all(Array.from({ length: options.devices }, () => TestDevice.create()));
  const report: FleetReport = { cycles: 0, seconds: 0, latencies: [], retried: [], failed: [], emptyAt: [], leases: 0, accepted: 0, duplicates: 0, answered: new Map() };
  const patience = options.patienceMs ?? 30_000;
  let remaining = options.cycles ?? Infinity;
  let turn = 0;

  /**
   * Servers that failed to answer lately, until when: passed over meanwhile, as a load balancer's
   * passive health check does (nginx's max_fails / fail_timeout), unless every server is.
   */
  const downUntil = new Map<string, number>();
  const pick = (): string => {
    const servers = options.servers();
    for (let i = 0; i < servers.length; i++) {
      const url = servers[turn++ % servers.length]!;
      if ((downUntil.get(url) ?? 0) <= Date.now()) return url;
    }
    return servers[turn++ % servers.length]!;
  };

  /** Posts until a server answers with something other than a 5xx; a 4xx is returned to the caller. */
  async function send(path: string, body: unknown): Promise<{ status: number; body: unknown }> {
    const started = Date.now();
    for (;;) {
      const url = pick();
      let status: number | string;
      let answer: { status: number; body: unknown } | null = null;
      try {
        answer = await post(url, path, body, options.retry ? options.requestTimeoutMs : undefined);
        status = answer.status;
      } catch (error) {
        status = (error as Error).name === 'TimeoutError' ? 'timeout' : (((error as Error).cause as { code?: string } | undefined)?.code ?? (error as Error).message);
        downUntil.set(url, Date.now() + SERVER_DOWN_MS);
      }
      if (answer && answer.status < 500) return answer;
      if (!options.retry || Date.now() - started > patience) {
        report.failed.push({ path, status, message: JSON.stringify(answer?.body ?? status) });
        throw new Error(`${path}: ${status} ${JSON.stringify(answer?.body ?? '')}`);
      }
      report.retried.push({ path, status });
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
    }
  }

  const device = async (d: TestDevice) => {
    const answered = new Set<string>();
    report.answered.set(d.deviceId, answered);
    while (remaining > 0) {
      remaining--;
      const started = performance.now();
      const work = await send(API.work, d.work(1));
      if (work.status !== 200) {
        report.failed.push({ path: API.work, status: work.status, message: JSON.stringify(work.body) });
        return;
      }
      const { leases } = work.body as { leases: { leaseId: string; task: { manifest: TaskManifest } }[] };
      if (leases.length === 0) {
        report.emptyAt.push(report.leases);
        remaining++;
        if (!options.done || options.done(report)) return;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
        continue;
      }
      report.leases += leases.length;
      for (const lease of leases) {
        const taskId = lease.task.manifest.taskId;
        const result: ResultSubmission = await d.sign({
          leaseId: lease.leaseId, taskId, deviceId: d.deviceId, exitCode: 0, stdout: honestOutput(taskId), stderr: '', files: [],
          truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 0, compileMs: 0, runMs: 1 }, work: 1000,
        });
        const posted = await send(API.results, result);
        const status = (posted.body as { status?: string } | null)?.status;
        if (posted.status !== 200 || (status !== 'accepted' && status !== 'duplicate')) {
          report.failed.push({ path: API.results, status: posted.status, message: JSON.stringify(posted.body) });
          continue;
        }
        if (status === 'accepted') report.accepted++;
        else report.duplicates++;
        answered.add(lease.leaseId);
      }
      report.latencies.push(performance.now() - started);
      report.cycles++;
      options.onCycle?.(report.cycles);
      if (options.done?.(report)) return;
    }
  };

  const started = performance.now();
  await Promise.all(devices.map(device));
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
