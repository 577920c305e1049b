// Every unary call has a deadline. A client's own deadline is kept (grpc-js
// answers DEADLINE_EXCEEDED when it passes and the handler's signal aborts);
// a call that came without one gets the server's default, with the same
// outcome. Streams have none: they live until either side ends them, and
// their heartbeats show they are alive.
import { status } from '@grpc/grpc-js';
import type { ServerMiddleware } from './compose.js';
import { ServerError } from './errors.js';

/** The deadline of a unary call whose client set none. */
export const DEFAULT_UNARY_DEADLINE_MS = 30_000;

export function deadlineMiddleware(defaultMs: number = DEFAULT_UNARY_DEADLINE_MS): ServerMiddleware {
  return <T>(call: Parameters<ServerMiddleware>[0], next: () => Promise<T>): Promise<T> => {
    if (call.kind !== 'unary' || call.deadline !== Infinity) return next();
    call.deadline = Date.now() + defaultMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        call.abort();
        reject(new ServerError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'));
      }, defaultMs);
      next().then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  };
}
