// The `dewgrid` CLI as a project owner runs it: a child process (`node server/bin/dewgrid.js`)
// against a task server started in this process on a random loopback port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type DewgridServer } from '../../server/app.ts';
import { API, REFUSAL_TEXT, sha256Hex, toBase64, type Lease, type TaskManifest, type WorkResponse } from '../../src/protocol/index.ts';
import { TINY_MODULE } from '../helpers/tasks.ts';
import { TestDevice } from '../helpers/device.ts';
import { closedPort, ownerHeaders } from '../helpers/server.ts';
import { currentSigningKey } from '../../server/keys.ts';

let work: string;
let dataDir: string;
let server: DewgridServer;
let url: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-cli-'));
  dataDir = join(work, 'data');
  server = await createServer({ dataDir });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  // Inputs a project owner would have on disk.
  writeFileSync(join(work, 'count.wasm'), TINY_MODULE);
  writeFileSync(join(work, 'not-wasm.wasm'), 'hello');
  writeFileSync(join(work, 'stdin.txt'), 'the quick brown fox\n');
  writeFileSync(join(work, 'opts.txt'), 'verbose=1\n');
  mkdirSync(join(work, 'corpus', 'deep'), { recursive: true });
  writeFileSync(join(work, 'corpus', 'a.txt'), 'A');
  writeFileSync(join(work, 'corpus', 'deep', 'b.bin'), new Uint8Array([0xff, 0]));
});

afterAll(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with this test's server and data folder unless the arguments name others. */
function dewgrid(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['server/bin/dewgrid.js', ...args],
      { cwd: process.cwd(), env: { ...process.env, DEWGRID_SERVER: url, DEWGRID_DATA: dataDir }, maxBuffer: 16 * 2 ** 20 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

async function manifests(batchId: string): Promise<TaskManifest[]> {
  return (await server.store.tasks(batchId)).map((t) => t.envelope.manifest);
}

/** A POST as the project owner would send it (device routes ignore the token). */
async function inject(path: string, payload: unknown) {
  const response = await server.app.inject({ method: 'POST', url: path, payload: payload as object, headers: await ownerHeaders(await currentSigningKey(dataDir)) });
  return { status: response.statusCode, body: JSON.parse(response.body) };
}

// Each test runs CLI processes (Node and tsx starting up): slow on two busy cores.
describe('dewgrid CLI', { timeout: 120_000 }, () => {
  let keyId: string;
  let firstKeyId: string;

  it('keygen sets a project up (a root, its trust file, a signing key, keyset 1) and sends the keyset to the server', async () => {
    const made = await dewgrid('keygen', '--project', 'CLI project', '--json');
    expect(made.code, made.stderr).toBe(0);
    const printed = JSON.parse(made.stdout) as { rootKeyId: string; keyId: string; version: number; pushed: boolean };
    expect(printed).toMatchObject({ version: 1, pushed: true });
    for (const name of ['root', printed.keyId]) {
      const file = join(dataDir, 'keys', `${name}.json`);
      expect(statSync(file).mode & 0o777, file).toBe(0o600);
    }
    const root = JSON.parse(readFileSync(join(dataDir, 'keys', 'root.json'), 'utf8'));
    expect(root.keyId).toBe(printed.rootKeyId);
    expect(JSON.parse(readFileSync(join(dataDir, 'trust.json'), 'utf8'))).toEqual({ projectName: 'CLI project', roots: { [root.keyId]: root.publicKey } });
    const served = (await server.app.inject({ method: 'GET', url: API.keyset })).json();
    expect(served).toEqual(JSON.parse(readFileSync(join(dataDir, 'keyset.json'), 'utf8')));
    expect(served.keyset.keys.map((k: { keyId: string }) => k.keyId)).toEqual([printed.keyId]);

    const again = await dewgrid('keygen');
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds a project's keys/);
    expect(JSON.parse(readFileSync(join(dataDir, 'keys', 'root.json'), 'utf8')).keyId).toBe(root.keyId);
    firstKeyId = printed.keyId;
  });

  it('keys rotate adds a signing key and retires the old after the grace; revoke; list; push', async () => {
    const rotated = await dewgrid('keys', 'rotate', '--grace', '2', '--json');
    expect(rotated.code, rotated.stderr).toBe(0);
    const { keyId: second, retired, version } = JSON.parse(rotated.stdout) as { keyId: string; retired: string[]; version: number };
    expect({ retired, version }).toEqual({ retired: [firstKeyId], version: 2 });
    keyId = second;
    let served = (await server.app.inject({ method: 'GET', url: API.keyset })).json();
    expect(served.keyset.version).toBe(2);
    const old = served.keyset.keys.find((k: { keyId: string }) => k.keyId === firstKeyId);
    expect(old.notAfter - served.keyset.issuedAt).toBe(2 * 3600_000);

    const revoked = await dewgrid('keys', 'revoke', firstKeyId);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`Revoked ${firstKeyId} in keyset version 3`));
    served = (await server.app.inject({ method: 'GET', url: API.keyset })).json();
    expect(served.keyset.keys.find((k: { keyId: string }) => k.keyId === firstKeyId).revokedAt).toBeTypeOf('number');

    // Not the last key standing: the project must still be able to sign.
    const last = await dewgrid('keys', 'revoke', second);
    expect(last.code).toBe(2);
    expect(last.stderr).toMatch(/last key that is not revoked or retired/);

    const list = await dewgrid('keys', 'list');
    expect(list.stdout).toMatch(new RegExp(`Keyset version 3, signed by root [0-9a-f]{16}`));
    expect(list.stdout).toMatch(new RegExp(`${firstKeyId} {2}revoked `));
    expect(list.stdout).toMatch(new RegExp(`${second} {2}valid from `));

    const pushed = await dewgrid('keys', 'push');
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(/holds keyset version 3/);

    // The revoked key is the owner's no more: the server refuses its owner token, before the body.
    const byRevoked = await dewgrid('publish', join(work, 'count.wasm'), '--key', join(dataDir, 'keys', `${firstKeyId}.json`));
    expect(byRevoked.code).toBe(1);
    expect(byRevoked.stderr).toMatch(new RegExp(`401 the owner token was refused: key ${firstKeyId}: revoked at`));
  });

  it('publish signs one task per index with args, env, stdin, files, folders and limits', async () => {
    const run = await dewgrid(
      'publish', join(work, 'count.wasm'),
      '--arg=--index={i}', '--arg', 'plain',
      '--env', 'MODE=fast', '--env', 'TASK={i}-of-3',
      '--stdin', join(work, 'stdin.txt'),
      '--dir', `${join(work, 'corpus')}:/data/`,
      '--file', `/etc/app/opts.txt=${join(work, 'opts.txt')}`,
      '--file', `/data/extra.txt=${join(work, 'opts.txt')}`,
      '--count', '3', '--redundancy', '2', '--timeout', '5', '--memory', '32', '--output-limit', '1', '--expires', '2',
      '--name', 'CLI test', '--batch', 'cli1', '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout);
    expect(printed).toEqual({ batchId: 'cli1', tasks: ['cli1-0', 'cli1-1', 'cli1-2'] });

    const ms = await manifests('cli1');
    expect(ms.map((m) => m.args)).toEqual([0, 1, 2].map((i) => ['count', `--index=${i}`, 'plain']));
    expect(ms.map((m) => m.env)).toEqual([0, 1, 2].map((i) => [['MODE', 'fast'], ['TASK', `${i}-of-3`]]));
    const m = ms[0]!;
    expect(m).toMatchObject({
      keyId,
      name: 'CLI test',
      engine: 'wasi-preview1',
      module: { sha256: await sha256Hex(TINY_MODULE), size: TINY_MODULE.length },
      stdin: { sha256: await sha256Hex(new TextEncoder().encode('the quick brown fox\n')), size: 20 },
      limits: { memoryBytes: 32 * 2 ** 20, wallTimeMs: 5000, outputBytes: 2 ** 20 },
      redundancy: 2,
      preopens: ['/data', '/etc/app'],
    });
    expect(m.expiresAt - m.issuedAt).toBe(2 * 3600 * 1000);
    expect(m.files.map((f) => [f.path, f.blob.size])).toEqual([
      ['/data/a.txt', 1],
      ['/data/deep/b.bin', 2],
      ['/etc/app/opts.txt', 10],
      ['/data/extra.txt', 10],
    ]);
  });

  it('publish without --json: default argv0, --argv0, and / as a guest folder', async () => {
    const run = await dewgrid('publish', join(work, 'count.wasm'), '--argv0', 'counter', '--dir', `${join(work, 'corpus')}:/`, '--file', `/etc/opts.txt=${join(work, 'opts.txt')}`, '--batch', 'cli2');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Published batch cli2: 1 task, signed by key [0-9a-f]{16}/);
    const [m] = await manifests('cli2');
    expect(m).toMatchObject({ args: ['counter'], name: 'counter', preopens: ['/'], redundancy: 1 });
    expect(m!.limits).toEqual({ memoryBytes: 256 * 2 ** 20, wallTimeMs: 300_000, outputBytes: 16 * 2 ** 20 });
    expect(m!.files.map((f) => f.path)).toEqual(['/a.txt', '/deep/b.bin', '/etc/opts.txt']);
    // The second publish of the same blobs sent none of them again (all already stored).
    expect((await inject(API.missingBlobs, { hashes: [m!.module.sha256, m!.files[0]!.blob.sha256] })).body).toEqual({ missing: [] });
  });

  it('status and results show what devices did, in plain words and as JSON or files', async () => {
    // Two devices answer tasks 0 and 1 (redundancy 2); the first refuses task 2. (Each also leases cli2-0.)
    const devices = [await TestDevice.create(), await TestDevice.create()];
    const dev1 = devices[0]!.deviceId;
    const base = { exitCode: 0, stderr: '', truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 1, runMs: 1 } };
    for (const device of devices) {
      const deviceId = device.deviceId;
      const { leases } = (await inject(API.work, device.work(64))).body as WorkResponse;
      const mine = leases.filter((l) => l.task.manifest.batchId === 'cli1');
      expect(mine.map((l) => l.task.manifest.taskId)).toEqual(['cli1-0', 'cli1-1', 'cli1-2']);
      for (const l of mine.slice(0, 2)) {
        const index = l.task.manifest.taskId.endsWith('0') ? 0 : 1;
        const result = {
          ...base,
          leaseId: l.leaseId,
          taskId: l.task.manifest.taskId,
          deviceId,
          stdout: index === 0 ? toBase64(new TextEncoder().encode('hello 0\n')) : toBase64(new Uint8Array([0xc3, 0x28])),
          files: index === 0 ? [{ path: '/out/report.txt', data: toBase64(new TextEncoder().encode('report')) }] : [],
          exitCode: index,
        };
        expect((await inject(API.results, await device.sign(result))).status).toBe(200);
      }
      if (deviceId === dev1) {
        const l = mine[2]!;
        const refusal = await device.refusal({ kind: 'task', leaseId: l.leaseId, taskId: l.task.manifest.taskId, deviceId, reason: 'module-hash-mismatch', detail: 'expected aa, got bb' });
        expect((await inject(API.refusals, refusal)).status).toBe(200);
      }
    }

    const one = await dewgrid('status', 'cli1');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/Batch cli1 \(CLI test\): 1 running, 1 done, 1 done with a non-zero exit/);
    expect(one.stdout).toContain(`refused cli1-2 on new device ${dev1}: module-hash-mismatch: ${REFUSAL_TEXT['module-hash-mismatch']} (expected aa, got bb)`);
    expect(one.stdout).toContain('  reports: 1 refusal, 1 of them from new devices');

    const all = await dewgrid('status');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^cli1 {2}CLI test {2}1 running, 1 done, 1 done with a non-zero exit {2}\(1 refusal, 1 of them from new devices\)$/),
      expect.stringMatching(/^cli2 {2}counter {2}1 running$/),
    ]);
    expect((await dewgrid('batches')).stdout).toBe(all.stdout);
    const allJson = await dewgrid('status', '--json');
    expect(JSON.parse(allJson.stdout).map((b: { batchId: string }) => b.batchId)).toEqual(['cli1', 'cli2']);

    // Not every task succeeded (one exited 1) and one has no result yet: exit 3, naming them.
    const json = await dewgrid('results', 'cli1', '--json');
    expect(json.code, json.stderr).toBe(3);
    expect(json.stderr).toBe(
      'dewgrid: 1 task has no result yet: cli1-2. `dewgrid results cli1 --follow` waits for them.\n' +
        'dewgrid: 1 task did not succeed: cli1-1 (exit 1). (--accept-failures exits 0 even so.)\n',
    );
    const results = JSON.parse(json.stdout);
    expect(results.batchId).toBe('cli1');
    expect(results.tasks.map((t: Record<string, unknown>) => ({ taskId: t.taskId, state: t.state, exitCode: t.exitCode, stdout: t.stdout, stderr: t.stderr, files: t.files, error: t.error }))).toEqual([
      { taskId: 'cli1-0', state: 'done', exitCode: 0, stdout: 'hello 0\n', stderr: '', files: [{ path: '/out/report.txt', data: 'report' }], error: null },
      { taskId: 'cli1-1', state: 'exit-nonzero', exitCode: 1, stdout: { base64: toBase64(new Uint8Array([0xc3, 0x28])) }, stderr: '', files: [], error: null },
      { taskId: 'cli1-2', state: 'running', exitCode: null, stdout: null, stderr: null, files: [], error: null },
    ]);
    expect(results.tasks[2].refusals).toMatchObject([{ reason: 'module-hash-mismatch', deviceId: dev1 }]);
    expect(results.tasks[0].quorum).toMatchObject({ needed: 2, agreeing: 2, outputs: 1 });
    expect(results.tasks[0].quorum.results.map((r: { validation: string }) => r.validation)).toEqual(['valid', 'valid']);

    const out = join(work, 'out');
    const written = await dewgrid('results', 'cli1', '--out', out);
    expect(written.code, written.stderr).toBe(3);
    expect(written.stdout).toBe(`Wrote the results of 2 tasks under ${out}\n`);
    expect(written.stderr).toMatch(/1 task has no result yet \(nothing is written for them\): cli1-2\./);
    expect(readFileSync(join(out, 'cli1-0', 'stdout'), 'utf8')).toBe('hello 0\n');
    expect(readFileSync(join(out, 'cli1-0', 'exit-code'), 'utf8')).toBe('0\n');
    expect(readFileSync(join(out, 'cli1-0', 'files', 'out', 'report.txt'), 'utf8')).toBe('report');
    expect([...readFileSync(join(out, 'cli1-1', 'stdout'))]).toEqual([0xc3, 0x28]);
    expect(readFileSync(join(out, 'cli1-1', 'exit-code'), 'utf8')).toBe('1\n');
    expect(existsSync(join(out, 'cli1-2'))).toBe(false); // no result yet: nothing written, not empty files

    const text = await dewgrid('results', 'cli1');
    expect(text.stdout).toMatch(/cli1-0 {2}done {2}exit 0 {2}quorum 2\/2 agreeing \(2 results, 1 output\)\n {2}stdout: hello 0\n {2}file \/out\/report.txt: report/);
    expect(text.stdout).toMatch(/cli1-1 {2}done \(exit 1\) {2}quorum 2\/2 agreeing \(2 results, 1 output\)\n {2}stdout: <2 bytes, not UTF-8>/);
    expect(text.stdout).toMatch(/cli1-2 {2}running {2}\(no result yet\)/);
    // --accept-failures: the exit 1 is the program's answer, accepted; the task with no result still counts.
    expect((await dewgrid('results', 'cli1', '--accept-failures')).code).toBe(3);
  });

  it('usage problems exit 2 with one line naming the problem; server problems exit 1 with its message', async () => {
    const wasm = join(work, 'count.wasm');
    const down = await closedPort();
    const cases: [string[], number, RegExp][] = [
      [[], 2, /no command given/],
      [['frobnicate'], 2, /unknown command "frobnicate"/],
      [['publish', wasm, '--bogus'], 2, /unknown flag --bogus for publish; `dewgrid --help` lists them/],
      [['publish', wasm, '--cout', '2'], 2, /unknown flag --cout for publish: did you mean --count\?/],
      [['publish', wasm, '--out', 'x'], 2, /unknown flag --out for publish: --out is a flag of results/],
      [['publish', wasm, '--arg'], 2, /--arg needs a value: --arg VALUE/],
      [['publish', wasm, '--json=yes'], 2, /--json takes no value \(got "yes"\)/],
      [['results', 'cli1', '-x'], 2, /unknown flag -x for results \(an id that starts with - goes after --: dewgrid results -- -x\)/],
      [['publish'], 2, /publish needs a module/],
      [['publish', join(work, 'missing.wasm')], 2, /missing\.wasm: no such file/],
      [['publish', join(work, 'not-wasm.wasm'), '--key', join(work, 'nope.json')], 2, /not-wasm\.wasm is not a WebAssembly module/],
      [['publish', wasm, '--count', 'abc'], 2, /--count must be a whole number from 1 to 100000, got "abc"/],
      [['publish', wasm, '--redundancy', '17'], 2, /--redundancy must be a whole number from 1 to 16/],
      [['publish', wasm, '--engine', 'wasi-preview2'], 2, /--engine must be one of wasi-preview1, wasix, got "wasi-preview2"/],
      [['publish', wasm, '--env', 'NOVALUE'], 2, /--env "NOVALUE" must be NAME=VALUE/],
      [['publish', wasm, '--file', `relative.txt=${join(work, 'opts.txt')}`], 2, /guest path "relative.txt" must be absolute/],
      [['publish', wasm, '--file', `/a/../b=${join(work, 'opts.txt')}`], 2, /must not hold \., \.\. or empty segments/],
      [['publish', wasm, '--file', `/x=${join(work, 'nothing.txt')}`], 2, /--file .*nothing\.txt: no such file/],
      [['publish', wasm, '--dir', `${join(work, 'nowhere')}:/data`], 2, /--dir .*nowhere: no such folder/],
      [['publish', wasm, '--stdin', join(work, 'corpus')], 2, /--stdin .*corpus: is a folder/],
      [['publish', wasm, '--batch', 'has space'], 2, /--batch must be/],
      [['publish', wasm, '--arg', 'x'.repeat(5000)], 2, /the batch would be refused: tasks\.0\.manifest\.args\.1: /],
      [['publish', wasm, '--key', join(work, 'nope.json')], 2, /cannot read key file .*nope\.json: no such file/],
      [['results'], 2, /results needs a batch id/],
      [['keys'], 2, /keys needs a command: rotate, revoke, list or push/],
      [['keys', 'shred'], 2, /unknown keys command "shred"/],
      [['keys', 'revoke', 'XYZ'], 2, /a key id is 16 lowercase hex digits, got "XYZ"/],
      [['keys', 'revoke', 'ffffffffffffffff'], 2, /key ffffffffffffffff is not in the keyset/],
      [['keys', 'rotate', '--root', join(work, 'nope.json')], 2, /cannot read key file .*nope\.json: no such file/],
      [['keys', 'list', '--data', join(work, 'empty')], 2, /keyset\.json is missing: run `dewgrid keygen` first/],
      [['status', 'a', 'b'], 2, /status takes at most one batch id/],
      [['status', '--server', 'ftp://x'], 2, /--server must be an http\(s\) URL/],
      [['status', 'nope'], 1, /404 no batch nope/],
      [['status', '--server', `http://127.0.0.1:${down}`], 1, new RegExp(`no server answers at http://127\\.0\\.0\\.1:${down} \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${down}\\)\nStart`)],
    ];
    const runs = await Promise.all(cases.map(([args]) => dewgrid(...args)));
    for (const [index, [args, code, message]] of cases.entries()) {
      const run = runs[index]!;
      const label = `dewgrid ${args.join(' ').slice(0, 80)}`;
      expect(run.code, `${label}: ${run.stderr}`).toBe(code);
      expect(run.stderr, label).toMatch(message);
      // A usage problem is one line; a server problem is its line and one of advice.
      if (args.length > 0) expect(run.stderr.trim().split('\n'), label).toHaveLength(code === 2 ? 1 : args.includes('nope') ? 1 : 2);
      expect(run.stdout, label).toBe('');
    }
    // None of them published anything.
    expect(await server.store.batchIds()).toEqual(['cli1', 'cli2']);
  }, 240_000); // dozens of CLI processes at once, on two busy cores

  it('--help prints the usage and exits 0', async () => {
    const run = await dewgrid('publish', '--help');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/dewgrid publish MODULE\.wasm/);
  });

  it('publish --engine wasix signs tasks for the WASIX engine (from here on, batches the listings above do not expect)', async () => {
    const run = await dewgrid('publish', join(work, 'count.wasm'), '--engine', 'wasix', '--batch', 'cliwasix', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect((await manifests('cliwasix')).map((m) => m.engine)).toEqual(['wasix']);
  });

  it('publish and results show their progress on stderr with --progress, never in stdout; nothing without it off a terminal', async () => {
    const wasm = join(work, 'count.wasm');
    writeFileSync(join(work, 'progress-stdin.txt'), 'a new blob for this batch\n');
    const quiet = await dewgrid('publish', wasm, '--count', '3', '--batch', 'cliquiet', '--json');
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe(''); // stderr is a pipe here, not a terminal

    const run = await dewgrid('publish', wasm, '--count', '3', '--stdin', join(work, 'progress-stdin.txt'), '--batch', 'cliprogress', '--json', '--progress');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ batchId: 'cliprogress', tasks: ['cliprogress-0', 'cliprogress-1', 'cliprogress-2'] });
    // Off a terminal: plain lines, no redrawing. Updates come at most once a second, so a slow machine may show more of them.
    expect(run.stderr).not.toMatch(/[\r\x1b]/);
    const steps = run.stderr.trimEnd().split('\n').filter((line) => !/^(Signing tasks|Uploading blobs and tasks): /.test(line));
    expect(steps).toEqual([
      'Signed 3 tasks.',
      'Blobs: uploading 1 of 2 (the server has the rest), 26 B.', // the module is there from the tests above
      expect.stringMatching(/^Uploaded blobs and tasks: [\d.]+ KiB\.$/),
      'Waiting for the server to verify and store the batch...',
      'The server stored the batch.',
    ]);
    expect(run.stderr).toMatch(/^Signing tasks: 1\/3\n/);
    expect(run.stderr).toMatch(/\nUploading blobs and tasks: [\d.]+ KiB of [\d.]+ KiB\n/);

    // One of the three done: its three files are written, the others have nothing to write yet.
    // (New devices until one is given it: a new device is given a few leases at a time, the oldest tasks first.)
    let device: TestDevice;
    let first: Lease | undefined;
    for (let asked = 0; !first && asked < 20; asked++) {
      device = await TestDevice.create();
      first = ((await inject(API.work, device.work(64))).body as WorkResponse).leases.find((l) => l.task.manifest.taskId === 'cliprogress-0');
    }
    if (!first) throw new Error('cliprogress-0 was leased to none of 20 new devices');
    expect((await inject(API.results, await device!.sign({ leaseId: first.leaseId, taskId: first.task.manifest.taskId, deviceId: device!.deviceId, exitCode: 0, stdout: toBase64(new TextEncoder().encode('zero')), stderr: '', files: [], truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 1, runMs: 1 } }))).status).toBe(200);
    const out = join(work, 'progress-out');
    const results = await dewgrid('results', 'cliprogress', '--out', out, '--json', '--progress');
    expect(results.code, results.stderr).toBe(3);
    expect(JSON.parse(results.stdout).tasks).toHaveLength(3);
    expect(results.stderr).toMatch(
      /^Fetching results: [\d.]+ (B|KiB) of [\d.]+ (B|KiB)\nFetched the results of 3 tasks\.\nWriting files: 1\/3\n(Writing files: \d\/3\n)*Wrote 3 files\.\ndewgrid: 2 tasks have no result yet \(nothing is written for them\): cliprogress-1, cliprogress-2\. /,
    );
    expect(readFileSync(join(out, 'cliprogress-0', 'stdout'), 'utf8')).toBe('zero');

    const plain = await dewgrid('results', 'cliprogress');
    expect(plain.stderr).not.toMatch(/Fetch/);
  });
});
