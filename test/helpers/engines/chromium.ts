/** The driver surface (driver.ts) over Debian's Chromium, through playwright-core (CDP). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { launchChromium, launchChromiumProfile } from '../browser.ts';
import { buttonXPath, callExpression, DEFAULT_WAIT_MS, pollFor, pollUntil, type DonorPage, type Engine, type EngineOptions, type PageFunction, type Scope, type Target } from './driver.ts';

function scopeOf(target: Page | Frame): Scope {
  const run = (source: string, arg: unknown) => target.evaluate(callExpression(source, arg)) as Promise<unknown>;
  return {
    evaluate: <A, R>(fn: PageFunction<A, R>, arg?: A) => run(fn.toString(), arg) as Promise<R>,
    waitFor: (fn, arg, timeoutMs) => pollUntil(run, fn, arg, timeoutMs),
    async click(what: Target, timeoutMs = DEFAULT_WAIT_MS) {
      const xpath = buttonXPath(what);
      await target.locator(xpath ? `xpath=${xpath}` : (what as string)).click({ timeout: timeoutMs });
    },
    async hover(what: Target, timeoutMs = DEFAULT_WAIT_MS) {
      const xpath = buttonXPath(what);
      await target.locator(xpath ? `xpath=${xpath}` : (what as string)).hover({ timeout: timeoutMs });
    },
  };
}

function donorPage(page: Page, context: BrowserContext, onClose: () => Promise<void>): DonorPage {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.setDefaultTimeout(DEFAULT_WAIT_MS);
  page.setDefaultNavigationTimeout(DEFAULT_WAIT_MS);
  return {
    ...scopeOf(page),
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    errors: () => [...errors],
    async setOffline(offline) {
      await context.setOffline(offline);
      return true;
    },
    async frame(iframeSelector) {
      const frame = await (await page.waitForSelector(iframeSelector)).contentFrame();
      if (!frame) throw new Error(`${iframeSelector} has no document`);
      return scopeOf(frame);
    },
    async openedWindow(pathname, timeoutMs) {
      const opened = await pollFor(async () => context.pages().find((p) => p !== page && new URL(p.url()).pathname === pathname), `a window at ${pathname}`, timeoutMs);
      return { ...scopeOf(opened), isClosed: async () => opened.isClosed() };
    },
    close: onClose,
  };
}

/**
 * Chromium with the flags of test/helpers/browser.ts, third-party storage partitioned as browsers
 * ship it (the embed's card needs storage), Compute Pressure as browser.ts sets it unless asked.
 */
export async function launchChromiumEngine(options: EngineOptions): Promise<Engine> {
  const persistent = options.profile === 'persistent';
  const flags = { storagePartitioning: true, computePressure: options.computePressure };
  const browser: Browser | null = persistent ? null : await launchChromium(flags);
  return {
    name: 'chromium',
    description: `Chromium ${browser?.version() ?? ''}${persistent ? ' (persistent profile)' : ''}`.replace('  ', ' '),
    async newPage() {
      if (browser) {
        const context = await browser.newContext();
        return donorPage(await context.newPage(), context, () => context.close());
      }
      const dir = mkdtempSync(join(tmpdir(), 'dewgrid-chromium-profile-'));
      const context = await launchChromiumProfile(dir, flags);
      return donorPage(context.pages()[0] ?? (await context.newPage()), context, async () => {
        await context.close();
        rmSync(dir, { recursive: true, force: true });
      });
    },
    close: async () => void (await browser?.close()),
  };
}
