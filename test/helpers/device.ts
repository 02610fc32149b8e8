/**
 * A donor device in Node, for server tests and benchmarks: its own ed25519 key (its id derived
 * from it, as a browser's is), and results signed the way the client signs them.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { deviceIdOf, ed, fromBase64, generateKeyPair, resultSigningBytes, toBase64, type ResultSubmission } from '../../src/protocol/index.ts';

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
    const outputs = {
      stdout: sha256(fromBase64(stdout)),
      stderr: sha256(fromBase64(stderr)),
      files: files.map((f) => ({ path: f.path, sha256: sha256(fromBase64(f.data)) })),
    };
    // node:crypto's native Ed25519 signs as noble does (RFC 8032 is deterministic), only faster:
    // benchmarks sign thousands of results.
    let key = privateKeys.get(secretKey);
    if (!key) {
      const jwk = { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(secretKey).toString('base64url'), x: Buffer.from(await ed.getPublicKeyAsync(secretKey)).toString('base64url') };
      privateKeys.set(secretKey, (key = createPrivateKey({ key: jwk, format: 'jwk' })));
    }
    const signature = toBase64(sign(null, resultSigningBytes({ ...rest, outputs }), key));
    return { ...result, work: rest.work, signature };
  }
}
