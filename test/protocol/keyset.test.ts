// Keysets, key windows, envelope checks against a keyset, and signed results (src/protocol).
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  deviceIdOf,
  ed,
  fromBase64,
  generateKeyPair,
  keyIdOf,
  keysetSigningBytes,
  keyStanding,
  outputDigest,
  resultSigningBytes,
  signKeyset,
  signTask,
  toBase64,
  verifyEnvelope,
  verifyKeyset,
  type Keyset,
  type ResultClaim,
  type SignedKeyset,
  type TaskKey,
  type TrustConfig,
} from '../../src/protocol/index.ts';
import { manifestFor } from '../helpers/tasks.ts';

async function keyPair() {
  const pair = await generateKeyPair();
  return { ...pair, keyId: await keyIdOf(pair.publicKey) };
}

const T0 = Date.parse('2026-06-01T00:00:00Z');

async function setup() {
  const root = await keyPair();
  const signer = await keyPair();
  const roots: TrustConfig = { projectName: 'p', roots: { [root.keyId]: toBase64(root.publicKey) } };
  const keyset: Keyset = { v: 1, version: 3, issuedAt: T0, keys: [{ keyId: signer.keyId, publicKey: toBase64(signer.publicKey), notBefore: T0, notAfter: null, revokedAt: null }] };
  const signed = await signKeyset(keyset, root);
  return { root, signer, roots, keyset, signed };
}

describe('verifyKeyset', () => {
  it('takes a keyset signed by a pinned root, and decodes its keys', async () => {
    const { signer, roots, signed } = await setup();
    const verdict = await verifyKeyset(signed, roots, null);
    expect(verdict.ok).toBe(true);
    if (verdict.ok) expect([...verdict.keys.keys()]).toEqual([signer.keyId]);
    // The bytes signed: the domain tag, then the keyset's canonical JSON.
    expect(new TextDecoder().decode(keysetSigningBytes(signed.keyset))).toBe(`dewgrid/keyset/v1\n${canonicalJson(signed.keyset)}`);
    expect(await ed.verifyAsync(fromBase64(signed.signature), keysetSigningBytes(signed.keyset), Object.values(roots.roots).map(fromBase64)[0]!)).toBe(true);
  });

  it('refuses each way a keyset can be wrong, naming the reason', async () => {
    const { root, signer, roots, keyset, signed } = await setup();
    const other = await keyPair();
    const flipped = fromBase64(signed.signature);
    flipped[0]! ^= 1;
    const wrongId = await signKeyset({ ...keyset, keys: [{ ...keyset.keys[0]!, keyId: other.keyId }] }, root);
    const twice = await signKeyset({ ...keyset, keys: [keyset.keys[0]!, keyset.keys[0]!] }, root);
    const newer = await signKeyset({ ...keyset, version: 4 }, root);
    const sameVersion = await signKeyset({ ...keyset, issuedAt: T0 + 1 }, root);
    const cases: [string, unknown, SignedKeyset | null, string][] = [
      ['not an object', 'hello', null, 'bad-keyset'],
      ['a missing field', { ...signed, keyset: { ...keyset, version: undefined } }, null, 'bad-keyset'],
      ['an extra field', { ...signed, note: 'unsigned' }, null, 'bad-keyset'],
      ['no keys', { ...signed, keyset: { ...keyset, keys: [] } }, null, 'bad-keyset'],
      ['an unpinned root', await signKeyset(keyset, other), null, 'keyset-unknown-root'],
      ['a root id the roots do not hold the key of', { ...signed, rootKeyId: signer.keyId }, null, 'keyset-unknown-root'],
      ['a flipped signature bit', { ...signed, signature: toBase64(flipped) }, null, 'keyset-bad-signature'],
      ['a changed version', { ...signed, keyset: { ...keyset, version: 99 } }, null, 'keyset-bad-signature'],
      ['a key added after signing', { ...signed, keyset: { ...keyset, keys: [...keyset.keys, { ...keyset.keys[0]!, keyId: other.keyId, publicKey: toBase64(other.publicKey) }] } }, null, 'keyset-bad-signature'],
      ['a key listed under another key\'s id', wrongId, null, 'bad-keyset'],
      ['a key listed twice', twice, null, 'bad-keyset'],
      ['an older version than the one held', signed, newer, 'keyset-rollback'],
      ['another keyset under the version held', sameVersion, signed, 'keyset-rollback'],
    ];
    for (const [index, [name, input, held, reason]] of cases.entries()) {
      const verdict = await verifyKeyset(input, roots, held);
      expect(verdict.ok, `case ${index} (${name})`).toBe(false);
      if (!verdict.ok) expect(verdict.reason, `case ${index} (${name}): ${verdict.detail}`).toBe(reason);
    }
    // The one held again, or a newer one, is fine.
    expect((await verifyKeyset(signed, roots, signed)).ok).toBe(true);
    expect((await verifyKeyset(newer, roots, signed)).ok).toBe(true);
  });
});

describe('keyStanding', () => {
  const key = (notAfter: number | null, revokedAt: number | null = null): TaskKey => ({ publicKey: new Uint8Array(32), notBefore: T0, notAfter, revokedAt });
  const table: [string, TaskKey, number, string][] = [
    ['before its window', key(null), T0 - 1, 'expired-key'],
    ['at the start of its window', key(null), T0, 'ok'],
    ['open-ended, years later', key(null), T0 + 10 * 365 * 86400_000, 'ok'],
    ['the last ms of its window', key(T0 + 1000), T0 + 999, 'ok'],
    ['at the end of its window (exclusive)', key(T0 + 1000), T0 + 1000, 'expired-key'],
    ['revoked, inside its window', key(null, T0 + 5), T0 + 1, 'revoked-key'],
    ['revoked and retired', key(T0 + 1000, T0 + 5), T0 + 2000, 'revoked-key'],
  ];
  for (const [index, [name, k, now, expected]] of table.entries()) {
    it(`case ${index}: ${name} → ${expected}`, () => {
      const standing = keyStanding(k, now);
      expect(standing.ok ? 'ok' : standing.reason).toBe(expected);
    });
  }
});

describe('verifyEnvelope against a keyset', () => {
  it('refuses unknown, revoked and retired keys, bad signatures and expired tasks, in that order', async () => {
    const { signer } = await setup();
    const signing = { ...signer, keyId: signer.keyId };
    const now = Date.now();
    const good = await signTask(await manifestFor(signing, 'b', 0), signer.secretKey);
    const keys = (entry: Partial<TaskKey>) => new Map<string, TaskKey>([[signer.keyId, { publicKey: signer.publicKey, notBefore: 0, notAfter: null, revokedAt: null, ...entry }]]);
    expect((await verifyEnvelope(good, keys({}), now)).ok).toBe(true);
    const forged = { ...good, manifest: { ...good.manifest, args: ['evil'] } };
    const expired = await signTask(await manifestFor(signing, 'b', 1, { expiresAt: now - 1 }), signer.secretKey);
    const cases: [string, unknown, Map<string, TaskKey>, string][] = [
      ['a key not in the keyset', good, new Map(), 'unknown-key'],
      ['a revoked key', good, keys({ revokedAt: now - 10 }), 'revoked-key'],
      ['a retired key', good, keys({ notAfter: now - 10 }), 'expired-key'],
      ['a key not valid yet', good, keys({ notBefore: now + 60_000 }), 'expired-key'],
      ['a changed manifest under a revoked key: the signature first', forged, keys({ revokedAt: now - 10 }), 'bad-signature'],
      ['an expired task', expired, keys({}), 'expired-task'],
      ['a revoked key on an expired task: the key first', expired, keys({ revokedAt: now - 10 }), 'revoked-key'],
    ];
    for (const [index, [name, input, taskKeys, reason]] of cases.entries()) {
      const verdict = await verifyEnvelope(input, taskKeys, now);
      expect(verdict.ok ? 'ok' : verdict.reason, `case ${index} (${name})`).toBe(reason);
    }
  });
});

describe('signed results', () => {
  const claim = (): ResultClaim => ({
    leaseId: 'lease-1',
    taskId: 'task-1',
    deviceId: 'ab'.repeat(16),
    exitCode: 0,
    truncated: { stdout: false, stderr: false, files: false },
    error: null,
    timings: { fetchMs: 1.5, compileMs: 2, runMs: 300.1 },
    work: 123456789,
    outputs: { stdout: 'aa'.repeat(32), stderr: 'bb'.repeat(32), files: [{ path: '/out/x', sha256: 'cc'.repeat(32) }] },
  });

  it('a device id is the first 16 bytes of SHA-256 of its public key, in hex', async () => {
    // SHA-256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
    expect(await deviceIdOf(new Uint8Array(32))).toBe('66687aadf862bd776c8fc18b8e9f8e20');
  });

  it('covers every field: any change breaks the signature', async () => {
    const device = await keyPair();
    const signature = await ed.signAsync(resultSigningBytes(claim()), device.secretKey);
    expect(await ed.verifyAsync(signature, resultSigningBytes(claim()), device.publicKey)).toBe(true);
    const changes: [string, (c: ResultClaim) => void][] = [
      ['lease', (c) => void (c.leaseId = 'lease-2')],
      ['exit code', (c) => void (c.exitCode = 1)],
      ['stdout hash', (c) => void (c.outputs.stdout = 'ab'.repeat(32))],
      ['a file path', (c) => void (c.outputs.files[0]!.path = '/out/y')],
      ['truncation', (c) => void (c.truncated.stderr = true)],
      ['work', (c) => void (c.work = 123456790)],
      ['timings', (c) => void (c.timings.runMs = 1)],
      ['error', (c) => void (c.error = { code: 'trap', message: 'x' })],
    ];
    for (const [index, [name, change]] of changes.entries()) {
      const changed = claim();
      change(changed);
      expect(await ed.verifyAsync(signature, resultSigningBytes(changed), device.publicKey), `change ${index} (${name})`).toBe(false);
    }
  });

  it('compares outputs, exit code and truncation, never work or timings', async () => {
    const base = await outputDigest(claim());
    expect(await outputDigest({ ...claim(), work: 1, timings: { fetchMs: 0, compileMs: 0, runMs: 0 } } as ResultClaim)).toBe(base);
    expect(await outputDigest({ ...claim(), exitCode: 2 })).not.toBe(base);
    expect(await outputDigest({ ...claim(), truncated: { stdout: true, stderr: false, files: false } })).not.toBe(base);
    expect(await outputDigest({ ...claim(), outputs: { ...claim().outputs, files: [] } })).not.toBe(base);
  });
});
