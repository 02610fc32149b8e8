// The CLI without traps (issue #15, 5; #16, 8) and what devices cannot do to the owner through it
// (#13, 8 and 10): ids that start with -, flag values that start with -, a server that is down or
// is something else, advice that fits where the owner is, a port in use; device text with terminal
// escapes printed escaped; `results --out` that checks a task's names before writing any of them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { Project } from '../../owner/index.ts';
import { randomId } from '../../owner/build.ts';
import { API, canonicalJson, outputDigestBytes, toBase64, type Lease, type ResultSubmission, type WorkResponse } from '../../src/protocol/index.ts';
import { closedPort, writeKey } from '../helpers/server.ts';
import { TestDevice } from '../helpers/device.ts';
import { TINY_MODULE } from '../helpers/tasks.ts';
import { runCli, type Run } from '../helpers/cli.ts';

let work: string;
let dataDir: string;
let server: DewgridServer;
let url: string;
let project: Project;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-cli-traps-'));
  dataDir = join(work, 'data');
  await writeKey(dataDir);
  server = await createServer({ dataDir });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  project = await Project.open(dataDir, { server: url });
  writeFileSync(join(work, 'count.wasm'), TINY_MODULE);
});

afterAll(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

const dewgrid = (...args: string[]): Promise<Run> => runCli(args, { DEWGRID_SERVER: url, DEWGRID_DATA: dataDir });
const post = async (path: string, body: unknown) => (await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();
const utf8 = (text: string) => toBase64(new TextEncoder().encode(text));
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Leases every task of the batch to new devices (a new device is given a few leases at a time:
 * server/store/rules.ts, NEW_DEVICE_LEASES); `devices[i]` holds `leases[i]`.
 */
async function leaseAll(batchId: string, count: number): Promise<{ device: TestDevice; leases: Lease[]; devices: TestDevice[] }> {
  const leases: Lease[] = [];
  const devices: TestDevice[] = [];
  for (let asked = 0; leases.length < count && asked < 20; asked++) {
    const device = await TestDevice.create();
    const got = ((await post(API.work, device.work(64))) as WorkResponse).leases.filter((l) => l.task.manifest.batchId === batchId);
    leases.push(...got);
    devices.push(...got.map(() => device));
  }
  expect(leases).toHaveLength(count);
  return { device: devices[0]!, leases, devices };
}

/**
 * Stores a result as a server that accepted it would have (through the store: the results route may
 * come to refuse such names itself; what matters here is what the CLI does with what the server holds).
 */
async function store(device: TestDevice, lease: Lease, result: Partial<ResultSubmission>) {
  const submission = await device.sign({
    leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: device.deviceId, exitCode: 0, stdout: '', stderr: '', files: [],
    truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 1, runMs: 1 }, ...result,
  });
  const b = (s: string) => Buffer.from(s, 'base64');
  const outputs = { stdout: sha256(b(submission.stdout)), stderr: sha256(b(submission.stderr)), files: submission.files.map((f) => ({ path: f.path, sha256: sha256(b(f.data)) })) };
  const bodyHash = createHash('sha256').update(canonicalJson(submission)).digest('hex');
  const digest = submission.error ? null : createHash('sha256').update(outputDigestBytes({ exitCode: submission.exitCode, truncated: submission.truncated, outputs })).digest('hex');
  const sizes = { stdout: b(submission.stdout).length, stderr: b(submission.stderr).length, files: submission.files.reduce((n, f) => n + b(f.data).length, 0) };
  expect(await server.store.submitResult({ submission, bodyHash, outputDigest: digest, sizes })).toBe('accepted');
}

// CLI processes (Node and tsx starting up) are slow on two busy cores.
describe('ids and flag values that start with -', { timeout: 120_000 }, () => {
  it('new batch ids never start with - or _', () => {
    const firsts = new Set(Array.from({ length: 20_000 }, () => randomId()[0]));
    expect([...firsts].filter((c) => c === '-' || c === '_')).toEqual([]);
    expect(firsts.size).toBeGreaterThan(50);
  });

  it('a batch whose id starts with - (forced through the library) works with status, results and cancel', async () => {
    const batch = await project.publish({ module: TINY_MODULE, batchId: '-Xq3dash', tasks: [{ args: ['one'] }] });
    const { device, leases } = await leaseAll('-Xq3dash', 1);
    await post(API.results, await device.sign({ leaseId: leases[0]!.leaseId, taskId: '-Xq3dash-0', deviceId: device.deviceId, exitCode: 0, stdout: utf8('hi\n'), stderr: '', files: [], truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 1, runMs: 1 } }));
    expect(batch.id).toBe('-Xq3dash');
    for (const args of [['status', '-Xq3dash'], ['status', '--', '-Xq3dash']]) {
      const run = await dewgrid(...args);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toBe('Batch -Xq3dash (program): 1 done\n');
    }
    const results = await dewgrid('results', '-Xq3dash', '--json');
    expect(results.code, results.stderr).toBe(0);
    expect(JSON.parse(results.stdout).tasks[0]).toMatchObject({ taskId: '-Xq3dash-0', state: 'done', stdout: 'hi\n' });
    const out = join(work, 'dash-out');
    expect((await dewgrid('results', '--out', out, '--', '-Xq3dash')).code).toBe(0);
    expect(readFileSync(join(out, '-Xq3dash-0', 'stdout'), 'utf8')).toBe('hi\n');
    expect((await dewgrid('cancel', '-Xq3dash')).stdout).toMatch(/^Cancelled 0 tasks of batch -Xq3dash: 1 done\.\n$/);
  });

  it('a flag that takes a value takes one that starts with - (--arg -s)', async () => {
    const run = await dewgrid('publish', join(work, 'count.wasm'), '--arg', '-s', '--arg', '--verbose', '--env', 'X=-1', '--batch', 'dashargs', '--json');
    expect(run.code, run.stderr).toBe(0);
    const [task] = await server.store.tasks('dashargs');
    expect(task!.envelope.manifest.args).toEqual(['count', '-s', '--verbose']);
    expect(task!.envelope.manifest.env).toEqual([['X', '-1']]);
  });
});

describe('a server that is down, or is not a Dewgrid server', { timeout: 120_000 }, () => {
  it('says the server is down before signing anything, with the way to start one', async () => {
    const port = await closedPort();
    const started = Date.now();
    const run = await runCli(['publish', join(work, 'count.wasm'), '--count', '100000', '--progress'], { DEWGRID_SERVER: `http://127.0.0.1:${port}`, DEWGRID_DATA: dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `dewgrid: no server answers at http://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port})\n` +
        'Start it with `npm start` in this folder (it serves on PORT, default 8787), or give another address with --server URL.\n',
    );
    expect(run.stderr).not.toMatch(/Signing/); // 100 000 tasks were not signed first
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('recognises a server that is not a Dewgrid task server (the partner site, say)', async () => {
    const other: Server = createHttpServer((_request, response) => response.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not found</h1>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const address = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    try {
      for (const args of [['status'], ['publish', join(work, 'count.wasm')], ['results', 'b']]) {
        const run = await runCli([...args, '--server', address], { DEWGRID_DATA: dataDir });
        expect(run.code, args.join(' ')).toBe(1);
        expect(run.stderr).toBe(
          `dewgrid: ${address} is not a Dewgrid task server: GET /api/info answered 404 text/html\n` +
            "Is --server right? `npm start` prints the task server's address (the demo partner site, on the next port, is not it).\n",
        );
      }
    } finally {
      other.close();
    }
  });

  it('gives advice that fits: npm start in a Dewgrid checkout with no keys yet, keygen elsewhere', async () => {
    const checkout = join(work, 'checkout');
    mkdirSync(join(checkout, 'scripts'), { recursive: true });
    writeFileSync(join(checkout, 'package.json'), JSON.stringify({ name: 'dewgrid' }));
    writeFileSync(join(checkout, 'scripts', 'start.ts'), '');
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere);
    const env = { DEWGRID_SERVER: url, DEWGRID_DATA: undefined };
    const inCheckout = await runCli(['publish', join(work, 'count.wasm')], env, { cwd: checkout });
    expect(inCheckout.code).toBe(2);
    expect(inCheckout.stderr).toBe("dewgrid: no project keys in .dewgrid (.dewgrid/trust.json is missing): `npm start` makes the demo project's keys here (and starts the server); for a project of your own, `npx dewgrid keygen`\n");
    const outside = await runCli(['publish', join(work, 'count.wasm')], env, { cwd: elsewhere });
    expect(outside.stderr).toMatch(/no project keys in \.dewgrid .*run `npx dewgrid keygen --data \.dewgrid` to set a project up there/);
    const down = await closedPort();
    const farAway = await runCli(['status', '--server', 'http://tasks.invalid:8787'], env, { cwd: elsewhere });
    expect(farAway.stderr).toMatch(/^dewgrid: no server answers at http:\/\/tasks\.invalid:8787 \(getaddrinfo ENOTFOUND tasks\.invalid\)\nCheck the address \(--server or DEWGRID_SERVER\) and that the server runs\.\n$/);
    const local = await runCli(['status', '--server', `http://localhost:${down}`], env, { cwd: elsewhere });
    expect(local.stderr).toMatch(/\nStart the task server \(`npm start` in the Dewgrid folder\), or give its address with --server URL or DEWGRID_SERVER\.\n$/);
  });

  it('a port in use is one line naming PORT, and npm start does not build under a running server', async () => {
    const busy = Number(new URL(url).port);
    const run = (file: string, env: Record<string, string>) =>
      new Promise<Run>((resolve) =>
        execFile(process.execPath, ['--import', 'tsx', file], { env: { ...process.env, ...env } }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr })),
      );
    const direct = await run('server/main.ts', { PORT: String(busy), DEWGRID_DATA: join(work, 'direct'), DEWGRID_STATIC: join(work, 'none') });
    expect(direct.code).toBe(1);
    expect(direct.stderr).toBe(`dewgrid server: port ${busy} on 127.0.0.1 is in use (is \`npm start\` already running?): stop what holds it, or choose another with PORT=${busy + 2} npm start\n`);
    const data = join(work, 'start-data');
    const start = await run('scripts/start.ts', { PORT: String(busy), DEWGRID_DATA: data });
    expect(start.code).toBe(1);
    expect(start.stderr).toBe(`npm start: port ${busy} on 127.0.0.1 is in use (is \`npm start\` already running? Its page is http://localhost:${busy}): stop it, or choose another port with PORT=${busy + 2} npm start\n`);
    expect(start.stdout).not.toMatch(/Building/);
    expect(existsSync(data)).toBe(false); // not even keys: nothing happened
  });
});

describe('what devices write, as the owner sees it', { timeout: 120_000 }, () => {
  // The review's payload: set the terminal title, clear the screen, write the clipboard (OSC 52), and a CSI in C1 form.
  const HOSTILE = 'ok\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u009b31m\u202etxt.exe';

  it('escapes control characters in everything a device supplied, except stdout written to files', async () => {
    await project.publish({ module: TINY_MODULE, batchId: 'escapes', tasks: [{}, {}, {}] });
    const { devices, leases } = await leaseAll('escapes', 3);
    await store(devices[0]!, leases[0]!, { stdout: utf8(`${HOSTILE}\nsecond line\n`), stderr: utf8(HOSTILE), files: [{ path: `/out/${HOSTILE.replace(/[\x00-\x1f]/g, '')}`, data: utf8(HOSTILE) }] });
    await store(devices[1]!, leases[1]!, { exitCode: null, error: { code: 'trap', message: HOSTILE } });
    const refusal = await devices[2]!.refusal({ kind: 'task', leaseId: leases[2]!.leaseId, taskId: 'escapes-2', deviceId: devices[2]!.deviceId, reason: 'bad-signature', detail: HOSTILE });
    expect(await post(API.refusals, refusal)).toMatchObject({ status: 'recorded' });

    const status = await dewgrid('status', 'escapes');
    const results = await dewgrid('results', 'escapes');
    const json = await dewgrid('results', 'escapes', '--json');
    const out = join(work, 'escapes-out');
    const written = await dewgrid('results', 'escapes', '--out', out);
    for (const run of [status, results, json, written]) {
      expect(run.stdout + run.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/); // newlines and tabs only
    }
    expect(status.stdout).toContain('(ok\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\x9b31m\\u{202e}txt.exe)');
    expect(results.stdout).toContain('  stdout: ok\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\x9b31m\\u{202e}txt.exe\nsecond line');
    expect(results.stdout).toContain('trap: ok\\x1b]0;pwned');
    expect(JSON.parse(json.stdout).tasks[0].stderr).toBe(HOSTILE); // the same text, escaped as JSON
    // Written to files: the program's bytes as they are.
    expect(readFileSync(join(out, 'escapes-0', 'stdout'), 'utf8')).toBe(`${HOSTILE}\nsecond line\n`);
  });

  it('results --out checks all of a task\'s names before writing: one bad result costs the owner no other', async () => {
    const bad: [string, { path: string; data: string }[]][] = [
      ['the folder itself', [{ path: '/', data: utf8('x') }]],
      ['a file that is another\'s folder', [{ path: '/a', data: utf8('a') }, { path: '/a/b', data: utf8('b') }]],
      ['a 300-character name', [{ path: `/out/${'n'.repeat(300)}`, data: utf8('long') }]],
      ['the same path twice', [{ path: '/x', data: utf8('one') }, { path: '/x', data: utf8('two') }]],
    ];
    await project.publish({ module: TINY_MODULE, batchId: 'names', tasks: [{}, {}, {}, {}, {}] });
    const { devices, leases } = await leaseAll('names', 5);
    await store(devices[0]!, leases[0]!, { stdout: utf8('good'), files: [{ path: '/out/good.txt', data: utf8('good file') }] });
    for (const [i, [, files]] of bad.entries()) await store(devices[i + 1]!, leases[i + 1]!, { stdout: utf8(`bad ${i}`), files });
    const out = join(work, 'names-out');
    const run = await dewgrid('results', 'names', '--out', out);
    expect(run.code).toBe(3);
    // Every task's stdout is written; the good task's file too; no bad task's files, nothing partly.
    for (let i = 0; i < 5; i++) expect(readFileSync(join(out, `names-${i}`, 'stdout'), 'utf8')).toBe(i === 0 ? 'good' : `bad ${i - 1}`);
    expect(readFileSync(join(out, 'names-0', 'files', 'out', 'good.txt'), 'utf8')).toBe('good file');
    for (let i = 1; i < 5; i++) expect(existsSync(join(out, `names-${i}`, 'files')), `names-${i}`).toBe(false);
    expect(readdirSync(out).sort()).toEqual(['names-0', 'names-1', 'names-2', 'names-3', 'names-4']);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toEqual([
      'dewgrid: names-1: its output files are not written: the output file path "/" names a folder, not a file',
      'dewgrid: names-2: its output files are not written: "/a" is both an output file and the folder of "/a/b"',
      expect.stringMatching(/^dewgrid: names-3: its output files are not written: the output file path "\/out\/n+\.\.\. has a name of 300 bytes, more than a file system takes \(255\)$/),
      'dewgrid: names-4: its output files are not written: the output file path "/x" is given twice',
    ]);
    expect(run.stdout).toBe(`Wrote the results of 5 tasks under ${out}\n`);
  });
});
