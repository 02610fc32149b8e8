/**
 * Keysets: a project's root key (kept offline) signs the list of its task-signing keys with their
 * validity windows, so signing keys rotate and are revoked without a new client build. Clients pin
 * only the roots (TrustConfig); servers serve the keyset; versions only go up.
 */
import * as ed from '@noble/ed25519';
import { fromBase64, toBase64, utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import { parse, SignedKeyset, type KeysetKey, type KeysetRefusalReason, type Keyset } from './schema.ts';
import { keyIdOf, verifyEd25519 } from './signing.ts';
import type { TrustConfig } from './api.ts';

export const KEYSET_SIGNING_DOMAIN = 'dewgrid/keyset/v1\n';

/** The exact bytes a keyset signature covers. */
export function keysetSigningBytes(keyset: Keyset): Uint8Array {
  return utf8(KEYSET_SIGNING_DOMAIN + canonicalJson(keyset));
}

export async function signKeyset(keyset: Keyset, root: { keyId: string; secretKey: Uint8Array }): Promise<SignedKeyset> {
  const signature = await ed.signAsync(keysetSigningBytes(keyset), root.secretKey);
  return { keyset, rootKeyId: root.keyId, signature: toBase64(signature) };
}

/** A task-signing key, decoded: what task verification looks up by key id. */
export interface TaskKey {
  publicKey: Uint8Array;
  notBefore: number;
  notAfter: number | null;
  revokedAt: number | null;
}

export type KeysetVerdict = { ok: true; value: SignedKeyset; keys: Map<string, TaskKey> } | { ok: false; reason: KeysetRefusalReason; detail: string; version: number };

/** Plain words for each keyset refusal, for the activity log and the CLI. */
export const KEYSET_REFUSAL_TEXT: Record<KeysetRefusalReason, string> = {
  'bad-keyset': 'the list of the project\'s signing keys is malformed',
  'keyset-unknown-root': 'the list of signing keys is signed by a root key this client does not trust',
  'keyset-bad-signature': 'the signature on the list of signing keys does not match it',
  'keyset-rollback': 'the list of signing keys is older than the one this client holds (a rollback)',
};

/**
 * Checks a keyset against the pinned roots and the one held: its shape, its root, its signature,
 * every key's id, and that it is not older than `held` (nor a different keyset under the same
 * version). The held one is returned as ok again when `input` is the same keyset.
 * Never throws.
 */
export async function verifyKeyset(input: unknown, roots: Pick<TrustConfig, 'roots'>, held: SignedKeyset | null): Promise<KeysetVerdict> {
  const claimed = typeof (input as { keyset?: { version?: unknown } } | null)?.keyset?.version === 'number' ? (input as { keyset: { version: number } }).keyset.version : 0;
  const version = Number.isInteger(claimed) && claimed >= 0 ? claimed : 0;
  const parsed = parse(SignedKeyset, input);
  if (!parsed.ok) return { ok: false, reason: 'bad-keyset', detail: parsed.message, version };
  const signed = parsed.value;
  const rootKey = await rootKeyOf(roots, signed.rootKeyId);
  if (!rootKey) return { ok: false, reason: 'keyset-unknown-root', detail: `root key ${signed.rootKeyId} is not pinned by this client`, version };
  let signature: Uint8Array;
  try {
    signature = fromBase64(signed.signature);
  } catch {
    return { ok: false, reason: 'keyset-bad-signature', detail: 'the signature is not base64', version };
  }
  if (!(await verifyEd25519(signature, keysetSigningBytes(signed.keyset), rootKey))) {
    return { ok: false, reason: 'keyset-bad-signature', detail: `keyset version ${version} does not verify under root ${signed.rootKeyId}`, version };
  }
  const keys = new Map<string, TaskKey>();
  for (const [index, key] of signed.keyset.keys.entries()) {
    const decoded = await decodeKey(key);
    if (!decoded) return { ok: false, reason: 'bad-keyset', detail: `keys.${index}: ${key.keyId} is not the id of its public key`, version };
    if (keys.has(key.keyId)) return { ok: false, reason: 'bad-keyset', detail: `keys.${index}: ${key.keyId} appears twice`, version };
    keys.set(key.keyId, decoded);
  }
  if (held) {
    const heldVersion = held.keyset.version;
    if (version < heldVersion) return { ok: false, reason: 'keyset-rollback', detail: `version ${version} is older than version ${heldVersion}, which this client holds`, version };
    if (version === heldVersion && canonicalJson(held) !== canonicalJson(signed)) {
      return { ok: false, reason: 'keyset-rollback', detail: `version ${version} differs from the version ${heldVersion} this client holds`, version };
    }
  }
  return { ok: true, value: signed, keys };
}

/** The pinned root with this id, or null: ids are derived from the keys, never taken as given. */
async function rootKeyOf(roots: Pick<TrustConfig, 'roots'>, keyId: string): Promise<Uint8Array | null> {
  const text = roots.roots[keyId];
  if (typeof text !== 'string') return null;
  try {
    const bytes = fromBase64(text);
    return bytes.length === 32 && (await keyIdOf(bytes)) === keyId ? bytes : null;
  } catch {
    return null;
  }
}

async function decodeKey(key: KeysetKey): Promise<TaskKey | null> {
  try {
    const publicKey = fromBase64(key.publicKey);
    if (publicKey.length !== 32 || (await keyIdOf(publicKey)) !== key.keyId) return null;
    return { publicKey, notBefore: key.notBefore, notAfter: key.notAfter, revokedAt: key.revokedAt };
  } catch {
    return null;
  }
}

/** Whether a key verifies tasks at `now`: the refusal reason if not. */
export function keyStanding(key: TaskKey, now: number): { ok: true } | { ok: false; reason: 'revoked-key' | 'expired-key'; detail: string } {
  if (key.revokedAt !== null) return { ok: false, reason: 'revoked-key', detail: `revoked at ${new Date(key.revokedAt).toISOString()}` };
  if (now < key.notBefore) return { ok: false, reason: 'expired-key', detail: `not valid before ${new Date(key.notBefore).toISOString()}` };
  if (key.notAfter !== null && now >= key.notAfter) return { ok: false, reason: 'expired-key', detail: `retired at ${new Date(key.notAfter).toISOString()}` };
  return { ok: true };
}
