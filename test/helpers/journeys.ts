/**
 * The main donor journeys, written once over the driver surface (test/helpers/engines) and run in
 * every engine by test/e2e/engines-*.test.ts: open the page and start; a slice of the demo batch
 * and a CLI batch whose outputs match node:wasi byte for byte; the device's key accepted by the
 * server; an offline reload from the service worker with every result delivered once; the embed's
 * card after a real click; the CPU limit, measured from the worker's own accounting.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { launchEngine, type DonorPage, type Engine, type EngineName, type EngineOptions } from './engines/index.ts';
import { ownerHeaders, startTestServer, TEST_KEYS_DIR, type TestServer } from './server.ts';
import { agreed, waitForBatch } from './donor.ts';
import { runUnderNodeWasi } from './node-wasi.ts';
import { buildBatch, publishBatch, type BatchSpec } from '../../server/publish.ts';
import { demoBatchSpec } from '../../demo/tiles.ts';
import { startPartnerSite, type PartnerSite } from '../../demo/partner/server.ts';
import { fromBase64 } from '../../src/protocol/index.ts';
import type { BatchResults, DeviceCredit, JsonBytes } from '../../src/protocol/index.ts';
import type { DewgridApi } from '../../src/app/api.ts';
import type { Status } from '../../src/scheduler/controller.ts';
import { TEST_DIST } from '../global-setup.ts';
import { MIN_VISIBLE_MS } from '../../src/app/start-guard.ts';
import { NEW_DEVICE_LEASES } from '../../server/store/rules.ts';

const run = promisify(execFile);
/**
 * Names the steps of a journey, so that a failure says which it stopped in: a browser call that never
 * answers (a reload, an evaluate over WebDriver BiDi) otherwise ends as a bare test timeout. Once, in a
 * full suite on a fresh clone, the offline journey in Firefox ran its 120 s out at an unknown step; it
 * passed 8 times alone, 4 of them with three busy loops beside it.
 */
function journeySteps(): (step: string) => void {
  const started = Date.now();
  const passed: string[] = [];
  onTestFailed(() => console.error(`the journey stopped in "${passed.at(-1)}"; its steps, seconds from the start: ${passed.join(', ')}`));
  return (step) => passed.push(`${step} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

const fractal = new Uint8Array(readFileSync(new URL('../../demo/fractal/fractal.wasm', import.meta.url)));
const wordfreq = 'test/fixtures/wasi/wordfreq.wasm';
const projectName = (JSON.parse(readFileSync(join(TEST_KEYS_DIR, 'trust.json'), 'utf8')) as { projectName: string }).projectName;

type Win = { dewgrid: DewgridApi };

/** Journeys a file may leave out, each with its reason (run() says it). */
export type JourneyName = 'start' | 'outputs' | 'identity' | 'offline' | 'embed' | 'cpu';

export interface JourneyOptions extends EngineOptions {
  /** Only these journeys (all by default). */
  only?: JourneyName[];
}

const ready = (page: DonorPage) => page.waitFor(() => document.documentElement.dataset.ready === 'true', undefined);
const status = (page: DonorPage) => page.evaluate(() => (window as unknown as Win).dewgrid.status());
/**
 * Presses Start as a donor does, so that it counts and is remembered across reloads: the pointer
 * at rest on the button a moment before the click (src/app/start-guard.ts).
 */
async function pressStart(page: DonorPage): Promise<void> {
  await page.hover({ button: 'Start' });
  await new Promise((resolve) => setTimeout(resolve, MIN_VISIBLE_MS + 250));
  await page.click({ button: 'Start' });
}

/** Bytes from the results API's JSON form. */
function bytesOf(value: JsonBytes | null): Uint8Array {
  if (value === null) return new Uint8Array(0);
  return typeof value === 'string' ? new TextEncoder().encode(value) : fromBase64(value.base64);
}

/** Runs in the page: each result in the client's outbox, by lease, with its attempts so far. */
const outboxAttempts = () =>
  new Promise<Record<string, number>>((resolve, reject) => {
    const open = indexedDB.open('dewgrid');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const read = open.result.transaction('outbox').objectStore('outbox').getAll();
      read.onsuccess = () => {
        open.result.close();
        resolve(Object.fromEntries((read.result as { leaseId: string; attempts: number }[]).map((entry) => [entry.leaseId, entry.attempts])));
      };
    };
  });

/** Polls `check` from the test until it holds. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not so after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The fractal's tile at the demo view's corner that lies inside the set: every pixel runs to `maxIter`, so its cost is known. */
function costlyTile(maxIter: number) {
  return { args: ['fractal', '960', '720', '900', '680', '40', '40', String(maxIter)], env: [] as [string, string][], stdin: null, files: [], preopens: [] };
}

export function donorJourneys(engineName: EngineName, options: JourneyOptions = {}): void {
  const wanted = (name: JourneyName) => !options.only || options.only.includes(name);
  let work: string;
  let server: TestServer;
  let site: PartnerSite;
  let engine: Engine;
  /** Pages to close after the current test: a page left open (and running) would take later journeys' tasks. */
  let pages: DonorPage[] = [];
  const open = async () => {
    const page = await engine.newPage();
    pages.push(page);
    return page;
  };
  const closePages = async () => {
    for (const page of pages) await page.close().catch(() => undefined);
    pages = [];
  };
  const publish = async (spec: Omit<BatchSpec, 'module' | 'limits' | 'redundancy' | 'expiresInMs'> & Partial<BatchSpec>) =>
    (await publishBatch(server.url, await buildBatch({ module: fractal, limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 120_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000, ...spec }, server.key), server.key)).batchId;
  /** The CLI; a batch id comes last, after `--`: ids are base64url and may begin with '-'. */
  const dewgrid = (args: string[], batchId?: string) =>
    run(process.execPath, ['server/bin/dewgrid.js', ...args, '--server', server.url, '--data', join(work, 'data'), ...(batchId ? ['--', batchId] : [])], { maxBuffer: 64 * 2 ** 20 });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), `dewgrid-journeys-${engineName}-`));
    server = await startTestServer({ dataDir: join(work, 'data'), staticDir: TEST_DIST });
    engine = await launchEngine(engineName, options);
  });
  afterEach(closePages);
  afterAll(async () => {
    await closePages();
    await engine?.close();
    await site?.close();
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe('a donor page, from Start to results the project can use', () => {
    /** One page for the three journeys, as one donor's session (closed after them, not after each). */
    let page: DonorPage | undefined;
    /** The page, opened and started if an earlier journey was left out. */
    const donor = async (): Promise<DonorPage> => {
      if (!page) {
        page = await engine.newPage();
        await page.goto(server.url);
        await ready(page);
        await page.evaluate(() => (window as unknown as Win).dewgrid.start());
      }
      return page;
    };
    afterAll(async () => page?.close());

    it.runIf(wanted('start'))('opens the page and starts on a real click', async () => {
      const batchId = await publish({ name: 'first', tasks: [0, 1].map((i) => ({ ...costlyTile(2000), args: ['fractal', '64', '64', String(i * 32), '0', '32', '32'] })) });
      page = await engine.newPage();
      await page.goto(server.url);
      await ready(page);
      await pressStart(page);
      await page.waitFor(() => (window as unknown as Win).dewgrid.status().running, undefined);
      await waitForBatch(server, batchId, (c) => c.done === 2);
      await page.waitFor(() => (window as unknown as Win).dewgrid.status().counts.done === 2, undefined);
      expect(page.errors()).toEqual([]);
    });

    it.runIf(wanted('outputs'))('runs the demo batch and a CLI batch, with outputs byte-identical to node:wasi', async () => {
      // Every thirteenth tile of the demo batch: nine tasks across the picture.
      const demo = demoBatchSpec(fractal);
      const tiles = demo.tasks.filter((_, i) => i % 13 === 0);
      const demoBatch = await publishBatch(server.url, await buildBatch({ ...demo, tasks: tiles }, server.key), server.key);

      // A program that is not the demo, through the CLI: args, env, stdin, a file and a folder.
      const corpus = join(work, 'corpus');
      mkdirSync(join(corpus, 'nested'), { recursive: true });
      writeFileSync(join(corpus, 'one.txt'), 'It was the best of times, it was the worst of times.\n');
      writeFileSync(join(corpus, 'nested', 'deep.txt'), 'deep deep down\n');
      writeFileSync(join(corpus, 'binary.dat'), Buffer.from([0, 1, 2, 253, 254, 255]));
      writeFileSync(join(work, 'stdin.txt'), 'stdin says hello\n');
      writeFileSync(join(work, 'extra.txt'), 'an extra file placed by --file\n');
      const published = await dewgrid([
        'publish', wordfreq, '--arg', '/data', '--arg', '/out/report-{i}.tsv', '--env', 'WORDFREQ_TOP=4', '--env', 'WORDFREQ_EXIT={i}',
        '--stdin', join(work, 'stdin.txt'), '--dir', `${corpus}:/data`, '--file', `/out/extra.txt=${join(work, 'extra.txt')}`, '--count', '2', '--json',
      ]);
      const cliBatch = JSON.parse(published.stdout) as { batchId: string; tasks: string[] };

      // The page from the first journey is still running.
      const page = await donor();
      await waitForBatch(server, demoBatch.batchId, (c) => c.done === tiles.length);
      await waitForBatch(server, cliBatch.batchId, (c) => agreed(c) === 2);

      const demoResults = JSON.parse((await dewgrid(['results', '--json'], demoBatch.batchId)).stdout) as BatchResults;
      expect(demoResults.tasks).toHaveLength(tiles.length);
      for (const task of demoResults.tasks) {
        const spec = tiles.find((t) => t.args.join(' ') === task.args.join(' '))!;
        const reference = await runUnderNodeWasi(fractal, { args: spec.args, env: spec.env, stdin: new Uint8Array(0), files: [], preopens: [], maxStdoutBytes: 2 ** 20, maxStderrBytes: 2 ** 20, maxOutputFileBytes: 2 ** 20 });
        expect(task.exitCode, task.taskId).toBe(reference.exitCode);
        expect(Buffer.from(bytesOf(task.stdout)).equals(Buffer.from(reference.stdout)), `stdout of ${task.args.join(' ')}`).toBe(true);
        expect(Buffer.from(bytesOf(task.stderr)).equals(Buffer.from(reference.stderr)), `stderr of ${task.args.join(' ')}`).toBe(true);
      }

      // `results --out` writes the bytes to disk: compare those, file by file.
      const out = join(work, 'results');
      await dewgrid(['results', '--out', out, '--accept-failures'], cliBatch.batchId); // task 1 exits 1 on purpose (WORDFREQ_EXIT)
      expect(readdirSync(out).sort()).toEqual([...cliBatch.tasks].sort());
      const files = [
        ...['binary.dat', 'nested/deep.txt', 'one.txt'].map((name) => ({ path: `/data/${name}`, data: new Uint8Array(readFileSync(join(corpus, name))) })),
        { path: '/out/extra.txt', data: new Uint8Array(readFileSync(join(work, 'extra.txt'))) },
      ];
      for (const [i, taskId] of cliBatch.tasks.entries()) {
        const reference = await runUnderNodeWasi(new Uint8Array(readFileSync(wordfreq)), {
          args: ['wordfreq', '/data', `/out/report-${i}.tsv`],
          env: [['WORDFREQ_TOP', '4'], ['WORDFREQ_EXIT', String(i)]],
          stdin: new Uint8Array(readFileSync(join(work, 'stdin.txt'))),
          files,
          preopens: ['/data', '/out'],
          maxStdoutBytes: 1 << 24,
          maxStderrBytes: 1 << 24,
          maxOutputFileBytes: 1 << 24,
        });
        const dir = join(out, taskId);
        expect(readFileSync(join(dir, 'exit-code'), 'utf8')).toBe(`${reference.exitCode}\n`);
        expect(readFileSync(join(dir, 'stdout')).equals(Buffer.from(reference.stdout))).toBe(true);
        expect(readFileSync(join(dir, 'stderr')).equals(Buffer.from(reference.stderr))).toBe(true);
        expect(reference.files.map((f) => f.path)).toEqual([`/out/report-${i}.tsv`]);
        expect(readFileSync(join(dir, 'files', 'out', `report-${i}.tsv`)).equals(Buffer.from(reference.files[0]!.data))).toBe(true);
      }
      expect(page.errors()).toEqual([]);
    });

    it.runIf(wanted('identity'))("signs every result with the device's own key, and the server accepts them", async () => {
      const page = await donor();
      if ((await status(page)).counts.done === 0) {
        const batchId = await publish({ name: 'identity', tasks: [{ ...costlyTile(2000), args: ['fractal', '32', '32', '0', '0', '32', '32'] }] });
        await waitForBatch(server, batchId, (c) => c.done === 1);
      }
      const identity = await page.evaluate(
        () =>
          new Promise<{ kind?: string; extractable?: boolean; algorithm?: string }>((resolve, reject) => {
            const open = indexedDB.open('dewgrid');
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const read = open.result.transaction('meta').objectStore('meta').get('identity');
              read.onsuccess = () => {
                const stored = read.result as { kind?: string; privateKey?: CryptoKey } | undefined;
                open.result.close();
                resolve({ kind: stored?.kind, extractable: stored?.privateKey?.extractable, algorithm: stored?.privateKey?.algorithm.name });
              };
            };
          }),
      );
      // WebCrypto's Ed25519 in all three (Chromium 137+, Firefox 129+, Safari 17+), the private key out of the page's reach.
      expect(identity).toEqual({ kind: 'webcrypto', extractable: false, algorithm: 'Ed25519' });
      const { deviceId, counts } = await status(page);
      const credit = (await (await fetch(`${server.url}/api/devices/${deviceId}`)).json()) as DeviceCredit;
      expect(credit.results.valid).toBe(counts.done);
      expect(credit.results).toMatchObject({ invalid: 0, pending: 0, error: 0 });
      expect(credit.validated).toBeGreaterThan(0);
      await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
      expect(page.errors()).toEqual([]);
    });
  });

  afterEach(async (context) => {
    // The shared page of the describe above stays open across its tests.
    if (!context.task.suite?.name.startsWith('a donor page')) await closePages();
  });

  it.runIf(wanted('offline'))('reloads offline from the service worker, carries on, and delivers every result once', async () => {
    const step = journeySteps();
    step('opening the page');
    const page = await open();
    await page.goto(server.url);
    step('waiting for the page to be ready');
    await ready(page);
    step('waiting for the service worker to control the page');
    await page.waitFor(async () => (await navigator.serviceWorker.ready) && navigator.serviceWorker.controller !== null, undefined);
    const count = 6;
    step('publishing');
    const batchId = await publish({ name: 'offline-reload', tasks: Array.from({ length: count }, () => costlyTile(60_000)) });
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1 }));
    step('starting');
    await pressStart(page); // a donor's Start: remembered across the reload below (a script's start() is not)
    // Held on the device with its module, one task run: then the network goes. (A device new to
    // the server holds NEW_DEVICE_LEASES at first, more as its results are validated.)
    step('waiting for tasks held and one done');
    await page.waitFor((held) => {
      const s = (window as unknown as Win).dewgrid.status();
      return s.counts.queued + s.counts.running >= held && s.counts.done >= 1;
    }, Math.min(count - 2, NEW_DEVICE_LEASES - 1));
    step('going offline, the server stopped');
    await page.setOffline(true);
    await server.stop();
    try {
      // A result made offline waits in the outbox (tried, failed, kept for later) across the reload:
      // its next attempt rewrites its record (WebKit makes a Blob read from IndexedDB unreadable once
      // it is put back into its record: docs/engines.md).
      step('waiting for a result in the outbox');
      await page.waitFor(() => (window as unknown as Win).dewgrid.status().counts.unsent >= 1, undefined);
      const keptAtReload = await page.evaluate(outboxAttempts);
      step('reloading');
      await page.reload();
      step('waiting for the reloaded page to be ready');
      await ready(page);
      // Computed offline after the reload too, and a result from before the reload tried again
      // in this session (its record rewritten): results wait in the outbox.
      step('waiting for two results in the outbox');
      await page.waitFor(() => (window as unknown as Win).dewgrid.status().counts.unsent >= 2, undefined);
      step('waiting for a result from before the reload to be tried again');
      await eventually(async () => {
        const now = await page.evaluate(outboxAttempts);
        return Object.entries(keptAtReload).some(([leaseId, attempts]) => (now[leaseId] ?? 0) > attempts);
      }, 'a result kept before the reload was tried again after it');
      expect((await status(page)).running).toBe(true);
    } finally {
      step('back online, the server started');
      await server.start();
      await page.setOffline(false);
    }
    step('waiting for the batch to be done');
    await waitForBatch(server, batchId, (c) => c.done === count);
    step('waiting for the outbox to empty');
    await page.waitFor(() => (window as unknown as Win).dewgrid.status().counts.unsent === 0, undefined);
    const results = (await (await fetch(`${server.url}/api/batches/${batchId}/results`, { headers: await ownerHeaders(server.key, 'read') })).json()) as BatchResults;
    expect(results.tasks.map((t) => [t.state, t.results])).toEqual(Array.from({ length: count }, () => ['done', 1]));
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    expect(page.errors()).toEqual([]);
  });

  it.runIf(wanted('embed'))("computes in the embed's card on a partner site after a real click", async () => {
    const dewgridOrigin = new URL(server.url).origin;
    site = await startPartnerSite({ dewgridOrigin, projectName, maxCpu: 50 });
    const tiles = [0, 1, 2].map((i) => ({ ...costlyTile(2000), args: ['fractal', '96', '32', String(i * 32), '0', '32', '32'] }));
    const batchId = await publish({ name: 'embed', tasks: tiles });
    const page = await open();
    // The partner on another site than Dewgrid's (localhost against 127.0.0.1), as a real partner is.
    await page.goto(site.url.replace('127.0.0.1', 'localhost'));
    const card = await page.frame('iframe[title^="Dewgrid"]');
    await card.waitFor(() => document.documentElement.dataset.ready === 'true' && document.querySelector('button.agree') !== null, undefined);
    // A click counts once the card has been in view, and the pointer at rest on it, for 500 ms (src/embed/visibility.ts).
    // The whole card in view, as a person scrolls to it (the page's default window may cut it off).
    await page.evaluate(() => document.querySelector('iframe[title^="Dewgrid"]')!.scrollIntoView({ block: 'center' }));
    await card.hover({ button: 'Lend idle time' });
    await new Promise((resolve) => setTimeout(resolve, 700));
    await card.click({ button: 'Lend idle time' });
    // Consent is confirmed in a window of Dewgrid's own, whose "Yes" works once it has been in front a moment.
    const confirmation = await page.openedWindow('/embed/confirm.html');
    await confirmation.waitFor(() => document.querySelector<HTMLButtonElement>('button.agree')?.disabled === false, undefined);
    await confirmation.click({ button: 'Yes, lend idle time' });
    await eventually(() => confirmation.isClosed(), 'the confirmation window closed after its answer');
    await waitForBatch(server, batchId, (c) => c.done === tiles.length);
    await card.waitFor((n) => document.querySelector('.counts')?.textContent?.includes(`Tasks done${n}`), tiles.length);
    // The partner's own script logged the card's events, from Dewgrid's origin.
    const log = await page.waitFor(
      (n) => {
        const entries = [...document.querySelectorAll<HTMLElement>('#events li')].reverse().map((li) => ({ type: li.dataset.type, origin: li.dataset.origin, text: li.textContent }));
        return entries.at(-1)?.text === `progress: ${n} done, 0 running, 0 failed (running)` && entries;
      },
      tiles.length,
    );
    expect(log[0]).toEqual({ type: 'started', origin: dewgridOrigin, text: 'started' });
    expect(new Set(log.map((entry) => entry.origin))).toEqual(new Set([dewgridOrigin]));
    expect(page.errors()).toEqual([]);
  });

  it.runIf(wanted('cpu'))('keeps a task to its CPU limit, by the worker\u2019s own accounting', async () => {
    const page = await open();
    await page.goto(server.url);
    await ready(page);
    await page.evaluate(() => (window as unknown as Win).dewgrid.setSettings({ workers: 1, dwellSeconds: 0, backOffWhileInUse: false, whenHidden: 'slow' }));
    await page.evaluate(() => (window as unknown as Win).dewgrid.start());
    /**
     * One task of a few seconds at `cpu`, published only once the page is at that share (where the
     * page cannot share memory with the worker, a run keeps the share it started with): the
     * worker's computing time for it (the growth of status().computed, read with nothing running,
     * so the whole run is in it however the page learns of it) and the run's own time as the
     * worker measured it (the activity log's "finished in N ms").
     */
    const runOne = async (cpu: number, doneBefore: number) => {
      await page.evaluate((share) => (window as unknown as Win).dewgrid.setSettings({ cpu: share }), cpu);
      const before = (await status(page)).computed.busyMs;
      const name = `cpu-${cpu * 100}`;
      const batchId = await publish({ name, tasks: [costlyTile(50_000)] });
      await waitForBatch(server, batchId, (c) => c.done === 1);
      await page.waitFor((n) => (window as unknown as Win).dewgrid.status().counts.done === n + 1, doneBefore);
      const busyMs = (await status(page)).computed.busyMs - before;
      const runMs = await page.waitFor((batch) => {
        const line = [...document.querySelectorAll('.activity li')].map((li) => li.textContent ?? '').find((text) => text.includes(`${batch} `) && text.includes(' finished in '));
        return line && Number(/finished in (\d+) ms/.exec(line)?.[1]);
      }, name);
      return { busyMs, runMs };
    };
    const full = await runOne(1, 0);
    const half = await runOne(0.5, 1);
    // The worker computed nearly all of the run at 100% and about half of it at 50% (the rest:
    // naps). Not "the same work took twice as long": the worker's clock is the wall clock, and on a
    // machine busy with the rest of the suite a task at 100% gets well under a core, so its run is
    // slow and the run at 50% (whose naps leave the core to others) not much slower. The
    // operating system's view of the same limits is bench (g), on a quiet machine.
    const figures = JSON.stringify({ full, half });
    expect(full.busyMs / full.runMs, figures).toBeGreaterThan(0.8);
    expect(half.busyMs / half.runMs, figures).toBeGreaterThan(0.35);
    expect(half.busyMs / half.runMs, figures).toBeLessThan(0.65);
    await page.evaluate(() => (window as unknown as Win).dewgrid.stop());
    expect(page.errors()).toEqual([]);
  });
}

export type { Status };
