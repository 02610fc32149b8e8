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
import { writeKey, type SigningKey } from '../helpers/server.ts';
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
  const response = await server.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
  expect(response.statusCode, response.body).toBeLessThan(300);
  return JSON.parse(response.body);
}

async function statusPage(query = ''): Promise<string> {
  const response = await server.app.inject({ method: 'GET', url: `/status${query}` });
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
    // Columns: batch, published, progress, quorum, then one per state (queued, running, done, failed, refused, expired, inconclusive, revoked), tasks, refusals, reports.
    expect(rows(page, 'batches')).toEqual([
      [expect.stringContaining('b1'), '0 s ago', '25%', '—', '2', '1', '1', '0', '0', '0', '0', '0', '4', '1 module-hash-mismatch', '1 error, 1 refusal; 2 from new devices'],
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
