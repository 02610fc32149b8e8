#!/usr/bin/env node
// `npm test`: makes sure a browser is there for the browser tests, then runs every test once.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const candidates = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];
const hasBrowser = () => (process.env.CHROMIUM_PATH ? existsSync(process.env.CHROMIUM_PATH) : candidates.some((p) => existsSync(p)));

if (!hasBrowser()) {
  const isRoot = process.getuid?.() === 0;
  const isDebian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get');
  if (isRoot && isDebian) {
    console.log('npm test: no Chromium found; installing Debian\'s chromium package for the browser tests.');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'chromium']]) {
      const run = spawnSync('apt-get', args, { stdio: 'inherit', env });
      if (run.status !== 0) process.exit(run.status ?? 1);
    }
  }
  if (!hasBrowser()) {
    console.error(
      'npm test needs Chromium for the browser tests and found none.\n' +
        '  Debian/Ubuntu: sudo apt-get install chromium\n' +
        '  Elsewhere: install Chromium or Chrome and set CHROMIUM_PATH=/path/to/chromium',
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
