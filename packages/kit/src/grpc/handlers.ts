// The boundary between grpc-js and service logic (in the spirit of nice-grpc):
// handlers are plain async functions that return a response or throw a
// DomainError; these wrappers turn that into status + message, never leaking
// internals, give every call an AbortSignal, and make server streams honour
// backpressure and shutdown.
import {
  Metadata,
  status,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerDuplexStream,
  type ServerWritableStream,
  type ServiceDefinition,
  type MethodDefinition,
} from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';
import { toServiceError } from '../errors.js';
import type { Logger } from '../logger.js';

/** What a request deserializes to when its bytes are not a valid message. */
export class MalformedMessage {
  constructor(readonly reason: string) {}
}

/**
 * Returns a copy of `definition` whose request deserializers never throw:
 * bad bytes become a MalformedMessage that the wrappers answer with
 * INVALID_ARGUMENT (grpc-js itself would answer INTERNAL).
 */
export function withSafeDeserializers<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          return new MalformedMessage(err instanceof Error ? err.message : 'cannot decode');
        }
      },
    };
  }
  return out as D;
}

export interface CallContext {
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  readonly metadata: Metadata;
  readonly peer: string;
  readonly method: string;
}

export interface StreamSink<T> {
  /** Queues a message; false means the transport buffer is full: await drained(). */
  write(message: T): boolean;
  /** Resolves when the transport buffer has room again, or when the call ends. */
  drained(): Promise<void>;
  readonly signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
export type ServerStreamHandler<Req, Res> = (
  request: Req,
  sink: StreamSink<Res>,
  ctx: CallContext,
) => Promise<void>;
export type BidiStreamHandler<Req, Res> = (
  requests: AsyncIterable<Req | MalformedMessage>,
  sink: StreamSink<Res>,
  ctx: CallContext,
) => Promise<void>;

interface OpenStream {
  end(code: status, details: string): void;
}

/** Builds handler wrappers bound to one server's logger, metrics and stream registry. */
export class HandlerFactory {
  private readonly openStreams = new Set<OpenStream>();
  private readonly handled: Counter;
  private readonly duration: Histogram;
  private readonly streamsGauge: Counter;

  constructor(
    private readonly logger: Logger,
    registry: Registry,
    /** Checks credentials before every handler (never for health and reflection). */
    private readonly authenticate?: (metadata: Metadata) => Promise<void>,
  ) {
    this.handled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'gRPC calls completed, by method and status code',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time to answer a unary gRPC call',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [registry],
    });
    this.streamsGauge = new Counter({
      name: 'grpc_server_streams_started_total',
      help: 'Streaming gRPC calls started, by method',
      labelNames: ['method'],
      registers: [registry],
    });
  }

  get openStreamCount(): number {
    return this.openStreams.size;
  }

  /** Ends every open stream with `code` (UNAVAILABLE on shutdown, so clients reconnect elsewhere). */
  endAllStreams(code: status, details: string): void {
    for (const s of [...this.openStreams]) s.end(code, details);
  }

  unary<Req, Res>(handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const method = methodName(call);
      const started = performance.now();
      const finish = (code: status) => {
        this.handled.inc({ method, code: status[code] });
        this.duration.observe({ method }, (performance.now() - started) / 1000);
      };
      const request = call.request as Req | MalformedMessage;
      if (request instanceof MalformedMessage) {
        finish(status.INVALID_ARGUMENT);
        callback({ code: status.INVALID_ARGUMENT, details: `malformed request: ${request.reason}` });
        return;
      }
      // grpc-js emits 'cancelled' when every call's stream closes, answered or
      // not: only a cancel before the answer aborts. The controller is made on
      // first use (an abort() builds a DOMException with a stack: costly per call).
      let abort: AbortController | undefined;
      let answered = false;
      call.on('cancelled', () => {
        if (!answered) (abort ??= new AbortController()).abort();
      });
      const ctx: CallContext = {
        get signal() {
          return (abort ??= new AbortController()).signal;
        },
        metadata: call.metadata,
        get peer() {
          return call.getPeer();
        },
        method,
      };
      const authenticate = this.authenticate;
      const run = authenticate
        ? authenticate(call.metadata).then(() => handler(request, ctx))
        : handler(request, ctx);
      run.then(
        (response) => {
          answered = true;
          finish(status.OK);
          callback(null, response);
        },
        (err: unknown) => {
          answered = true;
          const { error, expected } = toServiceError(err);
          if (!expected) this.logger.error({ err, method }, 'unary call failed');
          finish(error.code ?? status.INTERNAL);
          callback(error);
        },
      );
    };
  }

  serverStream<Req, Res>(handler: ServerStreamHandler<Req, Res>): handleServerStreamingCall<Req, Res> {
    return (call) => {
      const request = call.request as Req | MalformedMessage;
      if (request instanceof MalformedMessage) {
        const method = methodName(call);
        this.handled.inc({ method, code: status[status.INVALID_ARGUMENT] });
        call.emit('error', {
          code: status.INVALID_ARGUMENT,
          details: `malformed request: ${request.reason}`,
        });
        return;
      }
      this.runStream(call, (sink, ctx) => handler(request, sink, ctx));
    };
  }

  bidiStream<Req, Res>(handler: BidiStreamHandler<Req, Res>): handleBidiStreamingCall<Req, Res> {
    return (call) => {
      // A plain `for await` over a Node stream destroys it when the loop ends, so every
      // response written after the client's last request (final acks) would be lost and
      // the call would hang: iterate without destroying; runStream ends the call.
      const requests: AsyncIterable<Req | MalformedMessage> = {
        [Symbol.asyncIterator]: () =>
          call.iterator({ destroyOnReturn: false }) as AsyncIterator<Req | MalformedMessage>,
      };
      this.runStream(call, (sink, ctx) => handler(requests, sink, ctx));
    };
  }

  private runStream<Req, Res>(
    call: ServerWritableStream<Req, Res> | ServerDuplexStream<Req, Res>,
    body: (sink: StreamSink<Res>, ctx: CallContext) => Promise<void>,
  ): void {
    const method = methodName(call);
    this.streamsGauge.inc({ method });
    const abort = new AbortController();
    let ended = false;
    const entry: OpenStream = {
      end: (code, details) => {
        if (ended) return;
        ended = true;
        this.openStreams.delete(entry);
        this.handled.inc({ method, code: status[code] });
        if (code === status.OK) call.end();
        else call.emit('error', { code, details });
        abort.abort();
      },
    };
    this.openStreams.add(entry);
    call.on('cancelled', () => {
      if (ended) return;
      ended = true;
      this.openStreams.delete(entry);
      this.handled.inc({ method, code: status[status.CANCELLED] });
      abort.abort();
    });
    const sink: StreamSink<Res> = {
      signal: abort.signal,
      write: (message) => (ended ? false : call.write(message)),
      drained: () => waitForDrain(call, abort.signal),
    };
    const ctx: CallContext = { signal: abort.signal, metadata: call.metadata, peer: call.getPeer(), method };
    const authenticate = this.authenticate;
    const run = authenticate ? authenticate(call.metadata).then(() => body(sink, ctx)) : body(sink, ctx);
    run.then(
      () => entry.end(status.OK, ''),
      (err: unknown) => {
        if (ended) return;
        const { error, expected } = toServiceError(err);
        if (!expected) this.logger.error({ err, method }, 'stream failed');
        entry.end(error.code ?? status.INTERNAL, error.details ?? 'internal error');
      },
    );
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
