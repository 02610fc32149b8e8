/**
 * What donor devices call: leases out, results and refusals in, their credit. The rules about
 * which device may answer which lease live in the store, inside the transaction that applies them;
 * what needs no database (a result's signature, its output digest) is checked here first.
 */
import type { FastifyInstance } from 'fastify';
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  API,
  canonicalJson,
  deviceIdOf,
  fromBase64,
  LeaseRenewal,
  outputDigestBytes,
  RefusalReport,
  parseResultBody,
  RESULT_BODY_TYPE,
  ResultHead,
  resultSigningBytes,
  ResultSubmission,
  WorkRequest,
  type DeviceCredit,
  type OutputDigests,
  type SignedTask,
  type WorkResponse,
} from '../../src/protocol/index.ts';
import { bodyOf, HttpError } from '../errors.ts';
import type { Keysets } from '../keyset.ts';
import type { Store } from '../store/index.ts';

export interface DeviceRouteOptions {
  now: () => number;
  /** Results carry a task's outputs, so they may be larger than other bodies. */
  resultBodyLimit: number;
}

function noCredit(deviceId: string): DeviceCredit {
  return { deviceId, validated: 0, pending: 0, results: { valid: 0, invalid: 0, pending: 0, error: 0 }, consecutiveValid: 0, trusted: false };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** node:crypto's native Ed25519 key for a device, made once per key. */
const deviceKeys = new Map<string, KeyObject>();
function deviceKey(publicKey: string): KeyObject {
  let key = deviceKeys.get(publicKey);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey, 'base64').toString('base64url') }, format: 'jwk' });
    deviceKeys.set(publicKey, key);
  }
  return key;
}

/** @throws HttpError 403 unless `result.signature` is the device's signature over what was received. */
export function checkResultSignature(result: ResultSubmission, publicKey: string, outputs: OutputDigests): void {
  const { signature, stdout: _stdout, stderr: _stderr, files: _files, ...rest } = result;
  const signed = resultSigningBytes({ ...rest, outputs });
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length !== 64 || !verify(null, signed, deviceKey(publicKey), bytes)) {
    throw new HttpError(403, `the signature on the result for lease ${result.leaseId} is not device ${result.deviceId}'s`);
  }
}

/**
 * A binary result body as the submission it stands for, outputs in base64 as the store keeps them
 * (and as the JSON form would have them, so both forms of one result are the same result).
 * @throws HttpError 400 naming what is wrong with the body.
 */
function binaryResult(body: Buffer): { submission: ResultSubmission; outputs: OutputDigests } {
  const parsed = parseResultBody(body);
  if (!parsed.ok) throw new HttpError(400, `binary result: ${parsed.message}`);
  const head = bodyOf(ResultHead, parsed.head);
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  const [stdout, stderr, ...files] = parsed.outputs;
  return {
    submission: { ...head, stdout: base64(stdout!), stderr: base64(stderr!), files: head.files.map((f, i) => ({ path: f.path, data: base64(files[i]!) })) },
    outputs: { stdout: sha256(stdout!), stderr: sha256(stderr!), files: head.files.map((f, i) => ({ path: f.path, sha256: sha256(files[i]!) })) },
  };
}

/** Devices whose key was checked and recorded lately: a work request from one costs no hashing and no write. */
const KNOWN_DEVICES_KEPT = 100_000;
/** How often a known device's last_seen is written again. */
const SEEN_EVERY_MS = 60_000;

export function deviceRoutes(app: FastifyInstance, store: Store, keysets: Keysets, options: DeviceRouteOptions): void {
  const { now } = options;
  const known = new Map<string, { publicKey: string; seenAt: number }>();

  /** Checks that the id is the key's and records both (the store refuses another key for a known id). */
  async function register(deviceId: string, base64: string): Promise<void> {
    const cached = known.get(deviceId);
    if (cached?.publicKey === base64 && now() - cached.seenAt < SEEN_EVERY_MS) return;
    let publicKey: Uint8Array;
    try {
      publicKey = fromBase64(base64);
    } catch {
      throw new HttpError(400, 'publicKey: must be base64');
    }
    if (publicKey.length !== 32) throw new HttpError(400, `publicKey: an ed25519 public key has 32 bytes, not ${publicKey.length}`);
    // Ids are derived from keys: nobody can ask for work, or sign results, under another device's id.
    if ((await deviceIdOf(publicKey)) !== deviceId) throw new HttpError(400, `deviceId: ${deviceId} is not the id of this publicKey`);
    await store.registerDevice(deviceId, base64);
    known.delete(deviceId);
    known.set(deviceId, { publicKey: base64, seenAt: now() });
    if (known.size > KNOWN_DEVICES_KEPT) known.delete(known.keys().next().value!);
  }

  app.post(API.work, async (request): Promise<WorkResponse> => {
    const work = bodyOf(WorkRequest, request.body);
    await register(work.deviceId, work.publicKey);
    const { leases, keysetVersion } = await store.lease(work.deviceId, work.engines, work.max);
    return {
      leases: leases.map((l) => ({ leaseId: l.leaseId, expiresAt: l.expiresAt, task: JSON.parse(l.envelope) as SignedTask })),
      keysetVersion,
    };
  });

  app.post(API.renew, async (request) => {
    const renewal = bodyOf(LeaseRenewal, request.body);
    return { expiresAt: await store.renewLease(renewal) };
  });

  // Binary results (docs/protocol.md): the outputs' bytes after a JSON head, not base64 in JSON.
  app.addContentTypeParser(RESULT_BODY_TYPE, { parseAs: 'buffer', bodyLimit: options.resultBodyLimit }, (_request, body, done) => done(null, body));

  app.post(API.results, { bodyLimit: options.resultBodyLimit }, async (request) => {
    const binary = Buffer.isBuffer(request.body) ? binaryResult(request.body) : null;
    const result = binary?.submission ?? bodyOf(ResultSubmission, request.body);
    const publicKey = known.get(result.deviceId)?.publicKey ?? (await store.devicePublicKey(result.deviceId));
    if (!publicKey) throw new HttpError(403, `device ${result.deviceId} has no key on record (a device registers its key when it asks for work)`);
    const outputs: OutputDigests = binary?.outputs ?? {
      stdout: sha256(fromBase64(result.stdout)),
      stderr: sha256(fromBase64(result.stderr)),
      files: result.files.map((f) => ({ path: f.path, sha256: sha256(fromBase64(f.data)) })),
    };
    checkResultSignature(result, publicKey, outputs);
    // The same result posted again hashes the same, whatever its key order or whitespace.
    const bodyHash = createHash('sha256').update(canonicalJson(result)).digest('hex');
    const digest = result.error ? null : sha256(outputDigestBytes({ exitCode: result.exitCode, truncated: result.truncated, outputs }));
    return { status: await store.submitResult({ submission: result, bodyHash, outputDigest: digest }) };
  });

  app.post(API.refusals, async (request) => {
    const report = bodyOf(RefusalReport, request.body);
    return { status: report.kind === 'task' ? await store.recordRefusal(report) : await store.recordKeysetRefusal(report) };
  });

  app.get<{ Params: { deviceId: string } }>(API.device(':deviceId'), async (request, reply): Promise<DeviceCredit> => {
    const { deviceId } = request.params;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(deviceId)) throw new HttpError(400, `not a device id: ${deviceId.slice(0, 80)}`);
    reply.header('cache-control', 'no-cache');
    // A device the server has not met yet (it has asked for no work) has earned nothing: that is its credit, not an error.
    return (await store.deviceCredit(deviceId)) ?? noCredit(deviceId);
  });

  app.get(API.keyset, async (request, reply) => {
    const signed = await keysets.current();
    if (!signed) throw new HttpError(404, 'this server holds no keyset yet: push one with `dewgrid keys push`');
    const etag = `"v${signed.keyset.version}"`;
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return signed;
  });

  app.get(API.keysetRefusals, async () => store.keysetRefusals());

  // Tasks a revoked key signed are not handed out again (clients would refuse them anyway).
  app.post(API.keyset, async (request) => keysets.replace(request.body));
}
