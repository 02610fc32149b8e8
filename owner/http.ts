/**
 * Requests to the task server as its project owner: each carries an owner token the library signs
 * itself with the project's signing key (short-lived, scope `all`, made again before it runs out),
 * and each answer is parsed with the protocol's schema for it, never cast.
 */
import * as v from 'valibot';
import { API, ServerInfoSchema, signOwnerToken, type ServerInfo } from '../src/protocol/index.ts';
import { BadAnswerError, NotADewgridServerError, ServerRefusedError, ServerUnreachableError } from './errors.ts';

/** A project's task-signing key: what signs its tasks and its owner tokens. */
export interface OwnerKey {
  keyId: string;
  secretKey: Uint8Array;
}

/** How long the library's own tokens live: long enough for any request, short enough to be worthless soon after. */
const TOKEN_LIFETIME_MS = 10 * 60_000;
/** A token with less than this left is made again. */
const TOKEN_MARGIN_MS = 2 * 60_000;
/** How long the server has to say what it is. */
const INFO_TIMEOUT_MS = 10_000;
/** Bodies are streamed in pieces this large when the upload's progress is wanted. */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

export interface RequestOptions<T> {
  body?: unknown;
  /** The answer's schema; null for an answer with no body to read (204). */
  schema: v.GenericSchema<unknown, T>;
  /** Told the bytes handed to the connection so far, and the total (streams the body). */
  onSent?: (sent: number, total: number) => void;
  /** Told the answer's bytes as they arrive, and its length when the server says it. */
  onReceived?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
  /** Send the owner's token (default); false for the few routes anyone may call (a keyset carries its root's signature). */
  owner?: boolean;
}

export class OwnerHttp {
  private token: { value: string; expiresAt: number } | null = null;

  constructor(
    /** The server's base URL, no trailing slash. */
    readonly server: string,
    private readonly key: OwnerKey,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** An owner token of scope `all`, made by this key, valid for a while yet. */
  async ownerToken(): Promise<string> {
    if (!this.token || this.token.expiresAt - Date.now() < TOKEN_MARGIN_MS) {
      const now = Date.now();
      this.token = { value: await signOwnerToken(this.key, { scope: 'all', lifetimeMs: TOKEN_LIFETIME_MS, now }), expiresAt: now + TOKEN_LIFETIME_MS };
    }
    return this.token.value;
  }

  /** Sends a request; the network's failure becomes ServerUnreachableError. */
  async send(path: string, init: RequestInit & { duplex?: 'half' }, owner = true): Promise<Response> {
    const headers = new Headers(init.headers);
    if (owner) headers.set('authorization', `Bearer ${await this.ownerToken()}`);
    try {
      return await this.fetchImpl(this.server + path, { ...init, headers });
    } catch (error) {
      if ((error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError') throw error;
      const cause = (error as Error & { cause?: Error & { code?: string } }).cause;
      throw new ServerUnreachableError(this.server, cause?.message ?? (error as Error).message);
    }
  }

  /**
   * What the server is. Asks nothing of the owner's credential, so it is the first thing to ask:
   * a down server or the wrong address is found before anything is signed.
   * @throws ServerUnreachableError, NotADewgridServerError
   */
  info(): Promise<ServerInfo> {
    return serverInfo(this.server, this.fetchImpl);
  }

  async request<T>(method: 'GET' | 'POST', path: string, options: RequestOptions<T>): Promise<T> {
    const init: RequestInit & { duplex?: 'half' } = { method, signal: options.signal };
    if (options.body !== undefined) {
      const text = JSON.stringify(options.body);
      init.headers = { 'content-type': 'application/json' };
      init.body = text;
      if (options.onSent) {
        const bytes = new TextEncoder().encode(text);
        const onSent = options.onSent;
        let sent = 0;
        // Pulled as the connection takes it (no queue ahead: highWaterMark 0), so `sent` follows the upload.
        init.body = new ReadableStream<Uint8Array>(
          {
            pull(controller) {
              if (sent >= bytes.length) return controller.close();
              const chunk = bytes.subarray(sent, sent + UPLOAD_CHUNK_BYTES);
              sent += chunk.length;
              onSent(sent, bytes.length);
              controller.enqueue(chunk);
            },
          },
          { highWaterMark: 0 },
        );
        init.headers = { 'content-type': 'application/json', 'content-length': String(bytes.length) };
        init.duplex = 'half'; // a streamed request body (Node's fetch requires saying so)
      }
    }
    const response = await this.send(path, init, options.owner !== false);
    const text = await readText(response, options.onReceived);
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const body = json as { error?: unknown; message?: unknown } | undefined;
      if (typeof body?.message === 'string') throw new ServerRefusedError(response.status, String(body.error ?? 'error'), `${response.status} ${body.message}`);
      throw new ServerRefusedError(response.status, 'error', `${method} ${path}: ${response.status} ${response.statusText}`);
    }
    if (json === undefined) throw new BadAnswerError(`${method} ${path}: the answer is not JSON (${response.headers.get('content-type') ?? 'no content type'})`, response.status);
    return parseAnswer(options.schema, json, `${method} ${path}`, response.status);
  }
}

/**
 * What the server at `server` is (`GET /api/info`, which needs no credential).
 * @throws ServerUnreachableError when nothing answers; NotADewgridServerError when something
 *   answers that is not a Dewgrid task server
 */
export async function serverInfo(server: string, fetchImpl: typeof fetch = fetch): Promise<ServerInfo> {
  let response: Response;
  try {
    response = await fetchImpl(server + API.info, { signal: AbortSignal.timeout(INFO_TIMEOUT_MS) });
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new ServerUnreachableError(server, `no answer in ${INFO_TIMEOUT_MS / 1000} s`);
    const cause = (error as Error & { cause?: Error }).cause;
    throw new ServerUnreachableError(server, cause?.message ?? (error as Error).message);
  }
  const type = (response.headers.get('content-type') ?? 'no content type').split(';')[0]!;
  const json = await response.json().catch(() => undefined);
  const parsed = response.ok ? v.safeParse(ServerInfoSchema, json) : null;
  if (!parsed?.success) throw new NotADewgridServerError(server, `${response.status} ${type}${response.ok ? ', not a Dewgrid server info' : ''}`);
  return parsed.output;
}

/** An answer checked against its schema. @throws BadAnswerError naming the first field that is wrong */
export function parseAnswer<T>(schema: v.GenericSchema<unknown, T>, json: unknown, what: string, status = 200): T {
  const parsed = v.safeParse(schema, json);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  throw new BadAnswerError(`${what}: the answer is not what the protocol says${path ? ` at ${path}` : ''}: ${issue.message}`, status);
}

async function readText(response: Response, onReceived?: (received: number, total: number | null) => void): Promise<string> {
  if (!onReceived || !response.body) return response.text();
  const length = Number(response.headers.get('content-length') ?? NaN);
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    received += chunk.length;
    onReceived(received, Number.isFinite(length) ? length : null);
  }
  const all = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(all);
}
