import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: browser tests each start Chromium; running files two at a time keeps the suite fast without starving them.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
