/**
 * Signed task envelopes: ed25519 (RFC 8032) over a domain-separated canonical JSON encoding
 * (RFC 8785) of the manifest. The domain tag keeps a task signature from ever being valid as
 * any other kind of Dewgrid signature.
 */
import * as ed from '@noble/ed25519';
import { fromBase64, sha256, toBase64, toHex, utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import type { SignedTask, TaskManifest } from './schema.ts';

export const TASK_SIGNING_DOMAIN = 'dewgrid/task/v1\n';

/** The exact bytes a task signature covers. */
export function signingBytes(manifest: TaskManifest): Uint8Array {
  return utf8(TASK_SIGNING_DOMAIN + canonicalJson(manifest));
}

/** A key's id: the first 8 bytes of SHA-256 of the 32-byte public key, as hex. */
export async function keyIdOf(publicKey: Uint8Array): Promise<string> {
  return toHex((await sha256(publicKey)).subarray(0, 8));
}

export async function signTask(manifest: TaskManifest, secretKey: Uint8Array): Promise<SignedTask> {
  const signature = await ed.signAsync(signingBytes(manifest), secretKey);
  return { manifest, signature: toBase64(signature) };
}

/** True when `task.signature` is a valid ed25519 signature by `publicKey`. Never throws. */
export async function verifyTaskSignature(task: SignedTask, publicKey: Uint8Array): Promise<boolean> {
  try {
    const signature = fromBase64(task.signature);
    if (signature.length !== 64) return false;
    return await ed.verifyAsync(signature, signingBytes(task.manifest), publicKey);
  } catch {
    return false;
  }
}

export async function generateKeyPair(): Promise<{ secretKey: Uint8Array; publicKey: Uint8Array }> {
  const secretKey = ed.utils.randomSecretKey();
  return { secretKey, publicKey: await ed.getPublicKeyAsync(secretKey) };
}

export { ed };
