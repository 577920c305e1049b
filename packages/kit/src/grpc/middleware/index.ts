// The one place where the kit's server middleware is defined and put in
// order. Every tickmesh service method runs inside this chain (health and
// reflection are separate services it never wraps):
//
//   metrics -> errors -> deadline -> auth -> handler
//
// metrics is outermost so it counts every outcome under its final status
// code; errors maps what is thrown once, before metrics reads it; the
// deadline covers authentication and the handler; auth short-circuits before
// the handler. More middleware (tracing) is added with GrpcServer.use().
import type { Registry } from 'prom-client';
import type { Logger } from '../../logger.js';
import type { Authenticator } from '../auth.js';
import { authMiddleware } from './auth.js';
import type { ServerMiddleware } from './compose.js';
import { deadlineMiddleware } from './deadline.js';
import { errorsMiddleware } from './errors.js';
import { metricsMiddleware } from './metrics.js';

export * from './auth.js';
export * from './compose.js';
export * from './deadline.js';
export * from './errors.js';
export * from './metrics.js';

export interface StandardMiddlewareOptions {
  logger: Logger;
  registry: Registry;
  /** Checks credentials on every call (GRPC_AUTH_MODE=jwt); none when undefined. */
  authenticate?: Authenticator;
  /** Deadline of unary calls that come without one (default DEFAULT_UNARY_DEADLINE_MS). */
  unaryDeadlineMs?: number;
}

export function standardMiddleware(opts: StandardMiddlewareOptions): ServerMiddleware[] {
  return [
    metricsMiddleware(opts.registry),
    errorsMiddleware(opts.logger),
    deadlineMiddleware(opts.unaryDeadlineMs),
    ...(opts.authenticate ? [authMiddleware(opts.authenticate)] : []),
  ];
}
