// npm start's demo keeps going (issue #15, 6): the next picture is published on a donor's request,
// signed with the demo key, only once the current one is finished, only from the demo's machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, type WorkResponse } from '../../src/protocol/index.ts';
import { writeKey, type SigningKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { resultFor } from '../helpers/tasks.ts';
import { DEMO_VIEWS } from '../../demo/tiles.ts';

let dataDir: string;
let server: DewgridServer;
let key: SigningKey;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-demo-'));
  key = await writeKey(dataDir);
  server = await createServer({ dataDir, demo: { module: new Uint8Array(readFileSync('demo/fractal/fractal.wasm')), key } });
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST', url: string, remoteAddress = '127.0.0.1') {
  const response = await server.app.inject({ method, url, remoteAddress, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, payload: '{}' } : {}) });
  return { status: response.statusCode, body: response.json() };
}

describe('the demo', () => {
  it('publishes the next picture when asked, once the current one is finished, from this machine only', async () => {
    expect(await (await server.app.inject({ method: 'GET', url: API.info })).json()).toMatchObject({ service: 'dewgrid', demo: true });
    expect((await call('GET', API.demo)).status).toBe(404);
    const first = await call('POST', API.demoNext);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ number: 1, name: 'Spiral', tasks: 108, finished: 0, canAskForNext: false });
    // Not finished: no second picture; and never for a request from elsewhere.
    expect(await call('POST', API.demoNext)).toMatchObject({ status: 409, body: { message: 'picture 1 (Mandelbrot demo) still has 108 tiles to compute' } });
    expect(await call('POST', API.demoNext, '203.0.113.7')).toMatchObject({ status: 403, body: { message: 'only a donor on the machine running the demo may ask for the next picture' } });

    // A device computes every tile (here: answers each lease), and the picture is finished.
    const device = await TestDevice.create();
    for (;;) {
      const { leases } = (await server.app.inject({ method: 'POST', url: API.work, payload: device.work(64) })).json() as WorkResponse;
      if (leases.length === 0) break;
      for (const lease of leases) await server.app.inject({ method: 'POST', url: API.results, payload: await device.sign(resultFor(lease, device.deviceId)) });
    }
    expect((await call('GET', API.demo)).body).toMatchObject({ number: 1, finished: 108, canAskForNext: true });

    // Two donors at once get one new picture.
    const [a, b] = await Promise.all([call('POST', API.demoNext), call('POST', API.demoNext)]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    const second = (await call('GET', API.demo)).body;
    expect(second).toMatchObject({ number: 2, name: DEMO_VIEWS[1]!.name, tasks: 108, canAskForNext: false });
    const [task] = await server.store.tasks(second.batchId, [`${second.batchId}-0`]);
    expect(task!.envelope.manifest.keyId).toBe(key.keyId);
    expect(task!.envelope.manifest.args.slice(7)).toEqual(['1500', DEMO_VIEWS[1]!.centerX, DEMO_VIEWS[1]!.centerY, DEMO_VIEWS[1]!.span, String(DEMO_VIEWS[1]!.palette)]);
  });
});
