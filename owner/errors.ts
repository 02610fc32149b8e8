/**
 * What goes wrong between the owner and the task server, as errors a program can tell apart
 * (`instanceof`) and a person can read (`message` says what and where).
 */

/** Anything the client library reports about the server or its answers. */
export class DewgridError extends Error {
  override name = 'DewgridError';
  constructor(
    message: string,
    /** The HTTP status the server answered, or 0 when there was no answer. */
    readonly status: number,
  ) {
    super(message);
  }
}

/** Nothing answers at the server's address (refused, unknown host, timed out). Nothing was sent but the attempt. */
export class ServerUnreachableError extends DewgridError {
  override name = 'ServerUnreachableError';
  constructor(
    readonly server: string,
    /** The network's reason, such as `connect ECONNREFUSED 127.0.0.1:8787`. */
    readonly reason: string,
  ) {
    super(`no server answers at ${server} (${reason})`, 0);
  }
}

/** Something answers at the address, but not a Dewgrid task server (a web site, another service, a wrong port). */
export class NotADewgridServerError extends DewgridError {
  override name = 'NotADewgridServerError';
  constructor(
    readonly server: string,
    /** What it answered instead, such as `404 text/html`. */
    readonly answered: string,
  ) {
    super(`${server} is not a Dewgrid task server: GET /api/info answered ${answered}`, 0);
  }
}

/** The server refused a request: `status` and the server's `code` and message say why. */
export class ServerRefusedError extends DewgridError {
  override name = 'ServerRefusedError';
  constructor(
    status: number,
    /** The server's error code (`not-found`, `unauthorized`, ...). */
    readonly code: string,
    message: string,
  ) {
    super(message, status);
  }
}

/** The server answered something that is not what the protocol says (the message names the field). */
export class BadAnswerError extends DewgridError {
  override name = 'BadAnswerError';
}
