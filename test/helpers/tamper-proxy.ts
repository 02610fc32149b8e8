/**
 * A man in the middle between a donor page and its task server (a compromised mirror, CDN or
 * network): it forwards every request and lets a test rewrite what comes back. The page is
 * opened at the proxy's URL, so all it fetches passes through here.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Exchange {
  method: string;
  path: string;
  requestBody: Buffer;
  /** The upstream's status; a tamper may change it (say, a 304 into a 200 with a stale body). */
  status: number;
  /** Set by a tamper that sends a body the upstream did not (its headers would not fit). */
  contentType?: string;
  body: Buffer;
}

/** Rewrites a response; return the body to send (same or changed). */
export type Tamper = (exchange: Exchange) => Buffer | Promise<Buffer>;

/** How fast to send a response's body, bytes a second (a slow link), or null for at once. */
export type Throttle = (exchange: Exchange) => number | null;

const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'host']);

export class TamperProxy {
  /** Every exchange that passed, in order. */
  readonly log: Exchange[] = [];
  /** Consulted for each response, in order; each sees the body the previous one returned. */
  readonly tampers: Tamper[] = [];
  /** The first that names a rate sends the response's body at that rate. */
  readonly throttles: Throttle[] = [];
  private readonly server = createServer((request, response) => void this.forward(request, response));

  private constructor(private readonly upstream: string) {}

  static async start(upstream: string): Promise<TamperProxy> {
    const proxy = new TamperProxy(upstream.replace(/\/$/, ''));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async forward(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const requestBody = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) if (!HOP_HEADERS.has(name) && typeof value === 'string') headers[name] = value;
    try {
      const upstream = await fetch(this.upstream + request.url, {
        method: request.method,
        headers,
        body: request.method === 'GET' || request.method === 'HEAD' ? undefined : requestBody,
        redirect: 'manual',
      });
      const exchange: Exchange = { method: request.method ?? 'GET', path: request.url ?? '/', requestBody, status: upstream.status, body: Buffer.from(await upstream.arrayBuffer()) };
      for (const tamper of this.tampers) exchange.body = await tamper(exchange);
      this.log.push(exchange);
      upstream.headers.forEach((value, name) => {
        if (!HOP_HEADERS.has(name)) response.setHeader(name, value);
      });
      if (exchange.contentType) {
        response.setHeader('content-type', exchange.contentType);
        response.removeHeader('etag');
      }
      response.statusCode = exchange.status;
      const rate = this.throttles.map((throttle) => throttle(exchange)).find((r) => r !== null);
      if (!rate) return void response.end(exchange.body);
      // A slow link: 64 KiB at a time, as fast as `rate` allows.
      response.setHeader('content-length', exchange.body.length);
      const chunk = 64 * 1024;
      for (let at = 0; at < exchange.body.length && !response.destroyed; at += chunk) {
        response.write(exchange.body.subarray(at, at + chunk));
        await new Promise((resolve) => setTimeout(resolve, (chunk / rate) * 1000));
      }
      response.end();
    } catch (error) {
      response.statusCode = 502;
      response.end(`proxy: ${(error as Error).message}`);
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
