// Error mapping, once, at the boundary: whatever a handler or an inner
// middleware throws becomes a ServerError (status + message) here. Domain
// errors keep their code and message (InvalidArgumentError names its field in
// the `tickmesh-field` trailer); anything else is INTERNAL with a generic
// message and is logged, so internals never reach the client. A request whose
// bytes did not decode is answered INVALID_ARGUMENT before inner middleware
// (auth) and the handler run.
import { Metadata, status } from '@grpc/grpc-js';
import { toServiceError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { MalformedMessage } from '../decode.js';
import type { ServerMiddleware } from './compose.js';

/** A gRPC status ready to send: what the boundary answers. */
export class ServerError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
    readonly metadata: Metadata = new Metadata(),
  ) {
    super(details);
    this.name = 'ServerError';
  }
}

/** The ServerError for `err` (itself when it is one already), and whether it was expected. */
export function toServerError(err: unknown): { error: ServerError; expected: boolean } {
  if (err instanceof ServerError) return { error: err, expected: true };
  const { error, expected } = toServiceError(err);
  const code = error.code ?? status.INTERNAL;
  return { error: new ServerError(code, error.details ?? 'internal error', error.metadata), expected };
}

/** The status code `err` is answered with. */
export function statusOf(err: unknown): status {
  return toServerError(err).error.code;
}

export function errorsMiddleware(logger: Logger): ServerMiddleware {
  return (call, next) => {
    if (call.request instanceof MalformedMessage) {
      return Promise.reject(
        new ServerError(status.INVALID_ARGUMENT, `malformed request: ${call.request.reason}`),
      );
    }
    return next().catch((err: unknown) => {
      const { error, expected } = toServerError(err);
      if (!expected) {
        logger.error(
          { err, method: call.method },
          call.kind === 'unary' ? 'unary call failed' : 'stream failed',
        );
      }
      throw error;
    });
  };
}
