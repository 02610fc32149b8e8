/**
 * (h) What a visitor downloads before anything happens, gzipped (zlib.gzipSync at its default level, 6), from a
 * production build trusting the test keys:
 *  - the embed loader a partner page includes (embed.js; target: under 4 KB);
 *  - the card's JavaScript before consent: what embed/frame.html loads (its module script and
 *    modulepreloads); the client itself comes only after the click;
 *  - the main page's initial JavaScript: what index.html loads before anything else (its module
 *    script and modulepreloads), each file gzipped on its own as a server would send it.
 * Bytes, not time: the same on every machine for the same source and dependencies.
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildClient } from '../test/helpers/build.ts';

export interface Weight {
  files: string[];
  bytes: number;
  gzipBytes: number;
}

export interface PageWeightReport {
  loader: Weight;
  cardBeforeConsent: Weight;
  pageInitial: Weight;
}

/** The JavaScript an HTML page loads at once: `<script type="module" src>` and `<link rel="modulepreload" href>`. */
export function initialScripts(html: string): string[] {
  const tags = html.match(/<(script|link)\b[^>]*>/g) ?? [];
  return tags.flatMap((tag) => {
    const isScript = tag.startsWith('<script') && /\bsrc="/.test(tag);
    const isPreload = tag.startsWith('<link') && /\brel="modulepreload"/.test(tag);
    const url = /\b(?:src|href)="([^"]+)"/.exec(tag)?.[1];
    return (isScript || isPreload) && url ? [url] : [];
  });
}

function weigh(dist: string, files: string[]): Weight {
  let bytes = 0;
  let gzipBytes = 0;
  for (const file of files) {
    const body = readFileSync(join(dist, file));
    bytes += body.length;
    gzipBytes += gzipSync(body).length;
  }
  return { files, bytes, gzipBytes };
}

export async function benchPageWeight(): Promise<PageWeightReport> {
  const dist = join(tmpdir(), 'dewgrid-bench-weight-dist');
  await buildClient(dist);
  try {
    const scriptsOf = (page: string) => initialScripts(readFileSync(join(dist, page), 'utf8'));
    return {
      loader: weigh(dist, ['embed.js']),
      cardBeforeConsent: weigh(dist, scriptsOf('embed/frame.html')),
      pageInitial: weigh(dist, scriptsOf('index.html')),
    };
  } finally {
    rmSync(dist, { recursive: true, force: true });
  }
}

export function printPageWeight(r: PageWeightReport): void {
  const kb = (n: number) => `${(n / 1024).toFixed(2)} KiB`;
  console.log('\n(h) JavaScript loaded before anything happens, gzipped (zlib default level), per file then summed');
  for (const [name, w] of [
    ['embed.js (partner page)', r.loader],
    ['card before consent', r.cardBeforeConsent],
    ['main page, initial', r.pageInitial],
  ] as const) {
    console.log(`    ${name.padEnd(24)} ${String(w.gzipBytes).padStart(6)} B gzipped (${kb(w.gzipBytes)}), ${w.bytes} B raw, ${w.files.length} file${w.files.length === 1 ? '' : 's'}`);
  }
}
