#!/usr/bin/env node
// `npm test`: makes sure the browsers are there for the browser tests, then runs every test once.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

/**
 * The browsers the tests drive, each found the way its helper finds it (test/helpers/browser.ts and
 * test/helpers/engines/), with the Debian packages that provide it. Nothing is downloaded.
 */
const exists = (paths) => paths.some((p) => existsSync(p));
const fromEnvOr = (name, paths) => (process.env[name] ? existsSync(process.env[name]) : exists(paths));
const hasPythonWebKit = () =>
  spawnSync('/usr/bin/python3', ['-c', "import gi; gi.require_version('WebKit2', '4.1'); gi.require_version('Gtk', '3.0')"], { stdio: 'ignore' }).status === 0;
const requirements = [
  { what: 'Chromium', packages: ['chromium'], found: () => fromEnvOr('CHROMIUM_PATH', ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable']), elsewhere: 'install Chromium or Chrome and set CHROMIUM_PATH' },
  { what: 'Firefox', packages: ['firefox-esr'], found: () => fromEnvOr('FIREFOX_PATH', ['/usr/bin/firefox-esr', '/usr/bin/firefox']), elsewhere: 'install Firefox and set FIREFOX_PATH' },
  { what: "WebKitGTK's WebDriver", packages: ['webkit2gtk-driver'], found: () => fromEnvOr('WEBKIT_WEBDRIVER_PATH', ['/usr/bin/WebKitWebDriver']), elsewhere: 'install WebKitGTK 4.1 and its WebKitWebDriver' },
  { what: 'Xvfb', packages: ['xvfb'], found: () => exists(['/usr/bin/Xvfb']), elsewhere: 'install Xvfb' },
  { what: "WebKitGTK's Python bindings", packages: ['python3-gi', 'gir1.2-webkit2-4.1'], found: hasPythonWebKit, elsewhere: 'install PyGObject and the WebKit2 4.1 typelib' },
];
const missing = () => requirements.filter((r) => !r.found());

if (missing().length) {
  const isRoot = process.getuid?.() === 0;
  const isDebian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get');
  if (isRoot && isDebian) {
    const packages = missing().flatMap((r) => r.packages);
    console.log(`npm test: installing Debian's ${packages.join(', ')} for the browser tests.`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...packages]]) {
      const run = spawnSync('apt-get', args, { stdio: 'inherit', env });
      if (run.status !== 0) process.exit(run.status ?? 1);
    }
  }
  const still = missing();
  if (still.length) {
    console.error(
      `npm test needs, for the browser tests: ${still.map((r) => r.what).join(', ')}.\n` +
        `  Debian/Ubuntu: sudo apt-get install ${still.flatMap((r) => r.packages).join(' ')}\n` +
        still.map((r) => `  Elsewhere (${r.what}): ${r.elsewhere}\n`).join(''),
    );
    process.exit(1);
  }
}

// Types first: each environment's tsconfig keeps page, worker and server code apart.
const typecheck = spawnSync('npm', ['run', '--silent', 'typecheck'], { stdio: 'inherit' });
if (typecheck.status !== 0) {
  console.error('npm test: the typecheck failed (npm run typecheck).');
  process.exit(typecheck.status ?? 1);
}

// Two phases: every test but those that read the machine's real load, two files at a time; then
// those (test/alone), one at a time with nothing else running: with other tests loading the
// machine, backing off for other programs would be the right answer (vitest.config.ts).
const phases = [
  { name: 'node, postgres and browser', args: ['--project', 'node', '--project', 'postgres', '--project', 'browser'] },
  { name: 'alone', args: ['--project', 'alone', '--passWithNoTests'] },
];
const totals = { passed: 0, failed: 0, pending: 0, broken: [] };
let status = 0;
for (const [i, phase] of phases.entries()) {
  const report = `.tmp/vitest-report-${i}.json`;
  rmSync(report, { force: true });
  const vitest = spawnSync(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', ...phase.args, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  if (vitest.status !== 0) status = vitest.status ?? 1;
  if (existsSync(report)) {
    const { numPassedTests, numFailedTests, numPendingTests, testResults } = JSON.parse(readFileSync(report, 'utf8'));
    totals.passed += numPassedTests;
    totals.failed += numFailedTests;
    totals.pending += numPendingTests;
    // A file that fails to load runs no tests, so it shows in no test count: name it.
    totals.broken.push(...testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).map((file) => file.name));
  }
}
// A plain closing line that any CI can read, whatever the runner prints.
const { passed, failed, pending, broken } = totals;
console.log(`\n${passed} passed, ${failed} failed, ${pending} skipped${broken.length ? `; ${broken.length} test file(s) failed to load: ${broken.join(', ')}` : ''}`);
process.exit(status);
