/**
 * The driver surface (driver.ts) over WebKitGTK, through Debian's WebKitWebDriver (WebDriver
 * classic, spoken here over fetch: a dozen commands) under an Xvfb this module starts.
 *
 * The browser WebKitWebDriver launches is webkit-browser.py, beside this file: the engine Debian's
 * MiniBrowser runs (libwebkit2gtk-4.1, through gir1.2-webkit2-4.1), set up as MiniBrowser sets
 * itself up for automation, with two things MiniBrowser cannot do under automation: report the
 * page's uncaught errors (WebDriver classic has no log, and WebKit writes no console output for an
 * ephemeral session), and keep a profile on disk (MiniBrowser's automation sessions are always
 * ephemeral).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buttonXPath, callExpression, DEFAULT_WAIT_MS, describeTarget, pollFor, pollUntil, type DonorPage, type Engine, type EngineOptions, type PageFunction, type Scope, type Target } from './driver.ts';
import { freePort, spawnGroup, type GroupProcess } from './processes.ts';

const BROWSER = fileURLToPath(new URL('./webkit-browser.py', import.meta.url));
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
/** How webkit-browser.py reports a page's uncaught error on its stderr: this, then a JSON string. */
const ERROR_LINE = 'DEWGRID PAGE ERROR ';

export function findWebKitWebDriver(): string | null {
  const fromEnv = process.env.WEBKIT_WEBDRIVER_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  return ['/usr/bin/WebKitWebDriver'].find((p) => existsSync(p)) ?? null;
}

/** What is missing for WebKit tests, in Debian package names (empty when nothing is). */
export function missingWebKitPackages(): string[] {
  const missing: string[] = [];
  if (!findWebKitWebDriver()) missing.push('webkit2gtk-driver');
  if (!existsSync('/usr/bin/Xvfb')) missing.push('xvfb');
  const gi = spawnSync('/usr/bin/python3', ['-c', "import gi; gi.require_version('WebKit2', '4.1'); gi.require_version('Gtk', '3.0'); from gi.repository import WebKit2, Gtk"], { stdio: 'ignore' });
  if (gi.status !== 0) missing.push('python3-gi', 'gir1.2-webkit2-4.1');
  return missing;
}

type ElementRef = { [ELEMENT]: string };

class WebDriverError extends Error {
  constructor(
    readonly error: string,
    message: string,
  ) {
    super(`${error}: ${message}`);
  }
}

/** One WebDriver session, its commands run one at a time (frame switching is session state). */
class Session {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly base: string,
    readonly id: string,
  ) {}

  static async create(base: string, capabilities: Record<string, unknown>): Promise<{ session: Session; capabilities: Record<string, unknown> }> {
    const value = (await command(base, 'POST', '/session', { capabilities: { alwaysMatch: capabilities } })) as { sessionId: string; capabilities: Record<string, unknown> };
    return { session: new Session(base, value.sessionId), capabilities: value.capabilities };
  }

  /** Runs `work` alone on this session. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  command(method: string, path: string, body?: unknown): Promise<unknown> {
    return command(this.base, method, `/session/${this.id}${path}`, body);
  }

  async evaluate(expression: string): Promise<unknown> {
    const script = `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => ${expression}).then(
        (value) => done({ value: value === undefined ? null : value }),
        (error) => done({ error: error instanceof Error ? error.name + ': ' + error.message : String(error) }));`;
    const outcome = (await this.command('POST', '/execute/async', { script, args: [] })) as { value?: unknown; error?: string } | null;
    if (outcome?.error !== undefined) throw new Error(`evaluate: ${outcome.error}`);
    return outcome?.value;
  }

  /** The element `target` finds, once it is there and displayed. */
  async find(target: Target, timeoutMs: number): Promise<ElementRef> {
    const xpath = buttonXPath(target);
    const query = xpath ? { using: 'xpath', value: xpath } : { using: 'css selector', value: target as string };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const element = (await this.command('POST', '/element', query)) as ElementRef;
        if ((await this.command('GET', `/element/${element[ELEMENT]}/displayed`)) === true) return element;
      } catch (error) {
        if (!(error instanceof WebDriverError) || !['no such element', 'stale element reference'].includes(error.error)) throw error;
      }
      if (Date.now() > deadline) throw new Error(`click: ${describeTarget(target)} did not appear within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function command(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(2 * DEFAULT_WAIT_MS),
  });
  const json = (await response.json()) as { value: unknown };
  if (!response.ok) {
    const { error, message } = json.value as { error: string; message: string };
    throw new WebDriverError(error, `${message} (${method} ${path})`);
  }
  return json.value;
}

/**
 * Runs `work` in `session`: in the window `windowHandle` when given (a window the page opened),
 * in the frame `iframeSelector` finds when given, then back in the page's own window, at the top.
 */
function scopeOf(session: Session, iframeSelector: string | null, windowHandle?: string): Scope {
  const inWindow = <T>(work: () => Promise<T>) =>
    session.exclusive(async () => {
      if (!windowHandle) return work();
      const own = (await session.command('GET', '/window')) as string;
      await session.command('POST', '/window', { handle: windowHandle });
      try {
        return await work();
      } finally {
        await session.command('POST', '/window', { handle: own });
      }
    });
  const inScope = <T>(work: () => Promise<T>) =>
    inWindow(async () => {
      if (!iframeSelector) return work();
      const iframe = await session.find(iframeSelector, DEFAULT_WAIT_MS);
      await session.command('POST', '/frame', { id: iframe });
      try {
        return await work();
      } finally {
        await session.command('POST', '/frame', { id: null });
      }
    });
  const run = (source: string, arg: unknown) => inScope(() => session.evaluate(callExpression(source, arg)));
  return {
    evaluate: <A, R>(fn: PageFunction<A, R>, arg?: A) => run(fn.toString(), arg) as Promise<R>,
    waitFor: (fn, arg, timeoutMs) => pollUntil(run, fn, arg, timeoutMs),
    click: (target, timeoutMs = DEFAULT_WAIT_MS) =>
      inScope(async () => {
        const element = await session.find(target, timeoutMs);
        await session.command('POST', `/element/${element[ELEMENT]}/click`, {});
      }),
    hover: (target, timeoutMs = DEFAULT_WAIT_MS) =>
      inScope(async () => {
        const element = await session.find(target, timeoutMs);
        // WebDriver's actions: a mouse moved to the element's centre, where an element click later presses.
        const actions = [{ type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' }, actions: [{ type: 'pointerMove', duration: 0, origin: element, x: 0, y: 0 }] }];
        await session.command('POST', '/actions', { actions });
      }),
  };
}

/** An Xvfb on a display it picks itself (-displayfd: no race for a free display number). */
async function startXvfb(): Promise<{ display: string; process: GroupProcess }> {
  const xvfb = spawnGroup('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  xvfb.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const display = await new Promise<string>((resolve, reject) => {
    xvfb.child.stdio[3]!.on('data', (d: Buffer) => resolve(d.toString().trim()));
    xvfb.child.once('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${stderr.slice(-500)}`)));
    setTimeout(() => reject(new Error(`Xvfb gave no display within 30 s: ${stderr.slice(-500)}`)), 30_000);
  });
  return { display: `:${display}`, process: xvfb };
}

/**
 * One Xvfb and one WebKitWebDriver for the engine's life; each page is a WebDriver session of its
 * own (a new browser process with fresh storage): `ephemeral`, as MiniBrowser's automation
 * sessions and Safari's Private Browsing are, or `persistent`, on a profile folder of its own.
 */
export async function launchWebKitEngine(options: EngineOptions): Promise<Engine> {
  const missing = missingWebKitPackages();
  if (missing.length) throw new Error(`WebKit tests need Debian's ${missing.join(', ')}: apt-get install ${missing.join(' ')}`);
  const xvfb = await startXvfb();
  const port = await freePort();
  const env = { ...process.env, DISPLAY: xvfb.display, ...(options.sharedArrayBuffer ? { JSC_useSharedArrayBuffer: '1' } : {}) };
  const driver = spawnGroup(findWebKitWebDriver()!, [`--port=${port}`, '--host=local'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const base = `http://127.0.0.1:${port}`;
  /** The current page's uncaught errors, from the browser's console output. */
  let errors: string[] = [];
  let partial = '';
  driver.child.stderr!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.startsWith(ERROR_LINE)) errors.push(JSON.parse(line.slice(ERROR_LINE.length)) as string);
  });
  driver.child.stdout!.resume();
  const stop = async () => {
    await driver.stop();
    await xvfb.process.stop();
  };
  try {
    await waitForDriver(base);
  } catch (error) {
    await stop();
    throw error;
  }
  const persistent = options.profile === 'persistent';
  let version = '';
  return {
    name: 'webkit',
    get description() {
      return `WebKitGTK ${version} (${persistent ? 'persistent profile' : 'ephemeral session'}${options.sharedArrayBuffer ? ', JSC_useSharedArrayBuffer=1' : ''})`.replace('  ', ' ');
    },
    async newPage(): Promise<DonorPage> {
      const profile = persistent ? mkdtempSync(join(tmpdir(), 'dewgrid-webkit-profile-')) : null;
      const args = ['--automation', profile ? `--profile=${profile}` : '--ephemeral'];
      const { session, capabilities } = await Session.create(base, {
        'webkitgtk:browserOptions': { binary: BROWSER, args },
        timeouts: { script: 2 * DEFAULT_WAIT_MS, pageLoad: DEFAULT_WAIT_MS, implicit: 0 },
      });
      version = String(capabilities.browserVersion ?? '');
      errors = [];
      const mine = errors;
      return {
        ...scopeOf(session, null),
        goto: (url) => session.exclusive(async () => void (await session.command('POST', '/url', { url }))),
        reload: () => session.exclusive(async () => void (await session.command('POST', '/refresh', {}))),
        errors: () => [...mine],
        setOffline: async () => false, // WebDriver classic has no network emulation
        frame: async (iframeSelector) => {
          await session.exclusive(() => session.find(iframeSelector, DEFAULT_WAIT_MS));
          return scopeOf(session, iframeSelector);
        },
        async openedWindow(pathname, timeoutMs) {
          const handle = await pollFor(
            () =>
              session.exclusive(async () => {
                const own = (await session.command('GET', '/window')) as string;
                for (const other of (await session.command('GET', '/window/handles')) as string[]) {
                  if (other === own) continue;
                  await session.command('POST', '/window', { handle: other });
                  const url = (await session.command('GET', '/url')) as string;
                  await session.command('POST', '/window', { handle: own });
                  if (URL.canParse(url) && new URL(url).pathname === pathname) return other;
                }
                return undefined;
              }),
            `a window at ${pathname}`,
            timeoutMs,
          );
          const isClosed = () => session.exclusive(async () => !((await session.command('GET', '/window/handles')) as string[]).includes(handle));
          return { ...scopeOf(session, null, handle), isClosed };
        },
        close: () =>
          session.exclusive(async () => {
            await session.command('DELETE', '').catch(() => undefined);
            if (profile) rmSync(profile, { recursive: true, force: true });
          }),
      };
    },
    close: stop,
  };
}

async function waitForDriver(base: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const status = (await command(base, 'GET', '/status')) as { ready?: boolean };
      if (status.ready !== false) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`WebKitWebDriver did not answer on ${base} within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
