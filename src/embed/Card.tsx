/**
 * The card inside the frame: what would run, before anything is fetched; then, once the person
 * agrees, the client itself (boot() and the controller, loaded only then) and its live counts.
 * Consent comes from nothing but a trusted click on its own button while the card is really
 * visible (visibility.ts); no message can give it (the frame listens to none).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Client } from '../app/boot.ts';
import { useStatus } from '../app/hooks.ts';
import { publisherFingerprint, TRUST } from '../app/trust.ts';
import type { Controller, Status } from '../scheduler/controller.ts';
import { CONSENT_DAYS, type Consent } from './consent.ts';
import type { FrameMessage } from './messages.ts';
import type { EmbedOptions } from './options.ts';
import { canTrackVisibility, guardVisibility, type VisibilityGuard } from './visibility.ts';

type WithoutSource<M> = M extends FrameMessage ? Omit<M, 'source'> : never;
/** A message for the partner, without the `source` mark (frame.tsx adds it). */
export type Outgoing = WithoutSource<FrameMessage>;

export interface CardProps {
  partner: string;
  options: EmbedOptions;
  consent: Consent;
  post(message: Outgoing): void;
}

type Phase = { kind: 'asking'; notice: string | null } | { kind: 'starting' } | { kind: 'computing'; controller: Controller } | { kind: 'failed'; message: string };

const NOT_VISIBLE =
  'That click did not count: this card was not fully in view (covered, faded, or partly scrolled away) just before it. Nothing runs. With the whole card in view, press the button again.';

export function Card({ partner, options, consent, post }: CardProps) {
  const [phase, setPhase] = useState<Phase>({ kind: 'asking', notice: null });
  const card = useRef<HTMLElement>(null);
  const guard = useRef<VisibilityGuard | null>(null);
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
      controller.start();
      post({ type: 'started' });
      setPhase({ kind: 'computing', controller });
    } catch (error) {
      client.current = null;
      setPhase({ kind: 'failed', message: (error as Error).message });
    }
  }

  function agree(event: MouseEvent): void {
    // A script's click() or dispatchEvent is never a person's (and only this origin's scripts could reach the button).
    if (!event.isTrusted || phase.kind !== 'asking') return;
    if (!guard.current?.allows(performance.now())) {
      setPhase({ kind: 'asking', notice: NOT_VISIBLE });
      return;
    }
    consent.give(Date.now());
    byPerson.current = true;
    void begin();
  }

  function withdraw(): void {
    if (phase.kind === 'computing') {
      phase.controller.stop();
      post({ type: 'stopped' });
    }
    consent.withdraw();
    byPerson.current = true;
    setPhase({ kind: 'asking', notice: 'Stopped, and your consent is forgotten: nothing more runs.' });
  }

  useEffect(() => {
    guard.current = guardVisibility(card.current!);
    const sizes = new ResizeObserver(() => post({ type: 'resize', height: Math.ceil(card.current!.getBoundingClientRect().height) }));
    sizes.observe(card.current!);
    if (consent.given(Date.now())) void begin();
    return () => {
      guard.current?.disconnect();
      sizes.disconnect();
    };
  }, []);

  useEffect(() => {
    if (byPerson.current && phase.kind !== 'starting') heading.current?.focus();
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
          <button type="button" class="agree" onClick={agree} disabled={phase.kind === 'starting'}>
            {phase.kind === 'starting' ? 'Starting\u2026' : 'Lend idle time'}
          </button>
          {phase.kind === 'asking' && phase.notice && <p role="alert">{phase.notice}</p>}
          <p class="fine">
            {partnerHost} cannot press this button or see what runs.{' '}
            {consent.remembered ? `Your yes is remembered on ${partnerHost} for ${CONSENT_DAYS} days; one click stops it.` : 'This browser keeps nothing for this card, so it will ask again next time.'}
            {canTrackVisibility() && ' The button works only while the whole card is in view and uncovered.'}
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
