/**
 * The card's frame (embed/frame.html), on Dewgrid's origin inside a partner's page. Before
 * consent it shows what would run from what the build itself knows (the compiled-in trust) and
 * fetches nothing; see Card.tsx. It posts its events only to the partner origin it was embedded
 * by (frame-context.ts), and nothing the partner posts is read: its one message listener, while
 * a confirmation window is open, takes only that window's answer (confirmation.ts).
 */
import { render } from 'preact';
import { TRUST } from '../app/trust.ts';
import { Card } from './Card.tsx';
import { consentChannel, consentFor, frameStorage } from './consent.ts';
import { frameContext } from './frame-context.ts';
import { MESSAGE_SOURCE } from './messages.ts';
import './card.css';

const root = document.getElementById('card')!;
const context = frameContext(
  {
    search: location.search,
    embedded: window.parent !== window,
    ancestorOrigins: location.ancestorOrigins ? Array.from(location.ancestorOrigins) : null,
    referrer: document.referrer,
    projectName: TRUST.projectName,
  },
  (name, value, expected) => console.warn(`Dewgrid card: ${name}=${JSON.stringify(value)} in its address is not ${expected}; ignored.`),
);

if (context.ok) {
  const { partner, options } = context;
  document.documentElement.dataset.theme = options.theme;
  render(
    <Card
      partner={partner}
      options={options}
      consent={consentFor(partner, frameStorage(), { channel: consentChannel(partner), storageEvents: window })}
      post={(message) => window.parent.postMessage({ source: MESSAGE_SOURCE, ...message }, partner)}
    />,
    root,
  );
} else {
  render(
    <main class="card">
      <h1>Dewgrid</h1>
      <p role="alert">{context.problem}</p>
    </main>,
    root,
  );
}
document.documentElement.dataset.ready = 'true';
