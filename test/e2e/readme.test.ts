// Acceptance (issue #15, 1): every command block of the README a user would type is run as
// written, in a copy of this repository (its files and node_modules, as a fresh clone after `npm
// install` has them), and shows what the README says it shows. The environment is the README's
// own: PORT and DEWGRID_DATA for `npm start`, DEWGRID_SERVER and DEWGRID_DATA for the CLI (a random
// port and a fresh data folder, so the test never meets a developer's running demo).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { closedPort } from '../helpers/server.ts';
import { Project } from '../../owner/index.ts';
import { pressStart } from '../helpers/donor.ts';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The README's fenced code blocks, in order, with their language. */
const blocks = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
const shell = blocks.filter((b) => b.lang === 'sh').map((b) => b.code);
/** The library example: a program a user would save and run. */
const program = blocks.find((b) => b.lang === 'js' && b.code.includes("from 'dewgrid'"))!.code;

/** Shell commands of a block, one per line, continuation lines joined. */
const commands = (block: string) => block.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter(Boolean);

let work: string;
let repo: string;
let dataDir: string;
let port: number;
let start: ChildProcess;
let started = '';
let browser: Browser;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dewgrid-readme-'));
  repo = join(work, 'dewgrid');
  dataDir = join(work, 'data');
  port = await closedPort();
  // The repository's files as a clone has them (tracked and new, not ignored), and node_modules as hard links.
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { encoding: 'utf8' }).split('\0').filter((f) => f && existsSync(f));
  for (const file of files) cpSync(file, join(repo, file), { recursive: true });
  execFileSync('cp', ['-al', 'node_modules', join(repo, 'node_modules')]);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (start?.pid && start.exitCode === null && start.signalCode === null) process.kill(-start.pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const env = () => ({ ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false', DEWGRID_SERVER: `http://localhost:${port}`, DEWGRID_DATA: dataDir });

function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile('sh', ['-c', command], { cwd: repo, env: env(), maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })),
  );
}

describe('the README, as written', () => {
  it('has these command blocks and no others (a new one needs a test here)', () => {
    expect(shell.map((b) => commands(b)[0])).toEqual(['npm install && npm start', 'npm test', expect.stringMatching(/^npx dewgrid publish /)]);
  });

  it('npm install && npm start: the demo runs, and prints where', { timeout: 600_000 }, async () => {
    const [block] = commands(shell[0]!);
    start = spawn('sh', ['-c', block!], { cwd: repo, env: { ...env(), PORT: String(port) }, detached: true });
    start.stdout!.on('data', (chunk) => (started += chunk));
    start.stderr!.on('data', (chunk) => (started += chunk));
    const deadline = Date.now() + 540_000;
    while (!started.includes('Stop with Ctrl+C.')) {
      if (start.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${started}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(started).toMatch(/up to date|added \d+ packages/); // npm install
    expect(started).toMatch(/Made the demo project's root key [0-9a-f]{16} and signing key [0-9a-f]{16} \(keyset version 1\)/);
    expect(started).toMatch(/Published the demo batch [A-Za-z0-9][A-Za-z0-9_-]*: 108 tiles of a 960x720 Mandelbrot picture \(Spiral\)\./);
    expect(started).toContain(`Dewgrid is running: open http://localhost:${port} and press Start.`);
    const link = /The status page: +(\S+)/.exec(started)![1]!;
    // The page, the demo, and the status page as the owner (the link's token).
    expect((await fetch(`http://localhost:${port}/`)).status).toBe(200);
    expect(await (await fetch(`http://localhost:${port}/api/info`)).json()).toMatchObject({ service: 'dewgrid', projectName: 'Dewgrid demo project', demo: true });
    const opened = await fetch(link, { redirect: 'manual' });
    expect(opened.status).toBe(303);
    const cookie = opened.headers.get('set-cookie')!.split(';')[0]!;
    const page = await (await fetch(`http://localhost:${port}/status`, { headers: { cookie } })).text();
    expect(page).toContain('id="batches-table"');
    expect(page).toContain('Mandelbrot demo');
  });

  it('npm test is this suite: not run from inside it', () => {
    expect(commands(shell[1]!)).toEqual(['npm test']);
  });

  it('the CLI example publishes, shows the status, and writes the results a donor computed', { timeout: 600_000 }, async () => {
    expect(start?.exitCode, 'npm start is running').toBeNull();
    const [publish, status, results] = commands(shell[2]!);
    const published = await sh(publish!);
    expect(published.code, published.stderr).toBe(0);
    const { batchId, tasks } = JSON.parse(published.stdout) as { batchId: string; tasks: string[] };
    expect(tasks).toEqual([`${batchId}-0`, `${batchId}-1`]);

    const shown = await sh(status!);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`${batchId}  wordfreq  2 queued\n`);

    // Before a donor has run them: the tasks are named, nothing is written for them, exit 3.
    const early = await sh(results!.replace('<batchId>', batchId));
    expect(early.code).toBe(3);
    expect(early.stderr).toContain(`2 tasks have no result yet (nothing is written for them): ${batchId}-0, ${batchId}-1.`);
    expect(existsSync(join(repo, 'results', `${batchId}-0`))).toBe(false);

    // A donor opens the page and presses Start (the demo's 108 tiles come first: they were published first).
    const page = await browser.newPage();
    await page.goto(`http://localhost:${port}`);
    await pressStart(page); // as a donor does: the pointer at rest on Start a moment before the click (src/app/start-guard.ts)
    const project = await Project.open(dataDir, { server: `http://localhost:${port}` });
    for await (const _ of project.batch(batchId).results()) {
      // every task of the batch ends
    }
    const done = await sh(results!.replace('<batchId>', batchId));
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe(`Wrote the results of 2 tasks under ${join(repo, 'results')}\n`);
    for (const task of tasks) {
      const dir = join(repo, 'results', task);
      expect(readFileSync(join(dir, 'exit-code'), 'utf8')).toBe('0\n');
      // wordfreq's stdout: each input's SHA-256 and counts, then the top five words.
      const stdout = readFileSync(join(dir, 'stdout'), 'utf8');
      expect(stdout).toContain('/data/protocol.md');
      expect(stdout).toMatch(/top 5 words/i);
      expect(readFileSync(join(dir, 'files', 'out', 'report.txt'), 'utf8').length).toBeGreaterThan(0);
    }

    // The library example: published from code, each result printed as devices agree on it.
    writeFileSync(join(repo, 'readme-example.mjs'), program);
    const ran = await sh('node readme-example.mjs');
    expect(ran.code, ran.stderr).toBe(0);
    const lines = ran.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^Published [A-Za-z0-9][A-Za-z0-9_-]*; open the page and press Start\.$/);
    expect(lines.slice(1).sort()).toEqual([expect.stringMatching(/^\S+-0 done \/out\/report\.txt$/), expect.stringMatching(/^\S+-1 done \/out\/report\.txt$/)]);
    await page.close();

    // Ctrl+C stops it.
    process.kill(-start.pid!, 'SIGINT');
    await new Promise((resolve) => start.once('exit', resolve));
    expect(started).toContain('SIGINT: closing the task server.');
  });
});
