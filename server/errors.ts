/**
 * Every 4xx and 5xx the server sends is `{ error, message }` (docs/protocol.md, Errors): `error` a
 * short code a program can switch on, `message` what exactly was wrong, for a person.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import * as v from 'valibot';
import { parse, type ApiError, type Parsed } from '../src/protocol/index.ts';

const ERROR_CODES: Record<number, string> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  409: 'conflict',
  410: 'gone',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  429: 'too-many-requests',
  500: 'internal',
  503: 'unavailable',
};

/** A refusal a route or the store decided on; the error handler turns it into `{ error, message }`. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 429 | 503,
    message: string,
    /** For a 429: when to try again (the Retry-After header). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export function errorBody(status: number, message: string): ApiError {
  return { error: ERROR_CODES[status] ?? 'error', message };
}

export function fail(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send(errorBody(status, message));
}

const bodySchemas = new WeakMap<v.GenericSchema, v.GenericSchema>();

/**
 * Validates a request body against a protocol schema.
 * @throws HttpError 400 whose message names the first bad field, as `body.tasks.3.manifest.limits.wallTimeMs: ...`.
 */
export function bodyOf<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  // Wrapping the body gives every message a path, even when the body itself is the wrong type.
  // The wrapper is made once per schema, not on every request.
  let wrapped = bodySchemas.get(schema);
  if (!wrapped) bodySchemas.set(schema, (wrapped = v.object({ body: schema })));
  const parsed = parse(wrapped, { body: input }) as Parsed<{ body: v.InferOutput<S> }>;
  if (!parsed.ok) throw new HttpError(400, parsed.message);
  return parsed.value.body;
}

/** JSON bodies only: the message of a malformed body says where JSON.parse gave up. */
export function installJsonParser(app: FastifyInstance): void {
  const strict = app.getDefaultJsonParser('error', 'error'); // __proto__ / constructor.prototype keys are refused
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, raw, done) => {
    const body = typeof raw === 'string' ? raw : raw.toString('utf8');
    strict(request, body, (error: (Error & { statusCode?: number; code?: string }) | null, value?: unknown) => {
      if (!error) return done(null, value);
      if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        let detail = error.message;
        try {
          JSON.parse(body);
          detail = 'a __proto__ or constructor.prototype key is not allowed';
        } catch (syntax) {
          detail = (syntax as Error).message;
        }
        return done(new HttpError(400, `malformed JSON: ${detail}`), undefined);
      }
      done(error, undefined);
    });
  });
}

/** Maps Fastify's own errors (body limits, content types) and ours to `{ error, message }`. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: { statusCode?: number; message: string; code?: string } | HttpError, _request, reply) => {
    if (error instanceof HttpError) {
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
      // A 503 is a moment's trouble (the database restarting): say when to try again.
      else if (error.status === 503) reply.header('retry-after', '1');
      return fail(reply, error.status, error.message);
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    let message = error.message;
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = 'the body must be application/json';
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'the body is larger than this endpoint accepts';
    else if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') message = 'the body is empty; JSON was expected';
    else if (status >= 500) {
      app.log.error(error);
      message = 'internal error';
    }
    return fail(reply, status, message);
  });
  app.setNotFoundHandler((request, reply) => fail(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`));
}
