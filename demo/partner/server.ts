/**
 * The demo partner site: a page on another origin than Dewgrid's (`npm start` serves it on
 * PORT+1), with a strict Content-Security-Policy, showing the snippet to copy and the card live,
 * and its own script logging the card's events (events-log.js). A plain node:http server: three files.
 */
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

export interface PartnerSite {
  url: string;
  close(): Promise<void>;
}

export interface PartnerSiteOptions {
  /** Where the card comes from, e.g. http://localhost:8787. */
  dewgridOrigin: string;
  /** The project the snippet names (data-project): the trust file's projectName. */
  projectName: string;
  /** data-max-cpu in the snippet, percent. */
  maxCpu?: number;
  port?: number;
  host?: string;
}

/** What the partner page allows: its own files, and from Dewgrid only the script and the frame. */
export function partnerCsp(dewgridOrigin: string): string {
  return `default-src 'none'; script-src 'self' ${dewgridOrigin}; frame-src ${dewgridOrigin}; style-src 'self'; base-uri 'none'; form-action 'none'`;
}

/** The script tag a partner pastes. */
export function embedSnippet(options: Pick<PartnerSiteOptions, 'dewgridOrigin' | 'projectName' | 'maxCpu'>): string {
  return `<script async src="${attribute(options.dewgridOrigin)}/embed.js" data-project="${attribute(options.projectName)}" data-position="inline" data-theme="auto" data-max-cpu="${options.maxCpu ?? 50}"></script>`;
}

const attribute = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
const html = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export async function startPartnerSite(options: PartnerSiteOptions): Promise<PartnerSite> {
  if (new URL(options.dewgridOrigin).origin !== options.dewgridOrigin) throw new Error(`dewgridOrigin must be an origin such as http://localhost:8787, got ${options.dewgridOrigin}`);
  const file = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
  const csp = partnerCsp(options.dewgridOrigin);
  const snippet = embedSnippet(options);
  const page = file('index.html')
    .replace('{{tag}}', () => snippet)
    .replace('{{snippet}}', () => html(snippet))
    .replace('{{csp}}', () => html(csp))
    .replaceAll('{{dewgrid}}', () => attribute(options.dewgridOrigin));
  const files: Record<string, [type: string, body: string]> = {
    '/': ['text/html; charset=utf-8', page],
    '/style.css': ['text/css; charset=utf-8', file('style.css')],
    '/events-log.js': ['text/javascript; charset=utf-8', file('events-log.js')],
  };
  const server = createServer((request, response) => {
    const found = files[(request.url ?? '/').split('?')[0]!];
    const headers = { 'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache' };
    if (!found || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    response.writeHead(200, { ...headers, 'content-type': found[0] }).end(request.method === 'HEAD' ? undefined : found[1]);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
