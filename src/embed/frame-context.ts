/**
 * Who embedded the card and with which options. The frame's URL says (the loader writes it), but
 * anyone can put any URL in an iframe, so the partner origin is checked against what the browser
 * knows: location.ancestorOrigins where it has it (Chromium, Safari), else the referrer (the
 * loader asks for one). The frame posts only to that origin, and keeps consent under it.
 */
import { readEmbedOptions, type EmbedOptions, type OptionName } from './options.ts';

export type FrameContext = { ok: true; partner: string; options: EmbedOptions } | { ok: false; problem: string };

export interface FrameSurroundings {
  /** The frame's location.search. */
  search: string;
  /** Whether the frame has a parent at all (window.parent !== window). */
  embedded: boolean;
  /** location.ancestorOrigins, nearest first, or null where the browser has none. */
  ancestorOrigins: readonly string[] | null;
  /** document.referrer ('' when the embedder sent none). */
  referrer: string;
  /** The project this build trusts (TRUST.projectName). */
  projectName: string;
}

export function frameContext(at: FrameSurroundings, invalid: (name: OptionName, value: string, expected: string) => void): FrameContext {
  if (!at.embedded) return { ok: false, problem: 'This card works only inside a partner site\u2019s page, added there by its embed.js script.' };
  const params = new URLSearchParams(at.search);
  const partner = params.get('partner') ?? '';
  if (!isOrigin(partner)) return { ok: false, problem: `The card\u2019s address names no valid partner origin (partner=${JSON.stringify(partner)}), so it would not know whom to tell anything.` };
  const actual = at.ancestorOrigins ? (at.ancestorOrigins[0] ?? '') : originOf(at.referrer);
  if (actual && actual !== partner) return { ok: false, problem: `The card\u2019s address says it is on ${partner}, but it is on ${actual}.` };
  const options = readEmbedOptions((name) => params.get(name), invalid);
  if (options.project !== null && options.project !== at.projectName) {
    return { ok: false, problem: `This card was set up for \u201c${options.project}\u201d, but this Dewgrid server runs \u201c${at.projectName}\u201d: nothing can run here.` };
  }
  return { ok: true, partner, options };
}

/** A serialized origin such as https://example.org or http://localhost:8788, and nothing more. */
function isOrigin(value: string): boolean {
  return value !== '' && value !== 'null' && originOf(value) === value;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
}
