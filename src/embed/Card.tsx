/**
 * The card inside the frame: what would run, before anything is fetched; then, once the person
 * agrees, the client itself (boot() and the controller, loaded only then) and its live counts.
 * Consent comes from nothing but a trusted click on its own button while the card is really
 * visible and still (visibility.ts), confirmed in a window of Dewgrid's own (confirmation.ts);
 * the frame listens to no message but that window's answer. Remembered consent starts the card
 * only once it is in view, and a withdrawal in any card of the partner site stops them all.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Client } from '../app/boot.ts';
import { useStatus } from '../app/hooks.ts';
import { publisherFingerprint, TRUST } from '../app/trust.ts';
import type { Controller, Status } from '../scheduler/controller.ts';
import { CONSENT_DAYS, type Consent } from './consent.ts';
import { askConfirmation, type ConfirmOutcome } from './confirmation.ts';
import type { FrameMessage } from './messages.ts';
import type { EmbedOptions } from './options.ts';
import { watchVisibility, type Refusal, type VisibilityWatch } from './visibility.ts';

type WithoutSource<M> = M extends FrameMessage ? Omit<M, 'source'> : never;
/** A message for the partner, without the `source` mark (frame.tsx adds it). */
export type Outgoing = WithoutSource<FrameMessage>;

export interface CardProps {
  partner: string;
  options: EmbedOptions;
  consent: Consent;
  post(message: Outgoing): void;
}

type Phase =
  | { kind: 'asking'; notice: string | null }
  /** A click is being judged (visibility.ts waits for the observer to catch up with it). */
  | { kind: 'checking' }
  /** The confirmation window is open. */
  | { kind: 'confirming'; window: Window }
  /** Consent is remembered: the card starts once it has been in view a moment. */
  | { kind: 'resuming' }
  | { kind: 'starting' }
  | { kind: 'computing'; controller: Controller }
  | { kind: 'failed'; message: string };

/** Why a click did not count, in the card. */
const REFUSED: Record<Refusal, string> = {
  'not-visible':
    'That click did not count: this card was not fully in view (covered, faded, or partly scrolled away) just before it. Nothing runs. With the whole card in view, press the button again.',
  moved: 'That click did not count: this card had just moved, or the pointer had just come onto it. Nothing runs. Rest the pointer on the card a moment, then press the button again.',
  zoomed: 'That click did not count: this card was shrunk, zoomed or resized just before it. Nothing runs. With the card at its usual size, press the button again.',
};

/** Said by every card of the site when the person withdrew in one of them. */
const WITHDRAWN_ELSEWHERE = 'Stopped: your consent was withdrawn in another Dewgrid card on this site, and is forgotten. Nothing more runs.';

/** What the confirmation window's outcome means, in the card (a yes starts it instead). */
const UNCONFIRMED: Record<Exclude<ConfirmOutcome, 'yes'>, string> = {
  no: 'You said no in the Dewgrid window: nothing runs.',
  closed: 'The Dewgrid window was closed without an answer: nothing runs.',
  blocked:
    'Your browser did not open the Dewgrid window this card confirms in (a pop-up blocker, or this site allows none). Nothing runs. Allow pop-ups for this site and press again, or lend idle time from the Dewgrid page itself.',
};

export function Card({ partner, options, consent, post }: CardProps) {
  const [phase, setPhase] = useState<Phase>({ kind: 'asking', notice: null });
  /** The phase now, for handlers set up once (a withdrawal heard from another card). */
  const current = useRef(phase);
  current.current = phase;
  /** The kind of phase now (after an await, it may have moved on). */
  const phaseNow = (): Phase['kind'] => current.current.kind;
  const card = useRef<HTMLElement>(null);
  const watch = useRef<VisibilityWatch | null>(null);
  /** Ends a wait for the card to come into view (remembered consent), if one is on. */
  const stopWaiting = useRef<(() => void) | null>(null);
  const client = useRef<Promise<Client> | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  /** Whether the last change came from the person (then focus follows it; never on load). */
  const byPerson = useRef(false);
  const partnerHost = new URL(partner).host;

  async function begin(): Promise<void> {
    setPhase({ kind: 'starting' });
    try {
      // The client is loaded only now: before consent, nothing but the card itself was fetched.
      client.current ??= import('../app/boot.ts').then(({ boot }) =>
        boot({ maxWorkers: 1, bounds: { maxCpu: options.maxCpu, whenHidden: 'pause' }, engines: ['wasi-preview1'] }),
      );
      const { controller } = await client.current;
      // Stopped, or withdrawn in another card of this site, while the client loaded: nothing starts.
      if (phaseNow() !== 'starting') return;
      if (!consent.given(Date.now())) {
        setPhase({ kind: 'asking', notice: WITHDRAWN_ELSEWHERE });
        return;
      }
      controller.start();
      post({ type: 'started' });
      setPhase({ kind: 'computing', controller });
    } catch (error) {
      client.current = null;
      setPhase({ kind: 'failed', message: (error as Error).message });
    }
  }

  async function agree(event: MouseEvent): Promise<void> {
    // A script's click() or dispatchEvent is never a person's (and only this origin's scripts could reach the button).
    if (!event.isTrusted || phase.kind !== 'asking' || !watch.current) return;
    byPerson.current = true;
    setPhase({ kind: 'checking' });
    const verdict = await watch.current.judge(event);
    if (phaseNow() !== 'checking') return; // stopped meanwhile (a withdrawal in another card)
    if (!verdict.ok) {
      setPhase({ kind: 'asking', notice: REFUSED[verdict.why] });
      return;
    }
    // No browser can prove the card visible (masks pass every check: visibility.ts), so the person
    // confirms in a window the partner cannot touch. Opened now, while the click still lets a page open one.
    const asked = askConfirmation({ partner, maxCpu: options.maxCpu });
    if (asked.window) setPhase({ kind: 'confirming', window: asked.window });
    const outcome = await asked.outcome;
    if (asked.window && phaseNow() !== 'confirming') return; // stopped meanwhile
    if (outcome !== 'yes') {
      setPhase({ kind: 'asking', notice: UNCONFIRMED[outcome] });
      return;
    }
    consent.give(Date.now());
    void begin();
  }

  /** Stops whatever this card does; `notice` says why. */
  function stop(notice: string): void {
    stopWaiting.current?.();
    stopWaiting.current = null;
    const now = current.current;
    if (now.kind === 'computing') {
      // Consent is gone: not even a result finished before it may reach the server now (it waits in the outbox).
      now.controller.stop({ deliver: false });
      post({ type: 'stopped' });
    }
    if (now.kind === 'confirming') now.window.close();
    setPhase({ kind: 'asking', notice });
  }

  function withdraw(): void {
    consent.withdraw();
    byPerson.current = true;
    stop('Stopped, and your consent is forgotten: nothing more runs.');
  }

  useEffect(() => {
    watch.current = watchVisibility(card.current!);
    const sizes = new ResizeObserver(() => post({ type: 'resize', height: Math.ceil(card.current!.getBoundingClientRect().height) }));
    sizes.observe(card.current!);
    // A card the person cannot see never starts: remembered consent waits until it has been in view a moment.
    if (consent.given(Date.now())) {
      setPhase({ kind: 'resuming' });
      stopWaiting.current = watch.current.whenVisible(() => {
        stopWaiting.current = null;
        if (consent.given(Date.now())) void begin();
        else setPhase({ kind: 'asking', notice: null });
      });
    }
    const unsubscribe = consent.onWithdrawnElsewhere(() => stop(WITHDRAWN_ELSEWHERE));
    return () => {
      unsubscribe();
      stopWaiting.current?.();
      watch.current?.disconnect();
      sizes.disconnect();
    };
  }, []);

  useEffect(() => {
    if (byPerson.current && phase.kind !== 'starting' && phase.kind !== 'checking') heading.current?.focus();
  }, [phase.kind]);

  useEffect(() => {
    if (phase.kind !== 'computing') return;
    let last = '';
    const report = (status: Status) => {
      const { done, running, failed } = status.counts;
      const state = status.activity.state;
      const key = `${done} ${running} ${failed} ${state}`;
      if (key === last) return;
      last = key;
      post({ type: 'progress', counts: { done, running, failed }, state });
    };
    report(phase.controller.status());
    return phase.controller.on('status', report);
  }, [phase]);

  return (
    <main class="card" ref={card}>
      {phase.kind === 'computing' ? (
        <Computing controller={phase.controller} remembered={consent.remembered ? partnerHost : null} heading={heading} onWithdraw={withdraw} />
      ) : phase.kind === 'failed' ? (
        <>
          <h1 tabIndex={-1} ref={heading}>Dewgrid could not start</h1>
          <p role="alert">{phase.message}</p>
          <p class="fine">
            Where a browser keeps no storage for embedded pages, the card cannot run;{' '}
            <a href={`${location.origin}/`} target="_blank" rel="noopener">the Dewgrid page</a> itself can.
          </p>
          <button type="button" class="withdraw" onClick={withdraw}>Forget my consent</button>
        </>
      ) : (
        <>
          <h1 tabIndex={-1} ref={heading}>Lend idle time to {TRUST.projectName}?</h1>
          <p>
            If you agree, this card fetches small programs signed by the project from {location.host} and runs them in the
            background, one at a time, on at most {Math.round(options.maxCpu * 100)}% of one processor core, pausing while this
            page is hidden. Their results go back to {location.host}. Nothing has been fetched or run yet.
          </p>
          <p class="key">
            Publisher key <code>{publisherFingerprint()}</code>
          </p>
          {phase.kind === 'resuming' ? (
            <>
              <p role="status">Your yes on {partnerHost} is remembered: this card starts once it is in view.</p>
              <button type="button" class="withdraw" onClick={withdraw}>Forget my consent</button>
            </>
          ) : (
            <button type="button" class="agree" onClick={agree} disabled={phase.kind !== 'asking'}>
              {phase.kind === 'starting' ? 'Starting\u2026' : 'Lend idle time'}
            </button>
          )}
          {phase.kind === 'confirming' && (
            <p role="status">
              Confirm in the Dewgrid window that opened.{' '}
              <button type="button" class="link" onClick={() => phase.window.focus()}>Show it</button>
            </p>
          )}
          {phase.kind === 'asking' && phase.notice && <p role="alert">{phase.notice}</p>}
          <p class="fine">
            {partnerHost} cannot press this button or see what runs. You confirm in a small window of Dewgrid{'\u2019'}s own, which{' '}
            {partnerHost} cannot change or cover.{' '}
            {consent.remembered ? `Your yes is then remembered on ${partnerHost} for ${CONSENT_DAYS} days; one click stops it.` : 'This browser keeps nothing for this card, so it will ask again next time.'}
          </p>
        </>
      )}
    </main>
  );
}

interface ComputingProps {
  controller: Controller;
  /** The partner's host when consent is remembered there, else null. */
  remembered: string | null;
  heading: { current: HTMLHeadingElement | null };
  onWithdraw(): void;
}

function Computing({ controller, remembered, heading, onWithdraw }: ComputingProps) {
  const status = useStatus(controller, true);
  const { done, running, queued } = status.counts;
  const reason = status.activity.reason;
  return (
    <>
      <h1 tabIndex={-1} ref={heading}>Computing for {TRUST.projectName}</h1>
      <dl class="counts">
        <div>
          <dt>Tasks done</dt>
          <dd>{done}</dd>
        </div>
        <div>
          <dt>Running</dt>
          <dd>{running}</dd>
        </div>
      </dl>
      <p class="state" role="status">
        {status.activity.state !== 'paused' && running + queued === 0 ? `Waiting for work from the project. ${reason}` : reason}
      </p>
      <button type="button" class="withdraw" onClick={onWithdraw}>Stop and forget my consent</button>
      <p class="fine">
        At most {Math.round(status.limits.cpu * 100)}% of one core, one task at a time.
        {remembered && ` Your yes is remembered on ${remembered} for ${CONSENT_DAYS} days from when you gave it.`}
      </p>
    </>
  );
}
