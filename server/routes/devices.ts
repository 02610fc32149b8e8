/**
 * What donor devices call: leases out, results, renewals and refusals in, their credit. The rules
 * about which device may answer which lease live in the store, inside the transaction that applies
 * them; what needs no database (a signature, an output digest, output paths) is checked here first.
 * Every device route is rate-limited per device, new keys per network address, and results the
 * server refuses are counted against their device, lease and address (rate-limit.ts).
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
  outputPathProblem,
  RefusalReport,
  parseResultBody,
  refusalSigningBytes,
  renewalSigningBytes,
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
import { RateLimiter, Strikes, type Rate } from '../rate-limit.ts';
import type { Store } from '../store/index.ts';

export interface DeviceLimits {
  /** Requests one device may make to the device routes. */
  perDevice: Rate;
  /** New device keys one network address may register. */
  newKeysPerAddress: Rate;
  /** Refused results: per device and per address in `windowMs` before they wait; per lease, ever. */
  refusedResults: { perDevice: number; perAddress: number; perLease: number; windowMs: number };
}

export const DEFAULT_DEVICE_LIMITS: DeviceLimits = {
  // A browser donor makes a request every few seconds; a burst covers a page catching up after an outage.
  perDevice: { perSecond: 20, burst: 200 },
  // A lab behind one NAT starts a few hundred donors at once; a key factory gets one every 6 s.
  newKeysPerAddress: { perSecond: 1 / 6, burst: 200 },
  // An honest client posts a refused result once and gives up on it.
  refusedResults: { perDevice: 10, perAddress: 100, perLease: 3, windowMs: 10 * 60_000 },
};

export interface DeviceRouteOptions {
  now: () => number;
  /** Results carry a task's outputs, so they may be larger than other bodies. */
  resultBodyLimit: number;
  limits?: DeviceLimits;
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

/** @throws HttpError 403 unless `signature` is the device's over `signed`; `what` names the message. */
function checkSignature(signed: Uint8Array, signature: string, publicKey: string, what: string, deviceId: string): void {
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length !== 64 || !verify(null, signed, deviceKey(publicKey), bytes)) throw new HttpError(403, `the signature on ${what} is not device ${deviceId}'s`);
}

/** @throws HttpError 403 unless `result.signature` is the device's signature over what was received. */
export function checkResultSignature(result: ResultSubmission, publicKey: string, outputs: OutputDigests): void {
  const { signature, stdout: _stdout, stderr: _stderr, files: _files, ...rest } = result;
  checkSignature(resultSigningBytes({ ...rest, outputs }), signature, publicKey, `the result for lease ${result.leaseId}`, result.deviceId);
}

/** A result as the store takes it, whichever form it came in: the submission, its outputs' digests and sizes. */
interface ReceivedResult {
  submission: ResultSubmission;
  outputs: OutputDigests;
  /** Decoded sizes, bytes (the output files together), checked against the task's limits by the store. */
  sizes: { stdout: number; stderr: number; files: number };
}

/**
 * A binary result body as the submission it stands for, outputs in base64 as the store keeps them
 * (and as the JSON form would have them, so both forms of one result are the same result).
 * @throws HttpError 400 naming what is wrong with the body.
 */
function binaryResult(body: Buffer): ReceivedResult {
  const parsed = parseResultBody(body);
  if (!parsed.ok) throw new HttpError(400, `binary result: ${parsed.message}`);
  const head = bodyOf(ResultHead, parsed.head);
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  const [stdout, stderr, ...files] = parsed.outputs;
  return {
    submission: { ...head, stdout: base64(stdout!), stderr: base64(stderr!), files: head.files.map((f, i) => ({ path: f.path, data: base64(files[i]!) })) },
    outputs: { stdout: sha256(stdout!), stderr: sha256(stderr!), files: head.files.map((f, i) => ({ path: f.path, sha256: sha256(files[i]!) })) },
    sizes: { stdout: stdout!.length, stderr: stderr!.length, files: files.reduce((sum, f) => sum + f.length, 0) },
  };
}

/** A JSON result body, checked against the schema. @throws HttpError 400 naming the field. */
function jsonResult(body: unknown): ReceivedResult {
  const submission = bodyOf(ResultSubmission, body);
  // Buffer's decoder, not atob: 20 times faster on megabytes, and the schema has checked the text is padded base64.
  const decode = (text: string) => Buffer.from(text, 'base64');
  const stdout = decode(submission.stdout);
  const stderr = decode(submission.stderr);
  const files = submission.files.map((f) => decode(f.data));
  return {
    submission,
    outputs: { stdout: sha256(stdout), stderr: sha256(stderr), files: submission.files.map((f, i) => ({ path: f.path, sha256: sha256(files[i]!) })) },
    sizes: { stdout: stdout.length, stderr: stderr.length, files: files.reduce((sum, f) => sum + f.length, 0) },
  };
}

/** Devices whose key was checked and recorded lately: a work request from one costs no hashing and no write. */
const KNOWN_DEVICES_KEPT = 100_000;
/** How often a known device's last_seen is written again. */
const SEEN_EVERY_MS = 60_000;

export function deviceRoutes(app: FastifyInstance, store: Store, keysets: Keysets, options: DeviceRouteOptions): void {
  const { now } = options;
  const limits = options.limits ?? DEFAULT_DEVICE_LIMITS;
  const known = new Map<string, { publicKey: string; seenAt: number }>();
  const perDevice = new RateLimiter(limits.perDevice, now);
  const newKeys = new RateLimiter(limits.newKeysPerAddress, now);
  const refused = limits.refusedResults;
  const deviceStrikes = new Strikes({ perDevice: refused.perDevice, perLease: refused.perLease, windowMs: refused.windowMs }, now);
  const addressStrikes = new Strikes({ perDevice: refused.perAddress, perLease: Infinity, windowMs: refused.windowMs }, now);

  /** The public key on record for a device, or a 403: a device registers its key when it asks for work. */
  async function keyOf(deviceId: string): Promise<string> {
    const publicKey = known.get(deviceId)?.publicKey ?? (await store.devicePublicKey(deviceId));
    if (!publicKey) throw new HttpError(403, `device ${deviceId} has no key on record (a device registers its key when it asks for work)`);
    return publicKey;
  }

  /** Checks that the id is the key's and records both (the store refuses another key for a known id). */
  async function register(deviceId: string, base64: string, address: string): Promise<void> {
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
    // Keys are free: how many new ones one address may bring is bounded.
    if (!cached && (await store.devicePublicKey(deviceId)) === null) newKeys.take(address, `new devices from ${address}`);
    await store.registerDevice(deviceId, base64);
    known.delete(deviceId);
    known.set(deviceId, { publicKey: base64, seenAt: now() });
    if (known.size > KNOWN_DEVICES_KEPT) known.delete(known.keys().next().value!);
  }

  app.post(API.work, async (request): Promise<WorkResponse> => {
    const work = bodyOf(WorkRequest, request.body);
    perDevice.take(work.deviceId, `device ${work.deviceId}`);
    await register(work.deviceId, work.publicKey, request.ip);
    const { leases, keysetVersion } = await store.lease(work.deviceId, work.engines, work.max);
    return {
      leases: leases.map((l) => ({ leaseId: l.leaseId, expiresAt: l.expiresAt, task: JSON.parse(l.envelope) as SignedTask })),
      keysetVersion,
    };
  });

  app.post(API.renew, async (request) => {
    const renewal = bodyOf(LeaseRenewal, request.body);
    perDevice.take(renewal.deviceId, `device ${renewal.deviceId}`);
    const { signature, ...claim } = renewal;
    checkSignature(renewalSigningBytes(claim), signature, await keyOf(renewal.deviceId), `the renewal of lease ${renewal.leaseId}`, renewal.deviceId);
    return { expiresAt: await store.renewLease(renewal) };
  });

  // Binary results (docs/protocol.md): the outputs' bytes after a JSON head, not base64 in JSON.
  app.addContentTypeParser(RESULT_BODY_TYPE, { parseAs: 'buffer', bodyLimit: options.resultBodyLimit }, (_request, body, done) => done(null, body));

  app.post(
    API.results,
    {
      bodyLimit: options.resultBodyLimit,
      // An address whose results keep being refused waits before its next body is even read (a
      // hook of this route alone: the other requests do not pay for it).
      onRequest: async (request) => addressStrikes.check(`address ${request.ip}`, ''),
    },
    async (request) => {
      let verified: ResultSubmission | null = null;
      try {
        const { submission: result, outputs, sizes } = Buffer.isBuffer(request.body) ? binaryResult(request.body) : jsonResult(request.body);
        perDevice.take(result.deviceId, `device ${result.deviceId}`);
        deviceStrikes.check(result.deviceId, result.leaseId);
        checkResultSignature(result, await keyOf(result.deviceId), outputs);
        verified = result;
        const bad = outputPathProblem(result.files.map((f) => f.path));
        if (bad) throw new HttpError(400, `files.${bad.index}.path: ${bad.message}`);
        // The same result posted again hashes the same, whatever its key order or whitespace.
        const bodyHash = createHash('sha256').update(canonicalJson(result)).digest('hex');
        const digest = result.error ? null : sha256(outputDigestBytes({ exitCode: result.exitCode, truncated: result.truncated, outputs }));
        return { status: await store.submitResult({ submission: result, bodyHash, outputDigest: digest, sizes }) };
      } catch (error) {
        // A refused result counts against its address, and against its device and lease once it is
        // known to be theirs (signed): a late one (410) is honest, and a 429 is already a wait.
        const status = (error as { status?: number }).status ?? 500;
        if (status >= 400 && status < 500 && status !== 410 && status !== 429) {
          addressStrikes.strike(`address ${request.ip}`, '');
          if (verified) deviceStrikes.strike(verified.deviceId, verified.leaseId);
        }
        throw error;
      }
    },
  );

  app.post(API.refusals, async (request) => {
    const report = bodyOf(RefusalReport, request.body);
    perDevice.take(report.deviceId, `device ${report.deviceId}`);
    const what = report.kind === 'task' ? `the refusal of lease ${report.leaseId}` : `the refusal of keyset version ${report.version}`;
    // A device refuses a keyset before it ever asks for work: its report may register its key, under the same limits.
    if (report.kind === 'keyset' && report.publicKey !== undefined) await register(report.deviceId, report.publicKey, request.ip);
    const { signature, ...claim } = report;
    checkSignature(refusalSigningBytes(claim), signature, await keyOf(report.deviceId), what, report.deviceId);
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

  app.get(API.keysetRefusals, async () => (await store.keysetRefusals()).map(({ trusted, ...r }) => ({ ...r, newDevice: !trusted })));

  // Tasks a revoked key signed are not handed out again (clients would refuse them anyway).
  app.post(API.keyset, async (request) => keysets.replace(request.body));
}
