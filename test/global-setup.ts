/**
 * Builds the PWA once for the browser tests, into .tmp/dist-test (the same build `npm start`
 * serves), so every e2e test drives the built output rather than the dev server.
 */
import { buildClient } from './helpers/build.ts';
import { fileURLToPath } from 'node:url';

export const TEST_DIST = fileURLToPath(new URL('../.tmp/dist-test', import.meta.url));

export default async function setup(): Promise<void> {
  await buildClient(TEST_DIST);
}
