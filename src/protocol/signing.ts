/**
 * Signed task envelopes: ed25519 (RFC 8032) over a domain-separated canonical JSON encoding
 * (RFC 8785) of the manifest. The domain tag keeps a task signature from ever being valid as
 * any other kind of Dewgrid signature.
 */
import * as ed from '@noble/ed25519';
import { fromBase64, fromHex, sha256, toBase64, toHex, utf8 } from './bytes.ts';
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
    return await verifyEd25519(signature, signingBytes(task.manifest), publicKey);
  } catch {
    return false;
  }
}

/** Whether WebCrypto here verifies Ed25519 natively; settled once, on first use. */
let nativeEd25519: Promise<boolean> | null = null;
// (The key type spelled through importKey: the page's and Node's lib typings name CryptoKey differently.)
const importedKeys = new Map<string, ReturnType<typeof crypto.subtle.importKey>>();

/**
 * RFC 8032 5.1.7 verification: WebCrypto's native Ed25519 where the platform has it (Chromium,
 * Firefox, Safari 17+, Node 20), else @noble/ed25519. Native matters on the page: its work runs
 * off the main thread, where noble's point arithmetic took several ms per envelope.
 * Never throws; a malformed key or signature is `false`.
 */
export async function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  nativeEd25519 ??= probeNativeEd25519();
  if (await nativeEd25519) {
    try {
      const id = toBase64(publicKey);
      let key = importedKeys.get(id);
      if (!key) {
        key = crypto.subtle.importKey('raw', publicKey as Uint8Array<ArrayBuffer>, { name: 'Ed25519' }, false, ['verify']);
        importedKeys.set(id, key);
        key.catch(() => importedKeys.delete(id));
      }
      return await crypto.subtle.verify({ name: 'Ed25519' }, await key, signature as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>);
    } catch {
      return false; // e.g. a public key that is not a valid point
    }
  }
  try {
    return await ed.verifyAsync(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Verifies RFC 8032's first test vector natively: a platform that imports Ed25519 but gets it wrong is not used. */
async function probeNativeEd25519(): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey('raw', fromHex(RFC8032_TEST1.publicKey) as Uint8Array<ArrayBuffer>, { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, fromHex(RFC8032_TEST1.signature) as Uint8Array<ArrayBuffer>, new Uint8Array(0));
  } catch {
    return false;
  }
}

/** RFC 8032 section 7.1, TEST 1 (the empty message). */
const RFC8032_TEST1 = {
  publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
} as const;

export async function generateKeyPair(): Promise<{ secretKey: Uint8Array; publicKey: Uint8Array }> {
  const secretKey = ed.utils.randomSecretKey();
  return { secretKey, publicKey: await ed.getPublicKeyAsync(secretKey) };
}

export { ed };
