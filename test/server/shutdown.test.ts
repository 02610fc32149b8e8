// Closing the task server with requests in flight: those that finish within the grace are
// answered; a client that stalls midway (Fastify sets no request timeout) cannot hold the close
// for ever, neither SIGTERM's nor the tests' outages (test/helpers/server.ts, stop()).
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API } from '../../src/protocol/index.ts';
import { startTestServer } from '../helpers/server.ts';

const dirs: string[] = [];
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'dewgrid-shutdown-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const BODY = JSON.stringify({ stalled: 'x'.repeat(200) });

/** A request to `url` whose headers and the start of whose body are sent; the rest is the caller's to send, or not. */
async function halfSentRequest(url: string): Promise<{ received: () => string; ended: Promise<void>; rest: () => void }> {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined); // a reset when the server drops it: what the test looks for
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`POST ${API.work} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY.slice(0, 20)}`);
  // The server has the request (its headers parsed, its body begun) before the close starts.
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { received: () => text, ended, rest: () => socket.write(BODY.slice(20)) };
}

/** What `promise` settled to within `ms`, or that it had not. */
const within = <T>(promise: Promise<T>, ms: number): Promise<T | 'not yet'> => Promise.race([promise, new Promise<'not yet'>((resolve) => setTimeout(() => resolve('not yet'), ms))]);

describe('closing the task server with requests in flight', () => {
  it('drops a request that stalls midway once the grace is over', async () => {
    // The server itself (server/app.ts), not the helper's outage: its close, with a grace.
    const { app: server, url } = await startTestServer({ dataDir: freshDir() });
    const request = await halfSentRequest(url);
    const started = Date.now();
    expect(await within(server.close({ graceMs: 300 }).then(() => 'closed'), 10_000)).toBe('closed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await within(request.ended.then(() => 'dropped'), 5000)).toBe('dropped');
    expect(request.received()).toBe('');
  });

  it('answers a request that finishes within the grace, then closes', async () => {
    const { app: server, url } = await startTestServer({ dataDir: freshDir() });
    const request = await halfSentRequest(url);
    const closed = server.close({ graceMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    request.rest();
    expect(await within(closed.then(() => 'closed'), 15_000)).toBe('closed');
    // Answered as any bad request is (the body is no WorkRequest), not dropped; then closed, not kept alive.
    expect(await within(request.ended.then(() => 'ended'), 5000)).toBe('ended');
    expect(request.received()).toMatch(/^HTTP\/1\.1 400 /);
  });

  it("the tests' outage, stop(), drops requests in flight at once, as a crash does", async () => {
    const server = await startTestServer({ dataDir: freshDir() });
    const request = await halfSentRequest(server.url);
    expect(await within(server.stop().then(() => 'stopped'), 5000)).toBe('stopped');
    expect(await within(request.ended.then(() => 'dropped'), 5000)).toBe('dropped');
    // And it comes back on the same address.
    await server.start();
    expect((await fetch(`${server.url}${API.info}`)).status).toBe(200);
    await server.close();
  });
});
