/**
 * Starts one throw-away PostgreSQL cluster for the `postgres` test project (vitest.config.ts)
 * and gives its URL to the tests (test/helpers/engine.ts makes a database per test in it); stops
 * it and deletes its folder when the run ends, whether the tests passed or not. A template
 * database migrated once by this tree's store makes each test's database a copy, not a migration
 * (the store's contract test migrates an empty one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { openStore } from '../server/store/index.ts';
import { startPostgres } from './helpers/postgres.ts';

export const TEMPLATE_DATABASE = 'dewgrid_template';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startPostgres();
  const dataDir = mkdtempSync(join(tmpdir(), 'dewgrid-template-'));
  try {
    const store = await openStore({ dataDir, databaseUrl: await cluster.createDatabase(TEMPLATE_DATABASE) });
    await store.close();
  } catch (error) {
    cluster.stop();
    throw error;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  project.provide('postgresUrl', cluster.url);
  return () => cluster.stop();
}
