#!/usr/bin/env node
// `npm test`: makes sure a browser is there for the browser tests, then runs every test once.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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

const vitest = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(vitest.status ?? 1);
