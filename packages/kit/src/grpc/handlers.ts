// The boundary between grpc-js and service logic (in the spirit of nice-grpc):
// handlers are plain async functions (unary), async generators (server
// streams) or a function of the requests and a sink (bidi streams). Every
// call runs inside the middleware chain (middleware/: metrics, errors,
// deadline, auth), which turns what a handler throws into status + message
// once. The factory gives every call an AbortSignal, writes server streams
// only while grpc-js accepts (backpressure), and ends open streams on
// shutdown.
import {
  status,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Metadata,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger.js';
import type { Authenticator } from './auth.js';
import type { MalformedMessage } from './decode.js';
import {
  composeMiddleware,
  invoke,
  type CallContext,
  type CallKind,
  type ServerCall,
  type ServerMiddleware,
} from './middleware/compose.js';
import { ServerError, toServerError } from './middleware/errors.js';
import { standardMiddleware } from './middleware/index.js';

export { MalformedMessage, withSafeDeserializers } from './decode.js';
export type { CallContext } from './middleware/compose.js';

/** The context of a stream handler. */
export interface StreamContext extends CallContext {
  /**
   * Ends the stream with `error` now, even while the handler waits at a
   * `yield` for the client to drain (a slow-consumer policy). The handler's
   * generator is closed (its finally blocks run); the error goes through the
   * middleware like a thrown one.
   */
  fail(error: unknown): void;
}

/** Where a bidi stream handler writes, at the pace the client reads. */
export interface StreamSink<T> {
  /** Queues a message; false means the transport buffer is full: await drained(). */
  write(message: T): boolean;
  /** Resolves when the transport buffer has room again, or when the call ends. */
  drained(): Promise<void>;
  readonly signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
/** Yields the messages to send; the next one is asked for only when the client has room for it. */
export type ServerStreamHandler<Req, Res> = (request: Req, ctx: StreamContext) => AsyncIterable<Res>;
export type BidiStreamHandler<Req, Res> = (
  requests: AsyncIterable<Req | MalformedMessage>,
  sink: StreamSink<Res>,
  ctx: StreamContext,
) => Promise<void>;

type AnyStreamCall = ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** Builds handler wrappers that run inside one server's middleware chain. */
export class HandlerFactory {
  private readonly middleware: ServerMiddleware[] = [];
  private composed: ServerMiddleware | undefined;
  private readonly openStreams = new Set<StreamCall>();

  /**
   * With a logger and a registry the factory starts with the standard chain
   * (metrics, errors, deadline, and auth when `authenticate` is given);
   * without, it starts empty and use() builds the chain.
   */
  constructor(logger?: Logger, registry?: Registry, authenticate?: Authenticator, unaryDeadlineMs?: number) {
    if (logger && registry)
      this.use(...standardMiddleware({ logger, registry, authenticate, unaryDeadlineMs }));
  }

  /** Appends middleware (inside the ones already added). Only before the first handler is made. */
  use(...middleware: ServerMiddleware[]): this {
    if (this.composed) throw new Error('use() must come before the first handler is made');
    this.middleware.push(...middleware);
    return this;
  }

  get openStreamCount(): number {
    return this.openStreams.size;
  }

  /** Ends every open stream with `code` (UNAVAILABLE on shutdown, so clients reconnect elsewhere). */
  endAllStreams(code: status, details: string): void {
    for (const s of [...this.openStreams]) s.stop(new ServerError(code, details));
  }

  unary<Req, Res>(handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
    const chain = this.chain();
    return (call, callback) => {
      const c = new UnaryCall(call as ServerUnaryCall<unknown, unknown>);
      // grpc-js emits 'cancelled' when every call's stream closes, answered or
      // not: only a cancel before the answer aborts.
      call.on('cancelled', () => {
        if (!c.answered) c.abort();
      });
      chain(c, () => handler(call.request, c)).then(
        (response) => {
          c.answered = true;
          callback(null, response);
        },
        (err: unknown) => {
          c.answered = true;
          callback(toServerError(err).error);
        },
      );
    };
  }

  serverStream<Req, Res>(handler: ServerStreamHandler<Req, Res>): handleServerStreamingCall<Req, Res> {
    const chain = this.chain();
    return (call) => {
      const c = new StreamCall(call as AnyStreamCall, 'serverStream', call.request);
      this.runStream(c, chain, () => pump(call, handler(call.request, c), c.signal));
    };
  }

  bidiStream<Req, Res>(handler: BidiStreamHandler<Req, Res>): handleBidiStreamingCall<Req, Res> {
    const chain = this.chain();
    return (call) => {
      // A plain `for await` over a Node stream destroys it when the loop ends, so every
      // response written after the client's last request (final acks) would be lost and
      // the call would hang: iterate without destroying; the factory ends the call.
      const requests: AsyncIterable<Req | MalformedMessage> = {
        [Symbol.asyncIterator]: () =>
          call.iterator({ destroyOnReturn: false }) as AsyncIterator<Req | MalformedMessage>,
      };
      const c = new StreamCall(call as AnyStreamCall, 'bidiStream', undefined);
      const sink: StreamSink<Res> = {
        signal: c.signal,
        write: (message) => (c.done ? false : call.write(message)),
        drained: () => waitForDrain(call, c.signal),
      };
      this.runStream(c, chain, () => handler(requests, sink, c));
    };
  }

  private chain(): ServerMiddleware {
    return (this.composed ??= composeMiddleware(this.middleware));
  }

  private runStream(c: StreamCall, chain: ServerMiddleware, body: () => Promise<void>): void {
    this.openStreams.add(c);
    c.call.on('cancelled', () => {
      if (c.done) return;
      c.cancelled = true;
      c.stop(new ServerError(status.CANCELLED, 'cancelled by the client'));
    });
    // The stream's outcome is the handler's, unless the call is ended first
    // (cancel, fail, shutdown): then that, at once.
    chain(c, () => (c.done ? c.stopped : Promise.race([invoke(body), c.stopped]))).then(
      () => this.finish(c),
      (err: unknown) => this.finish(c, toServerError(err).error),
    );
  }

  private finish(c: StreamCall, error?: ServerError): void {
    this.openStreams.delete(c);
    c.done = true;
    c.abort();
    if (c.cancelled) return; // the client is gone: nothing to send
    if (error) c.call.emit('error', error);
    else c.call.end();
  }
}

class UnaryCall implements ServerCall {
  readonly kind: CallKind = 'unary';
  readonly method: string;
  deadline: number;
  answered = false;
  private controller: AbortController | undefined;

  constructor(private readonly call: ServerUnaryCall<unknown, unknown>) {
    this.method = methodName(call);
    this.deadline = deadlineOf(call);
  }

  get request(): unknown {
    return this.call.request;
  }

  get metadata(): Metadata {
    return this.call.metadata;
  }

  get peer(): string {
    return this.call.getPeer();
  }

  // Made on first use: an abort() builds a DOMException with a stack, costly per call.
  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }

  abort(): void {
    (this.controller ??= new AbortController()).abort();
  }
}

class StreamCall implements ServerCall, StreamContext {
  readonly method: string;
  deadline = Infinity;
  /** The outcome is decided: the handler finished, or the call was ended. */
  done = false;
  cancelled = false;
  /** Rejects with the reason when the call is ended before its handler finishes. */
  readonly stopped: Promise<never>;
  private readonly controller = new AbortController();
  private reject!: (reason: unknown) => void;

  constructor(
    readonly call: AnyStreamCall,
    readonly kind: CallKind,
    readonly request: unknown,
  ) {
    this.method = methodName(call);
    this.stopped = new Promise<never>((_, reject) => (this.reject = reject));
    this.stopped.catch(() => undefined); // read by the chain, maybe after the fact
  }

  get metadata(): Metadata {
    return this.call.metadata;
  }

  get peer(): string {
    return this.call.getPeer();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(): void {
    this.controller.abort();
  }

  fail(error: unknown): void {
    this.stop(error);
  }

  stop(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.reject(reason);
    this.controller.abort();
  }
}

/** Writes what `messages` yields, asking for the next only when the transport has room. */
async function pump<Res>(
  call: ServerWritableStream<unknown, Res>,
  messages: AsyncIterable<Res>,
  signal: AbortSignal,
): Promise<void> {
  for await (const message of messages) {
    if (signal.aborted) return; // closes the generator
    if (!call.write(message)) {
      await waitForDrain(call, signal);
      if (signal.aborted) return;
    }
  }
}

function waitForDrain(call: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.on('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

function methodName(call: { getPath?: () => string }): string {
  return call.getPath?.() ?? 'unknown';
}

function deadlineOf(call: { getDeadline?: () => Date | number }): number {
  const deadline = call.getDeadline?.() ?? Infinity;
  return typeof deadline === 'number' ? deadline : deadline.getTime();
}
