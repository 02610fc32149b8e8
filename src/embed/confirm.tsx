/**
 * The confirmation window (embed/confirm.html): a top-level page on Dewgrid's origin that a card
 * opens when a person presses its button (confirmation.ts). It says again what would run and on
 * which site, and its "Yes" works only once the window has been in front for CONFIRM_ARM_MS. It
 * answers the card that opened it and nothing else; opened any other way, it has nothing to confirm.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { publisherFingerprint, TRUST } from '../app/trust.ts';
import { CONSENT_DAYS } from './consent.ts';
import { CONFIRM_ARM_MS, CONFIRM_SOURCE, checkConfirmMessage, type ConfirmMessage } from './confirmation.ts';
import './card.css';

interface Request {
  partnerHost: string;
  maxCpu: number;
  nonce: string;
  /** The card that opened this window. */
  card: Window;
}

/** How long to wait for the card's welcome before saying there is nothing to confirm. */
const WELCOME_WAIT_MS = 5000;
const NOTHING = 'This window confirms what a Dewgrid card on a partner site asks, and no card asked: there is nothing to confirm.';

/**
 * The card's request, from the card itself: this window greets its opener, and only a card on
 * Dewgrid's origin that put this nonce in its address answers. What is wrong otherwise.
 */
function awaitRequest(): Promise<Request | string> {
  if (window.top !== window) return Promise.resolve('This window cannot be shown inside another page.');
  const card = window.opener as Window | null;
  const nonce = new URLSearchParams(location.search).get('nonce') ?? '';
  if (!card || !/^[0-9a-f]{32}$/.test(nonce)) return Promise.resolve(NOTHING);
  return new Promise((resolve) => {
    const onMessage = (event: MessageEvent) => {
      if (event.source !== card || event.origin !== location.origin) return;
      try {
        const message = checkConfirmMessage(event.data);
        if (message.kind !== 'welcome' || message.nonce !== nonce) return;
        done({ partnerHost: new URL(message.partner).host, maxCpu: message.maxCpu, nonce, card });
      } catch {
        // not the card's
      }
    };
    const timer = setTimeout(() => done(NOTHING), WELCOME_WAIT_MS);
    const done = (result: Request | string) => {
      clearTimeout(timer);
      removeEventListener('message', onMessage);
      resolve(result);
    };
    addEventListener('message', onMessage);
    const hello: ConfirmMessage = { source: CONFIRM_SOURCE, nonce, kind: 'hello' };
    // Delivered only if the opener is on Dewgrid's origin.
    card.postMessage(hello, location.origin);
  });
}

function Confirm({ request }: { request: Request }) {
  /** performance.now() since when this window has been in front (visible and focused), or null. */
  const [frontSince, setFrontSince] = useState<number | null>(null);
  const [armed, setArmed] = useState(false);
  const [answered, setAnswered] = useState<'yes' | 'no' | null>(null);

  useEffect(() => {
    const inFront = () => document.visibilityState === 'visible' && document.hasFocus();
    const check = () => setFrontSince((since) => (inFront() ? (since ?? performance.now()) : null));
    check();
    const events = ['focus', 'blur', 'visibilitychange'] as const;
    for (const type of events) (type === 'visibilitychange' ? document : window).addEventListener(type, check);
    return () => {
      for (const type of events) (type === 'visibilitychange' ? document : window).removeEventListener(type, check);
    };
  }, []);

  useEffect(() => {
    setArmed(false);
    if (frontSince === null) return;
    const timer = setTimeout(() => setArmed(true), Math.max(0, frontSince + CONFIRM_ARM_MS - performance.now()));
    return () => clearTimeout(timer);
  }, [frontSince]);

  const answer = (event: MouseEvent, value: 'yes' | 'no') => {
    // A script's click is never a person's; a "yes" counts only once the window has been in front a moment.
    if (!event.isTrusted || answered || (value === 'yes' && !armed)) return;
    const message: ConfirmMessage = { source: CONFIRM_SOURCE, nonce: request.nonce, kind: 'answer', answer: value };
    request.card.postMessage(message, location.origin);
    setAnswered(value);
    setTimeout(() => window.close(), 150);
  };

  if (answered) {
    return (
      <main class="card">
        <h1>{answered === 'yes' ? 'Thank you' : 'Nothing will run'}</h1>
        <p role="status">{answered === 'yes' ? `The card on ${request.partnerHost} starts now. You can close this window.` : 'You can close this window.'}</p>
      </main>
    );
  }
  return (
    <main class="card">
      <h1>
        Lend idle time to {TRUST.projectName} on {request.partnerHost}?
      </h1>
      <p>
        The Dewgrid card on {request.partnerHost} asks this. If you agree, it fetches small programs signed by the project from{' '}
        {location.host} and runs them in the background, one at a time, on at most {Math.round(request.maxCpu * 100)}% of one processor core,
        pausing while that page is hidden. Their results go back to {location.host}.
      </p>
      <p class="key">
        Publisher key <code>{publisherFingerprint()}</code>
      </p>
      <p>
        Your yes is remembered on {request.partnerHost} for {CONSENT_DAYS} days. The card{'\u2019'}s <strong>Stop and forget my consent</strong> ends it at
        once, in every Dewgrid card of that site.
      </p>
      <button type="button" class="agree" onClick={(event) => answer(event, 'yes')} disabled={!armed}>
        Yes, lend idle time
      </button>{' '}
      <button type="button" class="withdraw" onClick={(event) => answer(event, 'no')}>
        No
      </button>
      <p class="fine">
        This window is Dewgrid{'\u2019'}s own ({location.host}): {request.partnerHost} cannot change, cover or click it. {armed ? '' : 'Its button works once the window has been in front for a moment.'}
      </p>
    </main>
  );
}

const root = document.getElementById('confirm')!;
const problem = (text: string) => (
  <main class="card">
    <h1>Dewgrid</h1>
    <p role="alert">{text}</p>
  </main>
);
void awaitRequest().then((request) => {
  render(typeof request === 'string' ? problem(request) : <Confirm request={request} />, root);
  document.documentElement.dataset.ready = 'true';
});
