// The installable PWA, as the task server serves the built page: Chromium reports no
// installability errors, the manifest is complete and served as a manifest, its icons are the
// sizes it says and precached; the Install button follows beforeinstallprompt and appinstalled;
// the Add to Home Screen hint shows on iOS Safari only, and not in the installed app.
// Chromium only: installability and beforeinstallprompt are Chromium's (Firefox and Safari fire no
// such event and offer no automation of installing), and the installability report is CDP's
// (Page.getInstallabilityErrors).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { devices, type BrowserContext, type Page } from 'playwright-core';
import { launchChromiumProfile } from '../helpers/browser.ts';
import { useServerAndBrowser } from '../helpers/e2e.ts';

const env = useServerAndBrowser('pwa');

interface ManifestIcon {
  src: string;
  sizes: string;
  type: string;
  purpose: string;
}

/** A PNG's width and height, from its IHDR chunk. */
function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect([...bytes.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(''), 'PNG signature').toBe('PNG');
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

async function openReady(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('html[data-ready="true"]');
}

describe('installable PWA', () => {
  let profileDir: string;
  let profile: BrowserContext;

  beforeAll(async () => {
    profileDir = mkdtempSync(join(tmpdir(), 'dewgrid-e2e-pwa-profile-'));
    profile = await launchChromiumProfile(profileDir);
  });
  afterAll(async () => {
    await profile?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });

  it('has no installability errors, a complete manifest served as one, and icons of the sizes it names, precached', async () => {
    const response = await fetch(`${env.server.url}/manifest.webmanifest`);
    expect(response.headers.get('content-type')).toMatch(/^application\/manifest\+json/);
    const manifest = (await response.json()) as Record<string, unknown> & { icons: ManifestIcon[] };
    expect(manifest).toMatchObject({ id: '/', name: expect.stringMatching(/^Dewgrid/), short_name: 'Dewgrid', start_url: '/', scope: '/', display: 'standalone' });
    expect(manifest.description).toEqual(expect.any(String));
    for (const purpose of ['any', 'maskable', 'monochrome']) {
      expect(manifest.icons.filter((i) => i.purpose === purpose && i.type === 'image/png').map((i) => i.sizes).sort(), purpose).toEqual(['192x192', '512x512']);
    }
    for (const icon of manifest.icons.filter((i) => i.type === 'image/png')) {
      const image = await fetch(env.server.url + icon.src);
      expect(image.status, icon.src).toBe(200);
      expect(image.headers.get('content-type'), icon.src).toBe('image/png');
      const { width, height } = pngSize(new Uint8Array(await image.arrayBuffer()));
      expect(`${width}x${height}`, icon.src).toBe(icon.sizes);
    }

    const page = await profile.newPage();
    await openReady(page, env.server.url);
    await page.evaluate(() => navigator.serviceWorker.ready);
    const cdp = await page.context().newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    expect(installabilityErrors).toEqual([]);
    const parsed = await cdp.send('Page.getAppManifest');
    expect(parsed.errors).toEqual([]);
    expect(parsed.url).toBe(`${env.server.url}/manifest.webmanifest`);

    // The colours are the page's: the theme-color meta, and the page background the splash screen leads into.
    const page2 = await page.evaluate(() => ({
      theme: document.querySelector('meta[name="theme-color"]')!.getAttribute('content'),
      background: getComputedStyle(document.documentElement).backgroundColor,
    }));
    expect(manifest.theme_color).toBe(page2.theme);
    const hex = (manifest.background_color as string).match(/^#(..)(..)(..)$/)!.slice(1).map((h) => parseInt(h, 16));
    expect(page2.background).toBe(`rgb(${hex.join(', ')})`);

    // Precached by the service worker: an installed app opens offline with its icons.
    const cached = await page.evaluate(async (paths) => {
      const found: Record<string, boolean> = {};
      for (const path of paths) found[path] = (await caches.match(path, { ignoreSearch: true })) !== undefined;
      return found;
    }, ['/manifest.webmanifest', ...manifest.icons.map((i) => i.src), '/icons/apple-touch-icon.png']);
    expect(Object.entries(cached).filter(([, hit]) => !hit)).toEqual([]);
    await page.close();
  });

  it('shows Install when Chromium fires beforeinstallprompt, prompts on click, and hides it after appinstalled', async () => {
    const page = await profile.newPage();
    await openReady(page, env.server.url);
    const install = page.getByRole('button', { name: 'Install Dewgrid' });
    // The real event: this profile is installable (the test above).
    await install.waitFor({ timeout: 20_000 });
    await page.evaluate(() => dispatchEvent(new Event('appinstalled')));
    await install.waitFor({ state: 'detached' });

    // The button's click shows the browser's prompt, once: a stand-in event records the call.
    await page.evaluate(() => {
      const event = Object.assign(new Event('beforeinstallprompt', { cancelable: true }), {
        prompt: () => {
          (window as unknown as { prompted: number }).prompted = ((window as unknown as { prompted?: number }).prompted ?? 0) + 1;
          return Promise.resolve();
        },
        userChoice: Promise.resolve({ outcome: 'dismissed' }),
      });
      dispatchEvent(event);
    });
    await install.click();
    await install.waitFor({ state: 'detached' });
    expect(await page.evaluate(() => (window as unknown as { prompted?: number }).prompted)).toBe(1);
    expect(await page.locator('.install-hint').count()).toBe(0);
    await page.close();
  });

  it('explains Add to Home Screen on iOS Safari only, and not in the installed app', async () => {
    const { defaultBrowserType: _, ...iphone } = devices['iPhone 13'];
    const safari = await env.browser.newContext(iphone);
    const page = await safari.newPage();
    await openReady(page, env.server.url);
    await expect.poll(() => page.locator('.install-hint').textContent()).toMatch(/tap Share, then Add to Home Screen/);

    const standalone = await safari.newPage();
    await standalone.addInitScript("Object.defineProperty(Navigator.prototype, 'standalone', { get: () => true, configurable: true });");
    await openReady(standalone, env.server.url);
    expect(await standalone.locator('.install-hint').count()).toBe(0);
    await safari.close();

    // Chrome on iOS is not Safari (it has its own menu); a desktop Chromium tab gets no hint either.
    const chromeIos = await env.browser.newContext({ ...iphone, userAgent: iphone.userAgent.replace(/Version\/[\d.]+/, 'CriOS/120.0.6099.119') });
    const crios = await chromeIos.newPage();
    await openReady(crios, env.server.url);
    expect(await crios.locator('.install-hint').count()).toBe(0);
    await chromeIos.close();
    const desktop = await env.browser.newPage();
    await openReady(desktop, env.server.url);
    expect(await desktop.locator('.install-hint, .install').count()).toBe(0);
    await desktop.close();
  });
});
