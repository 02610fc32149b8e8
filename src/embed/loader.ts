/**
 * embed.js, the script partner sites include (README, "On partner sites"). It only adds the
 * card: an iframe from Dewgrid's own origin, so the partner's scripts can neither press its button
 * nor read its state. It fetches nothing itself and imports nothing of the app (it is built into
 * one small classic script, vite.config.ts). It styles the iframe through the CSSOM only, which a
 * strict Content-Security-Policy on the partner page allows (style attributes and <style> it would not).
 */
import { frameUrl, readEmbedOptions, type EmbedOptions } from './options.ts';
import { checkFrameMessage } from './messages.ts';

const PREFIX = 'Dewgrid embed.js:';
/** Until the card says how tall it is. */
const INITIAL_HEIGHT_PX = 260;

const script = document.currentScript;
if (!(script instanceof HTMLScriptElement) || !script.src) {
  console.warn(`${PREFIX} it must be loaded by its own <script src=".../embed.js"> tag, not bundled or inlined; no card added.`);
} else if (location.origin === 'null') {
  console.warn(`${PREFIX} this page has no origin (sandboxed, or a file): the card could not tell who embeds it; no card added.`);
} else {
  const warn = (name: string, value: string, expected: string) => console.warn(`${PREFIX} data-${name}="${value}" is not ${expected}; ignored.`);
  addCard(script, readEmbedOptions((name) => script.getAttribute(`data-${name}`), warn));
}

function addCard(script: HTMLScriptElement, options: EmbedOptions): void {
  if (options.project === null) console.warn(`${PREFIX} no data-project: the card will name the project this Dewgrid server runs, whatever it is.`);
  const dewgrid = new URL(script.src).origin;
  const frame = document.createElement('iframe');
  frame.src = frameUrl(dewgrid, location.origin, options);
  frame.title = 'Dewgrid: lend this device\u2019s idle time';
  // The heat policy reads the Compute Pressure API, which a cross-origin frame gets only if allowed.
  frame.allow = 'compute-pressure';
  // The frame checks who embeds it against its referrer where the browser lacks location.ancestorOrigins.
  frame.referrerPolicy = 'origin';
  const style = frame.style;
  style.display = 'block';
  style.border = '0';
  style.width = '100%';
  style.maxWidth = '22rem';
  style.height = `${INITIAL_HEIGHT_PX}px`;
  // Matching the card's scheme keeps the iframe transparent around its rounded corners.
  style.colorScheme = options.theme === 'auto' ? 'light dark' : options.theme;
  if (options.position !== 'inline') {
    style.position = 'fixed';
    style.bottom = '1rem';
    style[options.position === 'bottom-left' ? 'left' : 'right'] = '1rem';
    style.width = '22rem';
    style.maxWidth = 'calc(100vw - 2rem)';
    // On top: a card covered by the page's own content would refuse clicks (clickjacking guard).
    style.zIndex = '2147483647';
  }

  addEventListener('message', (event) => {
    // Only the card itself: right origin, and this very iframe (another Dewgrid frame has the same origin).
    if (event.origin !== dewgrid || event.source !== frame.contentWindow) return;
    try {
      const message = checkFrameMessage(event.data);
      if (message.type === 'resize') style.height = `${message.height}px`;
    } catch (error) {
      console.warn(`${PREFIX} ${(error as Error).message}`);
    }
  });

  // Inline: where the tag is, unless it is in <head> (or gone); otherwise at the end of the body once there is one.
  const inline = options.position === 'inline' && script.parentElement !== null && script.parentElement !== document.head;
  const place = () => (inline ? script.after(frame) : document.body.append(frame));
  if (document.body) place();
  else document.addEventListener('DOMContentLoaded', place, { once: true });
}
