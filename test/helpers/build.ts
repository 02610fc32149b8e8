/**
 * Builds the client as `npm start` does, but trusting the test project's keys
 * (test/fixtures/keys/trust.json), for browser tests, benchmarks and screenshots.
 */
import { join } from 'node:path';
import { build, type InlineConfig } from 'vite';
import { TEST_KEYS_DIR } from './server.ts';

export async function buildClient(outDir: string, options: { sourcemap?: boolean } = {}): Promise<void> {
  const previous = process.env.DEWGRID_TRUST_FILE;
  process.env.DEWGRID_TRUST_FILE = join(TEST_KEYS_DIR, 'trust.json');
  try {
    const config: InlineConfig = { logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: options.sourcemap ?? false } };
    await build(config);
  } finally {
    if (previous === undefined) delete process.env.DEWGRID_TRUST_FILE;
    else process.env.DEWGRID_TRUST_FILE = previous;
  }
}
