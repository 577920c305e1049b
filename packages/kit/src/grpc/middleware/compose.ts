// The shape of server middleware and its composition, in the spirit of
// nice-grpc's `server.use()`: a middleware receives the call and `next`, and
// returns what `next` returns (the response of a unary call; nothing for a
// stream, whose promise settles when the stream ends). It may act before and
// after `next`, replace its outcome, or never call it (short-circuit).
// Middleware wraps a call once, never each message of a stream, so a stream
// pays for it once.
import type { Metadata } from '@grpc/grpc-js';

export type CallKind = 'unary' | 'serverStream' | 'bidiStream';

/** What a handler learns about its call. */
export interface CallContext {
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  readonly metadata: Metadata;
  readonly peer: string;
  /** The full method path, e.g. /tickmesh.price.v1.PriceService/GetQuote. */
  readonly method: string;
  /** When a unary call must be answered (ms since the epoch); Infinity for streams. */
  readonly deadline: number;
}

/** A call as middleware sees it: the handler's context plus what middleware may change. */
export interface ServerCall extends CallContext {
  readonly kind: CallKind;
  /** The decoded request of a unary call or server stream; undefined for a bidi stream. */
  readonly request: unknown;
  /** Starts as the client's deadline (Infinity when it sent none); the deadline middleware sets a default. */
  deadline: number;
  /** Aborts `signal`: the handler should stop working on the call. */
  abort(): void;
}

export type ServerMiddleware = <T>(call: ServerCall, next: () => Promise<T>) => Promise<T>;

/** Runs `fn`, turning a synchronous throw into a rejection. */
export function invoke<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * One middleware from many: the first in the list is the outermost, the last
 * runs right before the handler.
 */
export function composeMiddleware(list: readonly ServerMiddleware[]): ServerMiddleware {
  const chain = [...list];
  return <T>(call: ServerCall, next: () => Promise<T>): Promise<T> => {
    const step = (i: number): Promise<T> =>
      i === chain.length ? invoke(next) : invoke(() => chain[i]!(call, () => step(i + 1)));
    return step(0);
  };
}
