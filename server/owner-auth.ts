/**
 * The owner's routes (publishing, the batch list, statuses, results, events, cancelling, the
 * status page's detail) need the project owner's credential: an owner token (src/protocol/owner.ts)
 * signed by a task-signing key of the keyset this server holds. Devices have keys of their own,
 * never one of those, so no device can read results or publish.
 *
 * The check runs in `onRequest`, before Fastify reads a body: a request without the credential is
 * answered at once and its connection closed, so a stranger's 200 MiB body costs the server
 * nothing (docs/security.md).
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { checkOwnerClaims, scopeAllows, verifyOwnerToken, type OwnerClaims, type OwnerScope } from '../src/protocol/index.ts';
import { HttpError } from './errors.ts';
import type { Keysets } from './keyset.ts';

/** The cookie the status page keeps a link's token in (HttpOnly, SameSite=Strict; honoured on GET only). */
export const OWNER_COOKIE = 'dewgrid-owner';

declare module 'fastify' {
  interface FastifyRequest {
    /** The owner's token's claims, on a route that checked them. */
    owner?: OwnerClaims;
  }
}

/** Tokens whose signature verified lately: the signature is checked once, the key's standing and the times on every use. */
const VERIFIED_KEPT = 1000;

export interface OwnerAuth {
  /** An onRequest hook: the route needs a token of this scope. */
  require(scope: OwnerScope): onRequestAsyncHookHandler;
  /** The token's claims if the request carries a valid one of this scope, else null (for pages that show less to strangers). */
  optional(request: FastifyRequest, scope: OwnerScope): Promise<OwnerClaims | null>;
  /** Checks a token as the routes do. */
  check(token: string): Promise<{ ok: true; claims: OwnerClaims } | { ok: false; detail: string }>;
}

export function ownerAuth(keysets: Keysets, now: () => number): OwnerAuth {
  const verified = new Map<string, OwnerClaims>();

  async function check(token: string): Promise<{ ok: true; claims: OwnerClaims } | { ok: false; detail: string }> {
    const keys = await keysets.taskKeys();
    const known = verified.get(token);
    // A token seen before: its signature held, but its key may have been revoked or retired since, and it may have expired.
    if (known) return checkOwnerClaims(known, keys, now());
    const verdict = await verifyOwnerToken(token, keys, now());
    if (verdict.ok) {
      verified.set(token, verdict.claims);
      if (verified.size > VERIFIED_KEPT) verified.delete(verified.keys().next().value!);
    }
    return verdict;
  }

  function tokenOf(request: FastifyRequest): string | null {
    const header = request.headers.authorization;
    if (header) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      return match ? match[1]! : '';
    }
    // The cookie only on reads: a page on another site cannot make a browser cancel or publish with it.
    if (request.method !== 'GET' && request.method !== 'HEAD') return null;
    return cookie(request.headers.cookie, OWNER_COOKIE);
  }

  function refuse(reply: FastifyReply, status: 401 | 403, message: string): never {
    // The body (if any) is left unread: close the connection rather than read it to keep it alive.
    reply.header('connection', 'close');
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="dewgrid owner"');
    throw new HttpError(status, message);
  }

  return {
    check,
    require(scope) {
      return async (request, reply) => {
        const token = tokenOf(request);
        if (token === null) {
          refuse(reply, 401, `${request.method} ${request.url.split('?')[0]} is the project owner's: send Authorization: Bearer <owner token> (\`dewgrid token\` makes one; the CLI and the client library send one themselves)`);
        }
        if (token === '') refuse(reply, 401, 'the Authorization header must be "Bearer <owner token>"');
        const verdict = await check(token);
        if (!verdict.ok) refuse(reply, 401, `the owner token was refused: ${verdict.detail}`);
        if (!scopeAllows(verdict.claims.scope, scope)) refuse(reply, 403, `this owner token may only read (scope "${verdict.claims.scope}"); ${request.method} ${request.url.split('?')[0]} needs scope "all"`);
        request.owner = verdict.claims;
      };
    },
    async optional(request, scope) {
      const token = tokenOf(request);
      if (!token) return null;
      const verdict = await check(token);
      return verdict.ok && scopeAllows(verdict.claims.scope, scope) ? verdict.claims : null;
    },
  };
}

/** A cookie's value from a Cookie header, or null. */
export function cookie(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return null;
}
