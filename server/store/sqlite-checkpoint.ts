/**
 * SQLite's write-ahead log checkpointed from a worker thread with a connection of its own.
 *
 * In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies them
 * back into the database file, then syncs both files. Left to SQLite, the checkpoint runs inside
 * whichever commit pushes the log past 1000 pages: on the server's one thread, where it copies
 * every page changed since the last one and waits for two fsyncs (4 ms or more each on the
 * reference machine's disk). Every request waits with it.
 *
 * Here a worker checkpoints a few times a second. A PASSIVE checkpoint takes no lock a writer
 * needs, so commits go on while it copies. But the log starts again from its beginning only at a
 * commit that finds it copied to its end with no checkpoint running, which commits beside a busy
 * worker rarely allow: measured, the log grew by every page written. A RESTART checkpoint from the
 * worker would need the write lock, which it only polls for, and a busy request connection starves
 * it. So once the log holds RESTART_PAGES, the worker pauses and asks the request connection to
 * restart it, between two transactions: that checkpoint copies only what was written since the
 * worker's (a fraction of a second's pages) and syncs, and the next commit writes the log from its
 * start. The request thread pays a few ms once per RESTART_PAGES pages of log, not a full
 * checkpoint every 1000.
 *
 * The request connection keeps an automatic checkpoint at BACKSTOP_PAGES, which it reaches only if
 * the worker has stopped; if the worker dies, SQLite's own threshold comes back.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the worker checkpoints. */
export const CHECKPOINT_EVERY_MS = 200;

/** Pages of log (16 MiB) at which the worker asks the request connection to start the log again. */
export const RESTART_PAGES = 4_000;

/** Pages of log at which the request connection checkpoints by itself: only if the worker has stopped doing it. */
export const BACKSTOP_PAGES = 4 * RESTART_PAGES;

/** SQLite's own default, used again if the worker is gone. */
export const SQLITE_DEFAULT_PAGES = 1000;

export interface CheckpointStats {
  /** Passive checkpoints the worker ran, and the log pages they copied into the database. */
  checkpoints: number;
  pagesCopied: number;
  /** Times it made the log start again from its beginning. */
  restarts: number;
}

// Plain JavaScript, evaluated as the worker's script: it needs no TypeScript loader, in the
// server (run by tsx) as in tests (run by vitest).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('synchronous = NORMAL');
let checkpoints = 0, pagesCopied = 0, restarts = 0, waiting = false;
// The log's length when a restart was last asked for: until the next commit it still reads so.
let askedAt = -1;
const checkpoint = () => {
  if (waiting) return;
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    checkpoints++;
    pagesCopied += Math.max(0, row.checkpointed);
    if (row.log >= workerData.restartPages && row.log !== askedAt) {
      waiting = true;
      askedAt = row.log;
      parentPort.postMessage({ type: 'restart-due' });
    }
  } catch (error) {
    if (error.code !== 'SQLITE_BUSY' && error.code !== 'SQLITE_LOCKED') throw error;
  }
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.on('message', (message) => {
  if (message === 'restarted') {
    restarts++;
    waiting = false;
  }
  if (message === 'stats') parentPort.postMessage({ type: 'stats', checkpoints, pagesCopied, restarts });
  if (message === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort.close();
  }
});
`;

export interface CheckpointHandlers {
  /**
   * Restart the log: run `PRAGMA wal_checkpoint(RESTART)` on the request connection between two of
   * its transactions. The worker waits for this to settle before it checkpoints again.
   */
  restart(): Promise<void>;
  /** The worker failed: the caller gives checkpoints back to SQLite. */
  lost(error: Error): void;
}

export class BackgroundCheckpoint {
  private stopped = false;

  private constructor(private readonly worker: Worker, handlers: CheckpointHandlers) {
    worker.on('error', (error) => {
      if (!this.stopped) handlers.lost(error);
    });
    worker.on('message', (message: { type: string }) => {
      if (message.type !== 'restart-due') return;
      handlers
        .restart()
        .catch((error: Error) => console.error(`dewgrid: restarting the SQLite log failed (${error.message}); the worker checkpoints on`))
        .finally(() => this.stopped || this.worker.postMessage('restarted'));
    });
    // The server's exit never waits for this thread (stop() waits for it when asked).
    worker.unref();
  }

  /** Starts checkpointing `file` (the database already in WAL mode) from a worker. */
  static start(file: string, handlers: CheckpointHandlers): BackgroundCheckpoint {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, file, everyMs: CHECKPOINT_EVERY_MS, restartPages: RESTART_PAGES },
    });
    return new BackgroundCheckpoint(worker, handlers);
  }

  /** What the worker has done so far. */
  stats(): Promise<CheckpointStats> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      const answer = (message: { type: string } & CheckpointStats) => {
        if (message.type !== 'stats') return;
        this.worker.off('message', answer);
        this.worker.off('error', fail);
        const { checkpoints, pagesCopied, restarts } = message;
        resolve({ checkpoints, pagesCopied, restarts });
      };
      this.worker.on('error', fail);
      this.worker.on('message', answer);
      this.worker.postMessage('stats');
    });
  }

  /** Stops the worker and closes its connection (the request connection's close checkpoints what is left). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.ref(); // the process waits for the worker's connection to close
    this.worker.postMessage('stop');
    await exited;
  }
}
