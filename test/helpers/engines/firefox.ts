/**
 * The driver surface (driver.ts) over Debian's Firefox ESR, through puppeteer-core over WebDriver
 * BiDi. puppeteer-core downloads nothing (unlike `puppeteer`); FIREFOX_PATH overrides the search.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type BrowserContext, type Frame, type Page } from 'puppeteer-core';
import { buttonXPath, callExpression, DEFAULT_WAIT_MS, describeTarget, pollFor, pollUntil, type DonorPage, type Engine, type EngineOptions, type PageFunction, type Scope, type Target } from './driver.ts';

const CANDIDATES = ['/usr/bin/firefox-esr', '/usr/bin/firefox'];

export function findFirefox(): string | null {
  const fromEnv = process.env.FIREFOX_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/**
 * Preferences for a quiet test profile: puppeteer's own already turn off updates, telemetry and
 * first-run pages. Nothing here changes what a page can do.
 */
const PREFS = {
  'browser.safebrowsing.update.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};

function scopeOf(target: Page | Frame): Scope {
  const find = async (what: Target, timeoutMs: number) => {
    const xpath = buttonXPath(what);
    const handle = await target.waitForSelector(xpath ? `::-p-xpath(${xpath})` : (what as string), { visible: true, timeout: timeoutMs });
    if (!handle) throw new Error(`${describeTarget(what)} is not there`);
    return handle;
  };
  const run = (source: string, arg: unknown) => target.evaluate(callExpression(source, arg)) as Promise<unknown>;
  return {
    evaluate: <A, R>(fn: PageFunction<A, R>, arg?: A) => run(fn.toString(), arg) as Promise<R>,
    waitFor: (fn, arg, timeoutMs) => pollUntil(run, fn, arg, timeoutMs),
    async click(what: Target, timeoutMs = DEFAULT_WAIT_MS) {
      const handle = await find(what, timeoutMs);
      await handle.click();
      await handle.dispose();
    },
    async hover(what: Target, timeoutMs = DEFAULT_WAIT_MS) {
      const handle = await find(what, timeoutMs);
      await handle.hover();
      await handle.dispose();
    },
  };
}

function donorPage(page: Page, onClose: () => Promise<void>): DonorPage {
  const errors: string[] = [];
  page.on('pageerror', (error) => {
    const message = error instanceof Error ? error.message : String(error);
    // Firefox reports its Content-Security-Policy refusals here too, such as the partner page's
    // policy refusing the browser's own favicon request: the policy at work, not a page failing
    // (Chromium's automation reports none of them as page errors).
    if (!message.startsWith('Content-Security-Policy: ')) errors.push(message);
  });
  page.setDefaultTimeout(DEFAULT_WAIT_MS);
  page.setDefaultNavigationTimeout(DEFAULT_WAIT_MS);
  return {
    ...scopeOf(page),
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    errors: () => [...errors],
    async setOffline(offline) {
      await page.setOfflineMode(offline);
      return true;
    },
    async frame(iframeSelector) {
      const handle = await page.waitForSelector(iframeSelector);
      const frame = await handle?.contentFrame();
      if (!frame) throw new Error(`${iframeSelector} has no document`);
      return scopeOf(frame);
    },
    async openedWindow(pathname, timeoutMs) {
      const opened = await pollFor(async () => (await page.browserContext().pages()).find((p) => p !== page && URL.canParse(p.url()) && new URL(p.url()).pathname === pathname), `a window at ${pathname}`, timeoutMs);
      return { ...scopeOf(opened), isClosed: async () => opened.isClosed() };
    },
    close: onClose,
  };
}

async function launch(userDataDir?: string): Promise<Browser> {
  const executablePath = findFirefox();
  if (!executablePath) throw new Error("No Firefox found. Install Debian's: `apt-get install firefox-esr`, or set FIREFOX_PATH to a Firefox binary.");
  return puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    userDataDir,
    extraPrefsFirefox: PREFS,
    protocolTimeout: 2 * DEFAULT_WAIT_MS,
  });
}

/**
 * `ephemeral`: one Firefox, a new BiDi user context per page (its own cookies and storage, as a
 * container tab has); `persistent`: a Firefox per page on a profile folder of its own.
 */
export async function launchFirefoxEngine(options: EngineOptions): Promise<Engine> {
  const persistent = options.profile === 'persistent';
  const browser = persistent ? null : await launch();
  const version = (await (browser ?? null)?.version()) ?? 'firefox';
  return {
    name: 'firefox',
    description: `${version.replace('firefox/', 'Firefox ')}${persistent ? ' (persistent profile)' : ''}`,
    async newPage() {
      if (browser) {
        const context: BrowserContext = await browser.createBrowserContext();
        return donorPage(await context.newPage(), () => context.close());
      }
      const dir = mkdtempSync(join(tmpdir(), 'dewgrid-firefox-profile-'));
      const own = await launch(dir);
      return donorPage((await own.pages())[0] ?? (await own.newPage()), async () => {
        await own.close();
        rmSync(dir, { recursive: true, force: true });
      });
    },
    close: async () => void (await browser?.close()),
  };
}
