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
          // (test/server/cluster.test.ts needs PostgreSQL: it runs in the postgres project only;
          // test/alone/ runs by itself, after the rest: scripts/test.js.)
          exclude: ['test/e2e/**', 'test/alone/**', 'test/server/cluster.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'postgres',
          // The store's contract and the server's API, run again on PostgreSQL (test/helpers/engine.ts),
          // in a throw-away cluster started once for the run; and the failure tests of several servers.
          include: [
            'test/server/store.test.ts',
            'test/server/api.test.ts',
            'test/server/validation.test.ts',
            'test/server/status-page.test.ts',
            'test/server/client.test.ts',
            'test/server/hostile-donors.test.ts',
            'test/server/cluster.test.ts',
          ],
          env: { DEWGRID_TEST_ENGINE: 'postgres' },
          globalSetup: ['test/postgres-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
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
