/**
 * (q) The task server's memory under large invalid bodies (issue #13, 4): a stranger's 200 MiB
 * body to the publishing route (refused before it is read: the owner's credential comes first),
 * oversized bodies to a device route (refused by its body limit, from content-length), and 8 MiB
 * of invalid JSON to the results route (read, up to its limit, and refused), 1 000 in all, round
 * robin. The server runs in its own process; its resident memory (VmRSS, from /proc) is read every
 * 100 requests. Flat means the last reading is near the first: nothing is kept.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { API } from '../src/protocol/index.ts';
import { writeKey } from '../test/helpers/server.ts';
import { fmt } from './stats.ts';

export interface BodyMemoryReport {
  requests: number;
  /** Server RSS, MiB: after start, then after every 100 requests. */
  rssMiB: number[];
  /** Answers by status. */
  statuses: Record<number, number>;
  seconds: number;
}

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

/** Sends `declared` bytes of body (or until the server answers, which may be before any of it is read); resolves to the status (0: the server closed the connection first). */
function send(url: string, declared: number, chunk: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(declared), connection: 'close' } }, (response) => {
      answered = true;
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
      req.destroy(); // the rest of the body is not wanted, whatever was sent
    });
    // The server may close the connection on a body it will not read before its answer reaches us: status 0.
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (answered) return;
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') resolve(0);
      else reject(error);
    });
    let sent = 0;
    const pump = () => {
      while (!answered && sent < declared) {
        const piece = chunk.subarray(0, Math.min(chunk.length, declared - sent));
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

export async function benchBodyMemory(requests = 1000): Promise<BodyMemoryReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-bench-bodies-'));
  await writeKey(dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { ...process.env, PORT: '0', DEWGRID_DATA: dataDir, DEWGRID_STATIC: join(dataDir, 'no-static') },
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
  try {
    const invalid = Buffer.alloc(256 * 1024, 'x');
    invalid[0] = 0x7b; // "{xxxx...": JSON that never becomes valid
    // Warm up, so the first reading is the server at work, not the server just started.
    for (let i = 0; i < 10; i++) await send(url + API.work, 1024, invalid);
    const rss = [rssMiB(child.pid!)];
    const statuses: Record<number, number> = {};
    const kinds = [
      () => send(url + API.batches, 200 * 2 ** 20, invalid), // a stranger publishing 200 MiB
      () => send(url + API.work, 16 * 2 ** 20, invalid), // a device route, over its limit
      () => send(url + API.results, 8 * 2 ** 20, invalid), // the results route, within its limit, invalid
    ];
    const started = performance.now();
    for (let i = 0; i < requests; i++) {
      const status = await kinds[i % kinds.length]!();
      statuses[status] = (statuses[status] ?? 0) + 1;
      if ((i + 1) % 100 === 0) rss.push(rssMiB(child.pid!));
    }
    return { requests, rssMiB: rss, statuses, seconds: (performance.now() - started) / 1000 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printBodyMemory(r: BodyMemoryReport): void {
  const first = r.rssMiB[0]!;
  const last = r.rssMiB.at(-1)!;
  console.log(`\n(q) Task server memory under ${r.requests} large invalid bodies (200 MiB to publishing without the owner's credential, 16 MiB to /api/work, 8 MiB of invalid JSON to /api/results), ${fmt(r.seconds)} s`);
  console.log(`    answers: ${Object.entries(r.statuses).map(([status, n]) => `${n} x ${status === '0' ? 'connection closed' : status}`).join(', ')}`);
  console.log(`    server RSS, MiB, every 100 requests: ${r.rssMiB.map((m) => fmt(m, 0)).join(' ')}`);
  console.log(`    last / first: ${fmt(last / first, 2)}x; highest ${fmt(Math.max(...r.rssMiB), 0)} MiB`);
}
