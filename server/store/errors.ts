/** What the store refuses, as the HTTP status that says why (docs/protocol.md, Errors). */
import { HttpError } from '../errors.ts';

/** A request the store refuses; the status says why (see docs/protocol.md, POST /api/results). */
export class StoreError extends HttpError {}

/** The database cannot be reached now (restarting, unreachable, out of connections): the client should try again shortly. */
export class DatabaseUnavailableError extends HttpError {
  constructor(cause: Error) {
    super(503, `the database is unavailable (${(cause as { code?: string }).code ?? cause.message}); try again shortly`);
  }
}

/**
 * A write waited longer than `waitedMs` for a lock another transaction holds (on PostgreSQL: a
 * server frozen mid-transaction, holding a task's lock): answered 503 at once, so the request's
 * connection is freed and the client tries again shortly, when the holder has most likely woken or died.
 */
export class LockWaitError extends HttpError {
  constructor(waitedMs: number) {
    super(503, `another request has held what this one needs for over ${waitedMs} ms (a stalled server?); try again shortly`);
  }
}
