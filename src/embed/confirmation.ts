/**
 * The clickjacking guard's second half (docs/security.md, "Clickjacking"): consent given in the
 * card is confirmed in a window of its own on Dewgrid's origin (embed/confirm.html, confirm.tsx),
 * opened by the card with window.open. It is a top-level page: the partner cannot style, mask,
 * cover, move or script it, and it may not be framed (frame-ancestors 'none'). Its button works
 * only after the window has been in front for CONFIRM_ARM_MS, so a click meant for the partner's
 * page (a double click, a click repeated in a game) cannot land on it.
 *
 * The window answers its opener, and only it: postMessage to Dewgrid's origin with the nonce the
 * card put in its address. The card takes messages only from that very window (event.source),
 * from its own origin, with that nonce; it listens to nothing else. (The card and the window are
 * same-origin but cannot script each other: the card's Document-Isolation-Policy puts it in an
 * agent cluster of its own. Messages are all they have.)
 */

import { CONFIRM_PATH } from './options.ts';

/** How long the confirmation window must have been in front before its button counts. */
export const CONFIRM_ARM_MS = 1000;
/** Marks the window's answers among whatever else a card could receive. */
export const CONFIRM_SOURCE = 'dewgrid-confirm';

/**
 * What the window and the card say to each other, each to the other alone (postMessage to
 * Dewgrid's origin, taken only from the expected window, with the nonce): the window greets its
 * opener, the card answers with what to show (so nothing the window shows comes from its
 * forgeable address), and the window gives the person's answer.
 */
export type ConfirmMessage =
  | { source: typeof CONFIRM_SOURCE; nonce: string; kind: 'hello' }
  | { source: typeof CONFIRM_SOURCE; nonce: string; kind: 'welcome'; partner: string; maxCpu: number }
  | { source: typeof CONFIRM_SOURCE; nonce: string; kind: 'answer'; answer: 'yes' | 'no' };

/** What came of asking: yes or no in the window; closed unanswered; or no window could be opened. */
export type ConfirmOutcome = 'yes' | 'no' | 'closed' | 'blocked';

/**
 * The message, rebuilt from its known fields.
 * @throws TypeError naming what is wrong, for anything that is not a ConfirmMessage
 */
export function checkConfirmMessage(data: unknown): ConfirmMessage {
  const bad = (problem: string) => new TypeError(`not a Dewgrid confirmation message: ${problem}`);
  if (typeof data !== 'object' || data === null) throw bad(`${data === null ? 'null' : typeof data}, not an object`);
  const { source, nonce, kind, answer, partner, maxCpu } = data as Record<string, unknown>;
  if (source !== CONFIRM_SOURCE) throw bad(`source is ${JSON.stringify(source)}, not "${CONFIRM_SOURCE}"`);
  if (typeof nonce !== 'string' || !NONCE.test(nonce)) throw bad('nonce is not 32 hex digits');
  switch (kind) {
    case 'hello':
      return { source, nonce, kind };
    case 'welcome':
      if (typeof partner !== 'string' || !URL.canParse(partner) || new URL(partner).origin !== partner) throw bad(`partner is ${JSON.stringify(partner)}, not an origin`);
      if (typeof maxCpu !== 'number' || !(maxCpu >= 0.1 && maxCpu <= 1)) throw bad(`maxCpu is ${JSON.stringify(maxCpu)}, not from 0.1 to 1`);
      return { source, nonce, kind, partner, maxCpu };
    case 'answer':
      if (answer !== 'yes' && answer !== 'no') throw bad(`answer is ${JSON.stringify(answer)}, not "yes" or "no"`);
      return { source, nonce, kind, answer };
    default:
      throw bad(`unknown kind ${JSON.stringify(kind)}`);
  }
}

const NONCE = /^[0-9a-f]{32}$/;

/** The window's address: the nonce only; what it shows comes from the card (welcome). */
export function confirmUrl(dewgridOrigin: string, nonce: string): string {
  const url = new URL(CONFIRM_PATH, dewgridOrigin);
  url.searchParams.set('nonce', nonce);
  return url.href;
}

export function newNonce(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** What the card asks the window to show. */
export interface ConfirmRequest {
  /** The partner origin the card checked (frame-context.ts). */
  partner: string;
  /** The partner's CPU cap, 0.1 to 1. */
  maxCpu: number;
}

/**
 * Opens the confirmation window and resolves with its outcome. Must run while the click that led
 * here still counts as a user activation (browsers open windows only then).
 */
export function askConfirmation(request: ConfirmRequest): { outcome: Promise<ConfirmOutcome>; window: Window | null } {
  const nonce = newNonce();
  // A popup of its own (not a tab), so it shows over the page; no name, so nothing else can find it.
  const opened = window.open(confirmUrl(location.origin, nonce), '_blank', 'popup,width=460,height=620');
  // Null when refused (a pop-up blocker, an iframe sandboxed without allow-popups); closed at once
  // when the partner's Cross-Origin-Opener-Policy cut the window off from the card.
  if (!opened || opened.closed) return { outcome: Promise.resolve('blocked'), window: null };
  const outcome = new Promise<ConfirmOutcome>((resolve) => {
    let finished = false;
    const finish = (result: ConfirmOutcome) => {
      if (finished) return;
      finished = true;
      removeEventListener('message', onMessage);
      clearInterval(poll);
      resolve(result);
    };
    const onMessage = (event: MessageEvent) => {
      if (event.source !== opened || event.origin !== location.origin) return;
      let message: ConfirmMessage;
      try {
        message = checkConfirmMessage(event.data);
      } catch {
        return; // not the window's
      }
      if (message.nonce !== nonce) return;
      if (message.kind === 'hello') {
        const welcome: ConfirmMessage = { source: CONFIRM_SOURCE, nonce, kind: 'welcome', partner: request.partner, maxCpu: request.maxCpu };
        opened.postMessage(welcome, location.origin);
      } else if (message.kind === 'answer') {
        finish(message.answer);
      }
    };
    addEventListener('message', onMessage);
    // Closed: an answer posted just before closing may still be on its way, so give it a moment.
    const poll = setInterval(() => opened.closed && setTimeout(() => finish('closed'), 100), 250);
  });
  return { outcome, window: opened };
}
