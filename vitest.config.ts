import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Two cores: at most two test files at once (browser tests each start a Chromium).
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**', 'test/alone/**'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'browser',
          include: ['test/e2e/**/*.test.ts'],
          // Builds the PWA once; the browser tests drive the built output, as `npm start` serves it.
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Browser tests that read the machine's real load (Compute Pressure, /proc): run by
        // scripts/test.js after the others, one file at a time, with nothing else of the suite running.
        test: {
          name: 'alone',
          include: ['test/alone/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
