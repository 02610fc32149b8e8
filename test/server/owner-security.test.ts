// Attacks on the owner's routes (issue #13, 3 and 4), each performed as the review did, with the
// server's state compared before and after:
// - a device (or anyone) reads a batch's canonical outputs, which would let it post the agreed
//   answer without the work, or lists, follows or cancels batches;
// - a stranger sends a huge invalid body to the publishing route, which the server read whole
//   (its memory went from 542 to 1 237 MiB and stayed), or an oversized body to a device route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, generateKeyPair, keyIdOf, signOwnerToken, toBase64, type WorkResponse } from '../../src/protocol/index.ts';
import { ownerHeaders, writeKey, type SigningKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';

let dataDir: string;
let server: DewgridServer;
let url: string;
let key: SigningKey;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-owner-security-'));
  key = await writeKey(dataDir);
  server = await createServer({ dataDir });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  // A batch with one task done: its canonical output is what a freeloading device would want.
  const published = await fetch(url + API.batches, { method: 'POST', headers: { 'content-type': 'application/json', ...(await ownerHeaders(key)) }, body: JSON.stringify(await publishRequest(key, 'secret', 2)) });
  expect(published.status).toBe(201);
  const honest = await TestDevice.create();
  const { leases } = (await post(API.work, honest.work(1))).body as unknown as WorkResponse;
  expect((await post(API.results, await honest.sign(resultFor(leases[0]!, honest.deviceId, 'the agreed answer')))).body).toEqual({ status: 'accepted' });
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: { message?: string; status?: string } }> {
  const response = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

/** Everything the owner would see of the batch, read as the owner. */
async function ownerView(): Promise<unknown> {
  const headers = await ownerHeaders(key);
  return Promise.all([API.batches, API.batch('secret'), API.batchResults('secret')].map(async (path) => (await fetch(url + path, { headers })).json()));
}

/** The owner's routes, as a device would call them. */
const OWNER_ROUTES: [string, string, unknown?][] = [
  ['GET', API.batches],
  ['GET', API.batch('secret')],
  ['GET', API.batchResults('secret')],
  ['GET', API.batchEvents('secret')],
  ['GET', API.keysetRefusals],
  ['POST', API.batchCancel('secret'), {}],
  ['POST', API.missingBlobs, { hashes: [] }],
  ['POST', API.batches, {}],
];

describe('the owner\'s routes are the owner\'s', () => {
  it('refuse a device, a token signed by a device\'s own key, a garbled token, and writes with a read token', async () => {
    const before = await ownerView();
    const device = await TestDevice.create();
    const stranger = await generateKeyPair();
    const devicesToken = await signOwnerToken({ keyId: await keyIdOf(stranger.publicKey), secretKey: stranger.secretKey }, { scope: 'all', lifetimeMs: 60_000 });
    const ownerToken = await signOwnerToken(key, { scope: 'all', lifetimeMs: 60_000 });
    const attempts: [string, Record<string, string>, RegExp][] = [
      ['no credential (a device asks as it asks for work)', {}, /is the project owner's: send Authorization: Bearer <owner token>/],
      ['a token signed by a key not in the keyset', { authorization: `Bearer ${devicesToken}` }, /the owner token was refused: key [0-9a-f]{16} is not a signing key of the project's keyset/],
      ['the owner\'s token with its signature garbled', { authorization: `Bearer ${ownerToken.slice(0, -6)}AAAAAA` }, /the owner token was refused: its signature does not verify/],
      ['the owner\'s token as another scheme', { authorization: `Basic ${ownerToken}` }, /must be "Bearer <owner token>"/],
    ];
    for (const [what, headers, message] of attempts) {
      for (const [method, path, body] of OWNER_ROUTES) {
        const response = await fetch(url + path, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
        const text = await response.text();
        expect(response.status, `${what}: ${method} ${path}`).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Bearer realm="dewgrid owner"');
        expect(JSON.parse(text).message, `${what}: ${method} ${path}`).toMatch(message);
        expect(text).not.toContain('the agreed answer');
        expect(text).not.toContain(toBase64(new TextEncoder().encode('the agreed answer')));
      }
    }
    // A read token (a dashboard's, a link's) reads, but neither cancels nor publishes.
    const read = { authorization: `Bearer ${await signOwnerToken(key, { scope: 'read', lifetimeMs: 60_000 })}` };
    expect((await fetch(url + API.batchResults('secret'), { headers: read })).status).toBe(200);
    for (const [method, path, body] of OWNER_ROUTES.filter(([method]) => method === 'POST')) {
      const response = await post(path, body, read);
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.body.message).toMatch(/may only read \(scope "read"\)/);
    }
    // Nothing changed: not cancelled, nothing published.
    expect(await ownerView()).toEqual(before);
    // The device's own routes still serve it.
    expect((await post(API.work, device.work(1))).status).toBe(200);
  });

  it('the status page shows a stranger no batch, task or output', async () => {
    const page = await (await fetch(`${url}/status`)).text();
    expect(page).not.toContain('secret');
    expect(page).not.toContain('the agreed answer');
    expect(page).toMatch(/shown to the project owner only/);
  });
});

describe('bodies', () => {
  it('a stranger\'s 200 MiB body to the publishing route is refused before it is read', async () => {
    const declared = 200 * 2 ** 20;
    let sent = 0;
    const answer = await new Promise<{ status: number; body: string; sentWhenAnswered: number }>((resolve, reject) => {
      const req = httpRequest(url + API.batches, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(declared) } }, (response) => {
        const sentWhenAnswered = sent;
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body, sentWhenAnswered }));
      });
      req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
      // A megabyte of JSON that will never be valid, then nothing: a server that waited for the rest would never answer.
      const chunk = Buffer.alloc(2 ** 20, 'x');
      chunk[0] = 0x7b; // {
      req.write(chunk, () => (sent += chunk.length));
      setTimeout(() => reject(new Error(`no answer in 20 s with ${sent} of ${declared} bytes sent: the server is waiting for the body`)), 20_000).unref();
    });
    expect(answer.status).toBe(401);
    expect(answer.sentWhenAnswered).toBeLessThanOrEqual(2 ** 20);
    expect(JSON.parse(answer.body).message).toMatch(/POST \/api\/batches is the project owner's/);
    expect(await server.store.batchIds()).toEqual(['secret']);
  });

  it('each device route takes no more than it can need', async () => {
    const device = await TestDevice.create();
    const padding = 'x'.repeat(64 * 1024);
    for (const [path, body] of [
      [API.work, { ...device.work(1), padding }],
      [API.renew, { leaseId: 'l', taskId: 't', deviceId: device.deviceId, padding }],
      [API.refusals, { kind: 'keyset', deviceId: device.deviceId, version: 1, reason: 'bad-keyset', detail: padding }],
    ] as const) {
      const response = await post(path, body);
      expect(response.status, path).toBe(413);
      expect(response.body.message).toBe('the body is larger than this endpoint accepts');
    }
  });
});
