/**
 * The project owner's credential (docs/protocol.md, "The owner's credential"): an owner token, a
 * statement signed by one of the project's task-signing keys, sent as `Authorization: Bearer
 * <token>`. The server checks it against the keyset it already holds, before it reads a body, so
 * nothing but the keyset configures it, and rotating or revoking a key ends the tokens it signed.
 *
 *   token  = "dgo1." + base64url(JCS(claims)) + "." + base64url(ed25519 signature)
 *   signed = "dewgrid/owner/v1\n" + JCS(claims)
 *
 * The claims travel as the exact bytes signed, so the server verifies what it received rather than
 * a re-encoding of it.
 */
import * as ed from '@noble/ed25519';
import * as v from 'valibot';
import { utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import { keyStanding, type TaskKey } from './keyset.ts';
import { parse } from './schema.ts';
import { verifyEd25519 } from './signing.ts';

export const OWNER_SIGNING_DOMAIN = 'dewgrid/owner/v1\n';
const PREFIX = 'dgo1.';

/**
 * What a token allows: `read` the owner's views (batch list, statuses, results, events, the status
 * page); `all` also changes things (publish, cancel). Links and dashboards get `read`.
 */
export const OWNER_SCOPES = ['read', 'all'] as const;
export type OwnerScope = (typeof OWNER_SCOPES)[number];

/** The longest a token may live: a year (a key's rotation or revocation ends it sooner). */
export const MAX_OWNER_TOKEN_MS = 366 * 24 * 3600 * 1000;
/** How far ahead of the server's clock a token may say it was issued (clocks disagree a little). */
export const OWNER_CLOCK_SKEW_MS = 5 * 60 * 1000;

const Millis = v.pipe(v.number(), v.integer(), v.minValue(0));
export const OwnerClaims = v.strictObject({
  v: v.literal(1),
  /** The task-signing key that signed the token: one of the keyset's, valid and not revoked. */
  keyId: v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits')),
  scope: v.picklist(OWNER_SCOPES),
  issuedAt: Millis,
  expiresAt: Millis,
});
export type OwnerClaims = v.InferOutput<typeof OwnerClaims>;

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** Signs a token with a task-signing key. @throws RangeError for a lifetime that is not 1 ms to a year. */
export async function signOwnerToken(
  key: { keyId: string; secretKey: Uint8Array },
  options: { scope: OwnerScope; lifetimeMs: number; now?: number },
): Promise<string> {
  if (!(options.lifetimeMs > 0 && options.lifetimeMs <= MAX_OWNER_TOKEN_MS)) throw new RangeError(`a token lives from 1 ms to 366 days, not ${options.lifetimeMs} ms`);
  const issuedAt = Math.floor(options.now ?? Date.now());
  const claims: OwnerClaims = { v: 1, keyId: key.keyId, scope: options.scope, issuedAt, expiresAt: issuedAt + Math.floor(options.lifetimeMs) };
  const body = utf8(canonicalJson(claims));
  const signature = await ed.signAsync(utf8(OWNER_SIGNING_DOMAIN + canonicalJson(claims)), key.secretKey);
  return `${PREFIX}${base64url(body)}.${base64url(signature)}`;
}

export type OwnerVerdict = { ok: true; claims: OwnerClaims } | { ok: false; detail: string };

/**
 * Checks a token against the keyset's task-signing keys at `now`: its form, its key (known, valid,
 * not revoked), its signature, and its times. Never throws.
 */
export async function verifyOwnerToken(token: string, keys: ReadonlyMap<string, TaskKey>, now: number): Promise<OwnerVerdict> {
  const parts = token.startsWith(PREFIX) ? token.slice(PREFIX.length).split('.') : [];
  const body = parts.length === 2 ? fromBase64url(parts[0]!) : null;
  const signature = parts.length === 2 ? fromBase64url(parts[1]!) : null;
  if (!body || !signature) return { ok: false, detail: 'not an owner token (dgo1.<claims>.<signature>)' };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return { ok: false, detail: 'its claims are not JSON' };
  }
  const parsed = parse(OwnerClaims, json);
  if (!parsed.ok) return { ok: false, detail: `its claims are malformed: ${parsed.message}` };
  const claims = parsed.value;
  // The bytes signed are the canonical form: a token whose claims are not canonical was not made here.
  if (canonicalJson(claims) !== new TextDecoder().decode(body)) return { ok: false, detail: 'its claims are not in canonical form' };
  const key = keys.get(claims.keyId);
  if (!key) return { ok: false, detail: `key ${claims.keyId} is not a signing key of the project's keyset` };
  if (!(await verifyEd25519(signature, utf8(OWNER_SIGNING_DOMAIN + canonicalJson(claims)), key.publicKey))) {
    return { ok: false, detail: `its signature does not verify under key ${claims.keyId}` };
  }
  return checkOwnerClaims(claims, keys, now);
}

/**
 * What holds of a token's claims at `now`, once its signature has verified: its key is still in
 * the keyset, valid and not revoked, and the token is within its times.
 */
export function checkOwnerClaims(claims: OwnerClaims, keys: ReadonlyMap<string, TaskKey>, now: number): OwnerVerdict {
  const key = keys.get(claims.keyId);
  if (!key) return { ok: false, detail: `key ${claims.keyId} is not a signing key of the project's keyset` };
  const standing = keyStanding(key, now);
  if (!standing.ok) return { ok: false, detail: `key ${claims.keyId}: ${standing.detail}` };
  if (claims.expiresAt <= now) return { ok: false, detail: `it expired at ${new Date(claims.expiresAt).toISOString()}` };
  if (claims.issuedAt > now + OWNER_CLOCK_SKEW_MS) return { ok: false, detail: `it was issued in the future (${new Date(claims.issuedAt).toISOString()})` };
  if (claims.expiresAt - claims.issuedAt > MAX_OWNER_TOKEN_MS) return { ok: false, detail: 'it claims to live longer than a year' };
  return { ok: true, claims };
}

/** Whether a token of `held` scope allows what `needed` asks. */
export function scopeAllows(held: OwnerScope, needed: OwnerScope): boolean {
  return held === 'all' || needed === 'read';
}
