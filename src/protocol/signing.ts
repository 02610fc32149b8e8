/**
 * Signed task envelopes: ed25519 (RFC 8032) over a domain-separated canonical JSON encoding
 * (RFC 8785) of the manifest. The domain tag keeps a task signature from ever being valid as
 * any other kind of Dewgrid signature.
 */
import * as ed from '@noble/ed25519';
import { fromBase64, sha256, toBase64, toHex, utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import type { SignedTask, TaskManifest } from './schema.ts';
import type { TrustConfig } from './api.ts';

export const TASK_SIGNING_DOMAIN = 'dewgrid/task/v1\n';

/** The exact bytes a task signature covers. */
export function signingBytes(manifest: TaskManifest): Uint8Array {
  return utf8(TASK_SIGNING_DOMAIN + canonicalJson(manifest));
}

/** A key's id: the first 8 bytes of SHA-256 of the 32-byte public key, as hex. */
export async function keyIdOf(publicKey: Uint8Array): Promise<string> {
  return toHex((await sha256(publicKey)).subarray(0, 8));
}

/**
 * The keys a trust configuration pins, keyId -> ed25519 public key. An entry that is malformed,
 * or listed under an id that is not its key's, pins nothing: ids are derived, never taken as given.
 */
export async function pinnedKeys(config: Pick<TrustConfig, 'keys'> | null): Promise<Map<string, Uint8Array>> {
  const keys = new Map<string, Uint8Array>();
  for (const [keyId, publicKey] of Object.entries(config?.keys ?? {})) {
    try {
      const bytes = fromBase64(publicKey);
      if (bytes.length === 32 && (await keyIdOf(bytes)) === keyId) keys.set(keyId, bytes);
    } catch {
      // not base64: pins nothing
    }
  }
  return keys;
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
