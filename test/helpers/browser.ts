/**
 * Launches the system Chromium through playwright-core (no browser download: see README).
 * CHROMIUM_PATH overrides the search.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

export function findChromium(): string | null {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * The features playwright-core (1.65) turns off, but for ThirdPartyStoragePartitioning. Without
 * partitioning, and with third-party cookies blocked (as in Playwright's incognito-like contexts),
 * a cross-site iframe gets no storage at all; browsers ship with it on, and the embed's card keeps
 * its consent and its work in partitioned storage. A later --disable-features replaces Playwright's.
 */
const PLAYWRIGHT_DISABLED_FEATURES_BUT_PARTITIONING = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
];

/**
 * @param options.computePressure leave the Compute Pressure API on. Off by default: the governor
 *   tells Dewgrid's own load from other programs' (docs/scheduling.md, "Own load"), but two test
 *   files run at once, and each is another program to the other: a correct policy would slow the
 *   tests' tasks down for it. The tests of that policy turn it on (test/alone/, run with nothing
 *   else of the suite; test/e2e/policies.test.ts, which emulates it through CDP).
 * @param options.storagePartitioning give cross-site iframes partitioned storage, as browsers do
 *   (Playwright turns it off): the embed's tests need it.
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: chromiumArgs(options), headless: true });
}

/**
 * A Chromium with its profile on disk, as a donor's is. Installing needs one: every context of
 * launchChromium() is incognito-like, where Chromium neither installs nor fires beforeinstallprompt
 * (getInstallabilityErrors answers "in-incognito").
 */
export async function launchChromiumProfile(userDataDir: string, options: LaunchOptions = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { executablePath: chromiumPath(), args: chromiumArgs(options), headless: true });
}

interface LaunchOptions {
  computePressure?: boolean;
  /** More command-line flags, after the rest (e.g. --js-flags for an experiment). */
  extraArgs?: string[];
  storagePartitioning?: boolean;
}

function chromiumPath(): string {
  const executablePath = findChromium();
  if (!executablePath) {
    throw new Error('No Chromium found. Install Debian\'s: `apt-get install chromium`, or set CHROMIUM_PATH to a Chromium binary.');
  }
  return executablePath;
}

function chromiumArgs(options: LaunchOptions): string[] {
  const args = options.computePressure ? [...CHROMIUM_FLAGS] : [...CHROMIUM_FLAGS, '--disable-blink-features=ComputePressure'];
  if (options.storagePartitioning) args.push(`--disable-features=${PLAYWRIGHT_DISABLED_FEATURES_BUT_PARTITIONING.join(',')}`);
  if (options.extraArgs) args.push(...options.extraArgs);
  return args;
}
