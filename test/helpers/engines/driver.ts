/**
 * One small surface over what the three engines' automation has in common, so a donor journey is
 * written once and runs on Chromium (playwright-core, CDP), Firefox (puppeteer-core, WebDriver
 * BiDi) and WebKit (WebKitWebDriver, WebDriver classic): open a page, evaluate script, click for
 * real, wait for a condition, read the page's uncaught errors, go offline and back, reload, close.
 *
 * What one engine's automation has and the others lack (Chromium's CDP emulation of Compute
 * Pressure and battery, its install prompt) stays in the Chromium-only tests, through Playwright.
 */

export type EngineName = 'chromium' | 'firefox' | 'webkit';

export interface EngineOptions {
  /**
   * `ephemeral`: storage that lives as long as the session, as in private browsing (WebKit's
   * WebDriver sessions are like Safari's Private Browsing); `persistent`: a profile on disk, as a
   * donor's browser keeps. Each page gets a fresh one either way.
   */
  profile?: 'ephemeral' | 'persistent';
  /**
   * WebKit only: `JSC_useSharedArrayBuffer=1`, which gives WebKitGTK the SharedArrayBuffer that
   * Safari has on cross-origin isolated pages (WebKitGTK 2.50 has none by default).
   */
  sharedArrayBuffer?: boolean;
  /**
   * Chromium only: leave the Compute Pressure API on (test/helpers/browser.ts turns it off for
   * tests: the suite's own load would read as real pressure).
   */
  computePressure?: boolean;
}

/**
 * A target to click: a CSS selector, or the button whose text is `button` (the way a person finds
 * it, and the same locator in all three automation protocols: XPath).
 */
export type Target = string | { button: string };

/** What a waited-for value is once it is truthy. */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/** Script run in a page or frame: a function of one JSON argument, returning JSON (or a promise of it). */
export type PageFunction<A, R> = (arg: A) => R | Promise<R>;

/** What a page and a frame in it both offer. */
export interface Scope {
  /**
   * Runs `fn(arg)` in the page and returns its (awaited) result. `fn` travels as source text, so it
   * may use nothing from the test's scope but `arg`.
   */
  evaluate<A, R>(fn: PageFunction<A, R>, arg: A): Promise<R>;
  evaluate<R>(fn: PageFunction<undefined, R>): Promise<R>;
  /** Polls `fn(arg)` (awaited) until it is truthy, and returns that value. */
  waitFor<A, R>(fn: PageFunction<A, R>, arg: A, timeoutMs?: number): Promise<Truthy<R>>;
  /** Clicks `target` as a person would (real input events: `isTrusted`), once it is there and visible. */
  click(target: Target, timeoutMs?: number): Promise<void>;
  /** Brings the pointer onto `target` (real input events) and leaves it there, as a person reaching for it does. */
  hover(target: Target, timeoutMs?: number): Promise<void>;
}

export interface DonorPage extends Scope {
  goto(url: string): Promise<void>;
  reload(): Promise<void>;
  /** The page's uncaught errors and unhandled promise rejections so far, frames included. */
  errors(): string[];
  /**
   * The browser's own offline switch. Returns false where its automation has none (WebKitGTK):
   * a test then takes the network away by stopping the server, as the Chromium tests also do
   * (Chromium's offline mode does not cover requests a service worker passes through).
   */
  setOffline(offline: boolean): Promise<boolean>;
  /** The document of the iframe that `iframeSelector` finds, once it is there. */
  frame(iframeSelector: string): Promise<Scope>;
  /**
   * A window the page opened (window.open), once one whose address has the path `pathname` is
   * there: the embed card's confirmation window is one (src/embed/confirmation.ts).
   */
  openedWindow(pathname: string, timeoutMs?: number): Promise<OpenedWindow>;
  close(): Promise<void>;
}

/** A window a page opened: a scope of its own, until it closes. */
export interface OpenedWindow extends Scope {
  isClosed(): Promise<boolean>;
}

/** Polls `find` until it gives a value; the error names what was awaited. */
export async function pollFor<T>(find: () => Promise<T | undefined>, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not appear within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface Engine {
  readonly name: EngineName;
  /** Browser and version, and the session kind: for test names and benchmark reports. */
  readonly description: string;
  /** A page in a new session or context of its own: its own storage, no state from earlier pages. */
  newPage(): Promise<DonorPage>;
  close(): Promise<void>;
}

/** How long waits last by default: long, for a machine loaded by the rest of the suite. */
export const DEFAULT_WAIT_MS = 90_000;

/** Runs the function whose source is given on `arg` in a page or frame, and returns the (awaited) result. */
export type RunSource = (source: string, arg: unknown) => Promise<unknown>;

/** The expression that calls the function whose source is given; `__name` is tsx's helper for named functions, missing in the page. */
export function callExpression(source: string, arg: unknown): string {
  return `(() => { const __name = (f) => f; return (${source})(${arg === undefined ? '' : JSON.stringify(arg)}); })()`;
}

/** The XPath for a button by its text, or null for a CSS target. */
export function buttonXPath(target: Target): string | null {
  if (typeof target === 'string') return null;
  return `//button[normalize-space(.)=${JSON.stringify(target.button)}]`;
}

export function describeTarget(target: Target): string {
  return typeof target === 'string' ? target : `the "${target.button}" button`;
}

/** How long one poll of waitFor() may take before it counts as not yet. */
const POLL_SLICE_MS = 5000;

/**
 * waitFor() on top of an engine's means to run script. Each poll gives up after POLL_SLICE_MS, so a
 * promise that never settles (serviceWorker.ready with no worker registered) makes a wait that
 * fails naming its condition, not a test that hangs.
 */
export async function pollUntil<A, R>(run: RunSource, fn: PageFunction<A, R>, arg: A, timeoutMs = DEFAULT_WAIT_MS): Promise<Truthy<R>> {
  const sliced = `(arg) => Promise.race([Promise.resolve().then(() => (${fn.toString()})(arg)), new Promise((resolve) => setTimeout(() => resolve(null), ${POLL_SLICE_MS}))])`;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await run(sliced, arg);
    if (last) return last as Truthy<R>;
    if (Date.now() > deadline) throw new Error(`waitFor: still ${JSON.stringify(last)} after ${timeoutMs} ms: ${fn.toString().slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
