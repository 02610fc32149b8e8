// The project owner's status page (GET /status): batches with counts and a progress bar, active
// devices from the leases, results and refusals tables, refusals with their reasons, everything
// from outside escaped, and a clear error for a bad refresh period.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, REFUSAL_TEXT, type WorkResponse } from '../../src/protocol/index.ts';
import { escapeHtml } from '../../server/html.ts';
import { ownerHeaders, writeKey, type SigningKey } from '../helpers/server.ts';
import { publishRequest, resultFor } from '../helpers/tasks.ts';
import { TestDevice } from '../helpers/device.ts';
import { freshStore } from '../helpers/engine.ts';

let dataDir: string;
let server: DewgridServer;
let key: SigningKey;
let clock: number;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-status-page-'));
  key = await writeKey(dataDir);
  clock = Date.now();
  server = await createServer({ dataDir, ...(await freshStore()), now: () => clock });
});

afterEach(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function post(url: string, payload: unknown) {
  const response = await server.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...(await ownerHeaders(key)) }, payload: JSON.stringify(payload) });
  expect(response.statusCode, response.body).toBeLessThan(300);
  return JSON.parse(response.body);
}

/** The page as the project owner sees it (`owner: false`: as anyone else). */
async function statusPage(query = '', as: { owner: boolean } = { owner: true }): Promise<string> {
  const response = await server.app.inject({ method: 'GET', url: `/status${query}`, headers: as.owner ? await ownerHeaders(key, 'read') : {} });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
  return response.body;
}

/** The text of a table's body rows, cell by cell, tags dropped (the page is small, regular HTML: no parser needed). */
function rows(page: string, tableId: string): string[][] {
  const table = page.split(`id="${tableId}-table"`)[1]!.split('</table>')[0]!;
  const body = table.split('<tbody>')[1]!.split('</tbody>')[0]!;
  return body
    .split('</tr>')
    .filter((row) => row.includes('<td'))
    .map((row) => row.split('</td>').filter((cell) => cell.includes('<td')).map((cell) => cell.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()));
}

const HOSTILE = `<img src=x onerror="alert(1)"> & 'quotes'`;

describe('GET /status', () => {
  it('says there is nothing yet on a new server', async () => {
    const page = await statusPage();
    expect(page).toContain('id="batches-heading"');
    expect(page).toMatch(/<title>Dewgrid status: 0 batches, 0 active devices<\/title>/);
    expect(page).toContain('No batches yet.');
    expect(page).not.toContain('id="batches-table"');
  });

  it('shows each batch with its counts and progress, active devices, and refusals with reasons, all escaped', async () => {
    // Tasks of up to half an hour: a running one renews its lease with progress every few minutes.
    const request = await publishRequest(key, 'b1', 4, { limits: { memoryBytes: 2 ** 24, wallTimeMs: 30 * 60_000, outputBytes: 2 ** 20 } });
    request.batch.name = HOSTILE; // batch names are the publisher's free text
    await post(API.batches, request);
    const [a, b, c, d] = [await TestDevice.create(), await TestDevice.create(), await TestDevice.create(), await TestDevice.create()];
    const leases = (device: TestDevice, max: number) => post(API.work, device.work(max)) as Promise<WorkResponse>;
    const [first, second] = (await leases(a, 2)).leases;
    await post(API.results, await a.sign(resultFor(first!, a.deviceId)));
    await post(API.results, await a.sign(resultFor(second!, a.deviceId, '', { code: 'trap', message: 'unreachable' })));
    const [refused] = (await leases(b, 1)).leases;
    await post(API.refusals, await b.refusal({ kind: 'task', leaseId: refused!.leaseId, taskId: refused!.task.manifest.taskId, deviceId: b.deviceId, reason: 'module-hash-mismatch', detail: '<script>alert("x")</script>' }));
    const [running] = (await leases(c, 1)).leases; // holds a live lease: running now

    const page = await statusPage();
    // Nothing from outside became markup.
    expect(page).not.toContain(HOSTILE);
    expect(page).not.toContain('<script>alert');
    expect(page).toContain(escapeHtml(HOSTILE));
    expect(page).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(page.match(/<script>/g)).toHaveLength(1); // the page's own refresh script

    // One task done, one errored once (queued again), one refused once (queued again), one running: 1 of 4 finished.
    // Columns: batch, published, progress, tasks, by state (those with tasks), quorum, refusals, reports.
    expect(rows(page, 'batches')).toEqual([
      [expect.stringContaining('b1'), '0 s ago', '25%', '4', '2 queued, 1 running, 1 done', '—', '1 module-hash-mismatch', '1 error, 1 refusal; 2 from new devices'],
    ]);
    expect(page).toContain('aria-label="1 of 4 tasks finished (25%): 1 done, 1 running"');
    // Columns: device, last seen, leases, results, errors, refusals, running now, validated credit, valid / invalid, trusted.
    expect(rows(page, 'devices').map((r) => r.join(' | '))).toEqual(
      expect.arrayContaining([
        `${a.deviceId} | 0 s ago | 2 | 1 | 1 | 0 | 0 | 1 | 1 / 0 | no (0 of 10 corroborated in a row)`,
        `${b.deviceId} | 0 s ago | 1 | 0 | 0 | 1 | 0 | 0 | 0 / 0 | no (0 of 10 corroborated in a row)`,
        `${c.deviceId} | 0 s ago | 1 | 0 | 0 | 0 | 1 | 0 | 0 / 0 | no (0 of 10 corroborated in a row)`,
      ]),
    );
    expect(rows(page, 'devices')).toHaveLength(3);
    expect(rows(page, 'refusals')).toEqual([
      ['0 s ago', escapeHtml(HOSTILE), refused!.task.manifest.taskId, `${b.deviceId} new`, `${escapeHtml(REFUSAL_TEXT['module-hash-mismatch'])} module-hash-mismatch`, escapeHtml('<script>alert("x")</script>')],
    ]);
    // Columns: when, batch, task, device, what, message.
    expect(rows(page, 'failures')).toEqual([['0 s ago', escapeHtml(HOSTILE), second!.task.manifest.taskId, `${a.deviceId} new`, 'the program trapped trap', 'unreachable']]);

    // Sixteen minutes on, past the window: only device-c, whose long task kept renewing its lease with progress, is still active.
    for (let minute = 1; minute <= 16; minute++) {
      clock += 60_000;
      expect(await post(API.renew, await c.renewal(running!, 'running', minute * 1_000_000))).toMatchObject({ expiresAt: expect.any(Number) });
    }
    expect(rows(await statusPage(), 'devices').map((r) => r.join(' | '))).toEqual([`${c.deviceId} | 16 min ago | 0 | 0 | 0 | 0 | 1 | 0 | 0 / 0 | no (0 of 10 corroborated in a row)`]);
    // Once it stops renewing, its lease lapses (ten minutes of its run and a minute's margin) and no device is active.
    clock += 12 * 60_000;
    const later = await statusPage();
    expect(later).toContain('<h2 id="devices-heading">Active devices</h2>');
    expect(later).not.toContain('id="devices-table"');
    await leases(d, 1);
    expect(rows(await statusPage(), 'devices').map((r) => r[0])).toEqual([d.deviceId]);

    // Anyone else sees the server's totals, and nothing of the owner's: no batch, no device, no refusal.
    const stranger = await statusPage('', { owner: false });
    expect(stranger).toMatch(/<title>Dewgrid status: 1 batch, 1 active device<\/title>/);
    expect(stranger.split('id="live"')[1]!.replace(/<[^>]*>/g, '').replace(/\s+/g, ' ')).toMatch(/1 batch; tasks: 2 queued, 1 running, 1 done; 1 device active in the last 15 minutes\./);
    for (const secret of ['b1', escapeHtml(HOSTILE), a.deviceId, d.deviceId, 'module-hash-mismatch', 'id="batches-table"']) expect(stranger).not.toContain(secret);
    expect(stranger).toContain('npx dewgrid status --link');
  });

  it('opens for the owner from a link: the token goes into an HttpOnly cookie and out of the address bar; a bad one is said', async () => {
    const { signOwnerToken } = await import('../../src/protocol/index.ts');
    await post(API.batches, await publishRequest(key, 'linked', 1));
    const token = await signOwnerToken(key, { scope: 'read', lifetimeMs: 3600_000, now: clock });
    const opened = await server.app.inject({ method: 'GET', url: `/status?token=${token}&refresh=30` });
    expect(opened.statusCode).toBe(303);
    expect(opened.headers.location).toBe('/status?refresh=30');
    expect(opened.headers['set-cookie']).toBe(`dewgrid-owner=${token}; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict`);
    expect(opened.headers['referrer-policy']).toBe('no-referrer');
    const page = await server.app.inject({ method: 'GET', url: '/status?refresh=30', headers: { cookie: `other=1; dewgrid-owner=${token}` } });
    expect(page.body).toContain('id="batches-table"');
    expect(page.body).toContain('linked');
    // The cookie reads; it never changes anything (a page on another site could make a browser send it).
    const cancel = await server.app.inject({ method: 'POST', url: API.batchCancel('linked'), headers: { cookie: `dewgrid-owner=${token}`, 'content-type': 'application/json' }, payload: '{}' });
    expect(cancel.statusCode).toBe(401);

    const bad = await server.app.inject({ method: 'GET', url: `/status?token=${token.slice(0, -4)}AAAA` });
    expect(bad.statusCode).toBe(401);
    expect(bad.body).toMatch(/The link's owner token was refused: its signature does not verify under key [0-9a-f]{16}/);
    expect(bad.body).not.toContain('linked');
    clock += 3600_000;
    const late = await server.app.inject({ method: 'GET', url: '/status', headers: { cookie: `dewgrid-owner=${token}` } });
    expect(late.body).not.toContain('id="batches-table"');
  });

  it('shows the expiry sweep and serves a favicon', async () => {
    expect(await statusPage()).toMatch(/Expiry sweep: every 1 min; last <time[^>]*>0 s ago<\/time>, ended 0 expired tasks \(0 since the server started\)\./);
    const icon = await server.app.inject({ method: 'GET', url: '/favicon.ico' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toBe('image/x-icon');
    expect([...icon.rawPayload.subarray(0, 4)]).toEqual([0, 0, 1, 0]); // an ICO's header
    expect(await statusPage()).toContain('<link rel="icon" href="/favicon.ico"');
  });

  it('refreshes every 10 s unless ?refresh says otherwise, and names a bad refresh period', async () => {
    expect(await statusPage()).toContain('data-seconds="10"');
    expect(await statusPage('?refresh=60')).toContain('data-seconds="60"');
    for (const bad of ['abc', '1', '3601', '-5', '2.5']) {
      const response = await server.app.inject({ method: 'GET', url: `/status?refresh=${encodeURIComponent(bad)}` });
      expect(response.statusCode, bad).toBe(400);
      expect(JSON.parse(response.body).message, bad).toBe(`refresh must be a whole number of seconds from 2 to 3600, got "${bad}"`);
    }
  });
});
