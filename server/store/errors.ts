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
