/** What the store refuses, as the HTTP status that says why (docs/protocol.md, Errors). */
import { HttpError } from '../errors.ts';

/** A request the store refuses; the status says why (see docs/protocol.md, POST /api/results). */
export class StoreError extends HttpError {}
