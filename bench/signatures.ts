/**
 * (i) Signature checks on the server: result signatures (node:crypto's native Ed25519, as the
 * results route checks them: output hashes, canonical JSON, verify) and task envelopes (the
 * publish route's verifyEnvelope), per second on one core; and node:crypto against
 * @noble/ed25519 on the same signatures, as a ratio (the machine's speed cancels out).
 * (j) Envelope checks in the browser: verifyEnvelope in Chromium's page (WebCrypto's native
 * Ed25519, off the main thread), per envelope, and the keyset check that precedes them.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkResultSignature } from '../server/routes/devices.ts';
import { buildBatch } from '../server/publish.ts';
import { readKeyset, readTrust } from '../server/keys.ts';
import { ed, fromBase64, outputDigests, resultSigningBytes, toBase64, verifyEnvelope, verifyKeyset, type ResultSubmission } from '../src/protocol/index.ts';
import { TestDevice } from '../test/helpers/device.ts';
import { TEST_KEYS_DIR, writeKey } from '../test/helpers/server.ts';
import { withBenchPage } from './browser-page.ts';
import { fmt, median, quantile } from './stats.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SignatureReport {
  results: number;
  resultChecksPerS: number;
  nobleChecksPerS: number;
  envelopes: number;
  envelopeChecksPerS: number;
  browser: { envelopeMedianUs: number; envelopeP95Us: number; keysetMedianUs: number; n: number };
}

/** Checks per second of `check` over `items`, repeated until at least `minMs` passed. */
async function rate<T>(items: T[], check: (item: T) => unknown, minMs = 2000): Promise<number> {
  for (const item of items.slice(0, 50)) await check(item); // warm up
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < minMs) {
    for (const item of items) await check(item);
    done += items.length;
  }
  return done / ((performance.now() - started) / 1000);
}

export async function benchSignatures(count = 500): Promise<SignatureReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-bench-sig-'));
  try {
    const key = await writeKey(dataDir);
    const device = await TestDevice.create();
    const stdout = toBase64(new Uint8Array(256).fill(65));
    const results: ResultSubmission[] = [];
    for (let i = 0; i < count; i++) {
      results.push(
        await device.sign({
          leaseId: `lease-${i}`, taskId: `task-${i}`, deviceId: device.deviceId, exitCode: 0, stdout, stderr: '', files: [],
          truncated: { stdout: false, stderr: false, files: false }, error: null, timings: { fetchMs: 1, compileMs: 2, runMs: 30 }, work: 1_000_000 + i,
        }),
      );
    }
    const hashed = await Promise.all(results.map(async (r) => ({ r, outputs: await outputDigests({ stdout: fromBase64(r.stdout), stderr: fromBase64(r.stderr), files: [] }) })));
    // As the results route does it: the received outputs decoded and hashed, then the signature.
    const sha256 = (base64: string) => createHash('sha256').update(fromBase64(base64)).digest('hex');
    const resultChecksPerS = await rate(results, (r) => checkResultSignature(r, device.publicKey, { stdout: sha256(r.stdout), stderr: sha256(r.stderr), files: [] }));
    const publicKey = fromBase64(device.publicKey);
    const nobleChecksPerS = await rate(hashed, async ({ r, outputs }) => {
      const { signature, stdout: _o, stderr: _e, files: _f, ...rest } = r;
      if (!(await ed.verifyAsync(fromBase64(signature), resultSigningBytes({ ...rest, outputs }), publicKey))) throw new Error('noble refused a good signature');
    }, 1000);

    const fractal = new Uint8Array(readFileSync('demo/fractal/fractal.wasm'));
    const batch = await buildBatch({ name: 'bench', module: fractal, tasks: Array.from({ length: count }, (_, i) => ({ args: ['fractal', String(i)], env: [], stdin: null, files: [], preopens: [] })), limits: { memoryBytes: 2 ** 26, wallTimeMs: 60_000, outputBytes: 2 ** 20 }, redundancy: 1, expiresInMs: 3600_000 }, key);
    const keyset = readKeyset(TEST_KEYS_DIR)!;
    const roots = readTrust(TEST_KEYS_DIR)!;
    const verdict = await verifyKeyset(keyset, roots, null);
    if (!verdict.ok) throw new Error(verdict.detail);
    const envelopeChecksPerS = await rate(batch.tasks, async (task) => {
      if (!(await verifyEnvelope(task, verdict.keys, Date.now())).ok) throw new Error('an honest envelope was refused');
    });

    const browser = await withBenchPage(async (page) =>
      page.evaluate(
        async ({ envelopes, keyset, roots }) => {
          const run = (window as unknown as { verifyBench: (e: unknown[], k: unknown, r: unknown, n: number) => Promise<{ envelopeUs: number[]; keysetUs: number[]; refused: number }> }).verifyBench;
          return run(envelopes, keyset, roots, 3);
        },
        { envelopes: batch.tasks.slice(0, 200), keyset, roots },
      ),
    );
    if (browser.refused) throw new Error(`the browser refused ${browser.refused} honest envelopes`);
    const steady = browser.envelopeUs.slice(200); // the first round warms up WebCrypto's key import
    return {
      results: count,
      resultChecksPerS,
      nobleChecksPerS,
      envelopes: count,
      envelopeChecksPerS,
      browser: { envelopeMedianUs: median(steady), envelopeP95Us: quantile(steady, 0.95), keysetMedianUs: median(browser.keysetUs), n: steady.length },
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printSignatures(r: SignatureReport): void {
  console.log('\n(i) Signature checks on the task server (one core)');
  console.log(`  result signatures (256-byte stdout decoded and hashed, canonical JSON, node:crypto Ed25519): ${fmt(r.resultChecksPerS, 0)} per second`);
  console.log(`  the signature part with @noble/ed25519 instead: ${fmt(r.nobleChecksPerS, 0)} per second: node:crypto's route is ${fmt(r.resultChecksPerS / r.nobleChecksPerS, 1)}x that`);
  console.log(`  task envelopes at publish (schema, canonical JSON, Ed25519, key window, expiry): ${fmt(r.envelopeChecksPerS, 0)} per second`);
  console.log('\n(j) Envelope checks in the browser (Chromium page, WebCrypto Ed25519)');
  console.log(`  per envelope: median ${fmt(r.browser.envelopeMedianUs, 0)} µs, p95 ${fmt(r.browser.envelopeP95Us, 0)} µs (n = ${r.browser.n}); the keyset check: median ${fmt(r.browser.keysetMedianUs, 0)} µs`);
}
