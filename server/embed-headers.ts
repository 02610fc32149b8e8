/**
 * The embed's exceptions to the page's headers (README, "On partner sites"). The page is
 * cross-origin isolated by COOP + COEP with same-origin CORP; the embed cannot be served so:
 * embed.js is a script partner pages load from their own origin (same-origin CORP would block
 * it), and the card's page lives in their iframes, where COOP means nothing and COEP would not
 * isolate it. The card isolates itself with Document-Isolation-Policy instead (Chromium 137+; it
 * works without isolation elsewhere), may be framed by any site, and keeps a strict CSP of its own.
 */
import { CONFIRM_PATH, FRAME_PATH } from '../src/embed/options.ts';

export const LOADER_PATH = '/embed.js';

/** The card's own policy: its scripts, styles and API calls from this origin only; framed by anyone. */
export const FRAME_CSP = [
  "default-src 'none'",
  // The client compiles task modules on the page (WebAssembly.compile).
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  'frame-ancestors *',
].join('; ');

/**
 * The confirmation window's policy (src/embed/confirmation.ts, confirm.tsx): its own scripts and styles, no
 * connections, and never framed, by anyone: a framed copy could be clickjacked like the card.
 */
export const CONFIRM_CSP = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join('; ');

/**
 * The headers for an embed URL, or null for every other one (which get the page's).
 * @param isolate whether to isolate the card (createServer's crossOriginIsolated option)
 */
export function embedHeaders(url: string, isolate: boolean): Record<string, string> | null {
  const path = url.split('?')[0];
  if (path === LOADER_PATH) return { 'cross-origin-resource-policy': 'cross-origin', 'x-content-type-options': 'nosniff' };
  if (path === FRAME_PATH) {
    return {
      'x-content-type-options': 'nosniff',
      'content-security-policy': FRAME_CSP,
      ...(isolate ? { 'document-isolation-policy': 'isolate-and-require-corp' } : {}),
    };
  }
  // No COOP: it would cut the window off from the card that opened it (the card is its opener).
  if (path === CONFIRM_PATH) return { 'x-content-type-options': 'nosniff', 'content-security-policy': CONFIRM_CSP, 'x-frame-options': 'DENY' };
  return null;
}
