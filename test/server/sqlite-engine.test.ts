// The SQLite engine's own mechanics, below the store's contract (store.test.ts): where its
// write-ahead log is checkpointed, and an upgrade of a database that already holds events.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, SqliteEngine } from '../../server/store/sqlite.ts';
import { BACKSTOP_PAGES, CHECKPOINT_EVERY_MS, RESTART_PAGES, SQLITE_DEFAULT_PAGES } from '../../server/store/sqlite-checkpoint.ts';

const folders: string[] = [];
const engines: SqliteEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dewgrid-sqlite-'));
  folders.push(dir);
  return dir;
}

function open(dataDir: string): SqliteEngine {
  const engine = new SqliteEngine({ dataDir });
  engines.push(engine);
  return engine;
}

/** Pages in the log file: SQLite reuses the file from its start after a checkpoint, so its size is the most the log held at once. */
const logPages = (dataDir: string) => Math.floor(statSync(join(dataDir, 'dewgrid.sqlite-wal')).size / (4096 + 24));

/**
 * Commits `count` transactions of about a page each (a keyset row of 3 kB), one at a time, each
 * in a turn of the event loop of its own as a server's requests are.
 */
async function commitPages(engine: SqliteEngine, count: number, first = 1): Promise<void> {
  for (let v = first; v < first + count; v++) {
    await engine.write(async (q, now) => q.insertKeyset(v, 'k'.repeat(3000), now));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 3 * CHECKPOINT_EVERY_MS));

describe('the SQLite engine', () => {
  it("leaves checkpoints to its worker: the request connection's commits only append to the log", async () => {
    const dir = folder();
    const engine = open(dir);
    await engine.checkpoint.stop(); // nobody checkpoints now but the request connection itself
    await commitPages(engine, 2 * SQLITE_DEFAULT_PAGES);
    // SQLite's own threshold would have checkpointed and restarted the log at 1000 pages.
    expect(logPages(dir)).toBeGreaterThan(2 * SQLITE_DEFAULT_PAGES);
    expect(logPages(dir)).toBeLessThan(BACKSTOP_PAGES);
  });

  it('has the request connection start the log again once it holds RESTART_PAGES, after the worker copied them', async () => {
    const dir = folder();
    const engine = open(dir);
    // Each commit writes about two pages (the row's and the keysets' index's): past the mark.
    await commitPages(engine, RESTART_PAGES / 2 + 200);
    await settle();
    const { pagesCopied, restarts } = await engine.checkpoint.stats();
    expect(restarts).toBe(1);
    expect(pagesCopied).toBeGreaterThanOrEqual(RESTART_PAGES); // by the worker, not the request thread
    // The log starts from its beginning again: the file does not grow with the next thousand pages.
    const held = logPages(dir);
    await commitPages(engine, 500, RESTART_PAGES);
    expect(logPages(dir)).toBe(held);
  });

  it('checkpoints what was written, and leaves no log behind when closed', async () => {
    const dir = folder();
    const engine = open(dir);
    await commitPages(engine, 50);
    await settle();
    expect((await engine.checkpoint.stats()).pagesCopied).toBeGreaterThanOrEqual(50);
    await engines.splice(0)[0]!.close();
    expect(() => statSync(join(dir, 'dewgrid.sqlite-wal'))).toThrow(/ENOENT/);
    // Opened again, everything is there.
    const again = open(dir);
    expect((await again.read(async (q) => q.keyset()))?.version).toBe(50);
  });

  it("keeps the numbers of a batch's events across the upgrade to the clustered event log, and goes on after them", async () => {
    const dir = folder();
    // A database at schema 7, as the release before left it: events numbered across all batches.
    const old = new Database(join(dir, 'dewgrid.sqlite'));
    old.pragma('journal_mode = WAL');
    for (const [v, migration] of MIGRATIONS.slice(0, 7).entries()) {
      old.exec(migration);
      old.pragma(`user_version = ${v + 1}`);
    }
    for (const batchId of ['a', 'b']) {
      old.prepare("INSERT INTO batches (batch_id, name, created_at, digest) VALUES (?, 'n', 0, 'd')").run(batchId);
      for (let i = 0; i < 2; i++) {
        old.prepare("INSERT INTO tasks (task_id, batch_id, seq, envelope, engine, redundancy, expires_at, wall_time_ms) VALUES (?, ?, ?, '{}', 'wasi-preview1', 1, 9e12, 1000)")
          .run(`${batchId}-${i}`, batchId, i);
      }
    }
    for (const taskId of ['a-0', 'b-0', 'a-1']) old.prepare("UPDATE tasks SET state = 'cancelled' WHERE task_id = ?").run(taskId);
    old.close();

    const engine = open(dir);
    expect((await engine.info()).schemaVersion).toBe(MIGRATIONS.length);
    const events = (batchId: string) => engine.read(async (q) => q.taskEvents(batchId, 0, 100));
    expect(await events('a')).toEqual([{ seq: 1, taskId: 'a-0', state: 'cancelled' }, { seq: 3, taskId: 'a-1', state: 'cancelled' }]);
    expect(await events('b')).toEqual([{ seq: 2, taskId: 'b-0', state: 'cancelled' }]);

    // New events number on from their batch's last: a reader that has seen 3 in batch a, or 2 in b, misses none.
    await engine.write(async (q) => {
      await q.finishTask('a-1', 'l0');
      await q.insertLease({ leaseId: 'l1', taskId: 'b-1', deviceId: 'd', issuedAt: 0, expiresAt: 1, endsAt: 1, solo: false });
    });
    expect(await engine.read(async (q) => q.taskEvents('a', 3, 100))).toEqual([{ seq: 4, taskId: 'a-1', state: 'done' }]);
    expect(await engine.read(async (q) => q.taskEvents('b', 2, 100))).toEqual([{ seq: 3, taskId: 'b-1', state: 'running' }]);
  });
});
