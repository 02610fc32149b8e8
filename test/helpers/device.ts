/**
 * A donor device in Node, for server tests and benchmarks: its own ed25519 key (its id derived
 * from it, as a browser's is), and results signed the way the client signs them.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import {
  deviceIdOf,
  ed,
  generateKeyPair,
  refusalSigningBytes,
  renewalSigningBytes,
  resultSigningBytes,
  toBase64,
  type LeasePhase,
  type RefusalClaim,
  type RefusalReport,
  type ResultSubmission,
  type LeaseRenewal,
} from '../../src/protocol/index.ts';

export type UnsignedResult = Omit<ResultSubmission, 'signature' | 'work'> & { work?: number | null };

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const privateKeys = new WeakMap<Uint8Array, KeyObject>();

export class TestDevice {
  private constructor(
    readonly deviceId: string,
    readonly publicKey: string,
    private readonly secretKey: Uint8Array,
  ) {}

  static async create(): Promise<TestDevice> {
    const { secretKey, publicKey } = await generateKeyPair();
    return new TestDevice(await deviceIdOf(publicKey), toBase64(publicKey), secretKey);
  }

  /** A POST /api/work body. */
  work(max = 1, engines: string[] = ['wasi-preview1']) {
    return { deviceId: this.deviceId, publicKey: this.publicKey, engines, max };
  }

  /** The result with this device's signature over it, as the client signs one. */
  async sign(result: UnsignedResult, secretKey: Uint8Array = this.secretKey): Promise<ResultSubmission> {
    const { stdout, stderr, files, ...rest } = { ...result, work: result.work ?? null };
    // Buffer's decoder: atob takes seconds on tens of megabytes (the hostile tests post that much).
    const decode = (text: string) => Buffer.from(text, 'base64');
    const outputs = {
      stdout: sha256(decode(stdout)),
      stderr: sha256(decode(stderr)),
      files: files.map((f) => ({ path: f.path, sha256: sha256(decode(f.data)) })),
    };
    const signature = await this.signBytes(resultSigningBytes({ ...rest, outputs }), secretKey);
    return { ...result, work: rest.work, signature };
  }

  /** A POST /api/leases/renew body for the lease, signed. */
  async renewal(lease: { leaseId: string; task: { manifest: { taskId: string } } }, phase: LeasePhase, progress: number): Promise<LeaseRenewal> {
    const claim = { leaseId: lease.leaseId, taskId: lease.task.manifest.taskId, deviceId: this.deviceId, phase, progress };
    return { ...claim, signature: await this.signBytes(renewalSigningBytes(claim)) };
  }

  /** A POST /api/refusals body, signed. */
  async refusal(claim: RefusalClaim): Promise<RefusalReport> {
    return { ...claim, signature: await this.signBytes(refusalSigningBytes(claim)) } as RefusalReport;
  }

  private async signBytes(message: Uint8Array, secretKey: Uint8Array = this.secretKey): Promise<string> {
    // node:crypto's native Ed25519 signs as noble does (RFC 8032 is deterministic), only faster:
    // benchmarks sign thousands of results.
    let key = privateKeys.get(secretKey);
    if (!key) {
      const jwk = { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(secretKey).toString('base64url'), x: Buffer.from(await ed.getPublicKeyAsync(secretKey)).toString('base64url') };
      privateKeys.set(secretKey, (key = createPrivateKey({ key: jwk, format: 'jwk' })));
    }
    return toBase64(sign(null, message, key));
  }
}
