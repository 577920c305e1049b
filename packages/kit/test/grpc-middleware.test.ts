// The server middleware through real grpc-js servers and clients on
// loopback: the order of composition (once per call, never per stream
// message), auth short-circuiting before the handler, errors mapped once at
// the boundary, and the default deadline of unary calls that carry none.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  PriceServiceClient,
  PriceServiceService,
  StreamQuotesResponse_Kind,
  type GetQuoteResponse,
  type StreamQuotesResponse,
} from '../src/gen/tickmesh/price/v1/price.js';
import { InvalidArgumentError, NotFoundError } from '../src/errors.js';
import { jwtAuthenticator, bearerTokenInterceptor } from '../src/grpc/auth.js';
import {
  HandlerFactory,
  withSafeDeserializers,
  type ServerStreamHandler,
  type UnaryHandler,
} from '../src/grpc/handlers.js';
import { ServerError, standardMiddleware, type ServerMiddleware } from '../src/grpc/middleware/index.js';
import { createLogger } from '../src/logger.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const servers: grpc.Server[] = [];
const clients: grpc.Client[] = [];

after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.forceShutdown();
});

type GetQuote = UnaryHandler<{ symbol: string }, GetQuoteResponse>;
type StreamQuotes = ServerStreamHandler<unknown, StreamQuotesResponse>;

/** Serves PriceService with `getQuote` and `streamQuotes` wrapped by `h` (the others NOT_FOUND); returns a client. */
async function serve(
  h: HandlerFactory,
  handlers: { getQuote: GetQuote; streamQuotes: StreamQuotes },
  interceptors: grpc.Interceptor[] = [],
): Promise<PriceServiceClient> {
  const server = new grpc.Server();
  servers.push(server);
  const none = () => Promise.reject(new NotFoundError('not here'));
  server.addService(withSafeDeserializers(PriceServiceService), {
    getQuote: h.unary(handlers.getQuote),
    listQuotes: h.unary(none),
    getBars: h.unary(none),
    streamQuotes: h.serverStream(handlers.streamQuotes),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const client = new PriceServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    interceptors,
  });
  clients.push(client);
  return client;
}

function getQuote(
  client: PriceServiceClient,
  options: Partial<grpc.CallOptions> = {},
  metadata = new grpc.Metadata(),
): Promise<GetQuoteResponse> {
  return new Promise((resolve, reject) =>
    client.getQuote({ symbol: 'THYAO' }, metadata, options, (err, res) =>
      err ? reject(err) : resolve(res!),
    ),
  );
}

function readStream(client: PriceServiceClient): Promise<{ messages: number; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    let messages = 0;
    const call = client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 });
    call.on('data', () => messages++);
    call.on('error', (error: grpc.ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages }));
  });
}

function heartbeat(): StreamQuotesResponse {
  return {
    kind: StreamQuotesResponse_Kind.KIND_HEARTBEAT,
    quotes: [],
    serverTimeMs: Date.now(),
    epoch: 0,
    heartbeatIntervalMs: 0,
    snapshotComplete: false,
  };
}

/** A middleware that records when it runs around `next`. */
function recorder(name: string, log: string[]): ServerMiddleware {
  return async (call, next) => {
    log.push(`${name}>${call.kind}`);
    try {
      return await next();
    } finally {
      log.push(`${name}<`);
    }
  };
}

async function counted(registry: Registry, code: string): Promise<number> {
  const handled = await registry.getSingleMetric('grpc_server_handled_total')!.get();
  return handled.values.filter((v) => v.labels.code === code).reduce((n, v) => n + v.value, 0);
}

test('middleware runs in the order added, around the handler, once per call and once per stream', async () => {
  const log: string[] = [];
  const h = new HandlerFactory().use(recorder('a', log), recorder('b', log)).use(recorder('c', log));
  const client = await serve(h, {
    getQuote: async () => {
      log.push('handler');
      return { quote: undefined };
    },
    streamQuotes: async function* () {
      for (let i = 0; i < 3; i++) {
        log.push('yield');
        yield heartbeat();
      }
    },
  });
  await getQuote(client);
  assert.deepEqual(log, ['a>unary', 'b>unary', 'c>unary', 'handler', 'c<', 'b<', 'a<']);
  log.length = 0;
  assert.deepEqual(await readStream(client), { messages: 3 });
  assert.deepEqual(log, [
    'a>serverStream',
    'b>serverStream',
    'c>serverStream',
    'yield',
    'yield',
    'yield',
    'c<',
    'b<',
    'a<',
  ]);
  assert.throws(() => h.use(recorder('late', log)), /before the first handler/);
});

test('auth short-circuits: without a valid token the handler never runs, and the call is counted', async () => {
  const registry = new Registry();
  const h = new HandlerFactory(
    createLogger('test', 'silent'),
    registry,
    jwtAuthenticator({ secret: SECRET }),
  );
  let ran = 0;
  const handlers = {
    getQuote: async () => {
      ran++;
      return { quote: undefined };
    },
    streamQuotes: async function* () {
      ran++;
      yield heartbeat();
    },
  };
  const anonymous = await serve(h, handlers);
  await assert.rejects(getQuote(anonymous), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    assert.equal(err.details, 'missing bearer token');
    return true;
  });
  const bad = new grpc.Metadata();
  bad.set('authorization', 'Bearer not.a.token');
  await assert.rejects(getQuote(anonymous, {}, bad), {
    code: grpc.status.UNAUTHENTICATED,
    details: 'invalid token',
  });
  const stream = await readStream(anonymous);
  assert.equal(stream.error?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(stream.messages, 0);
  assert.equal(ran, 0, 'the handler never ran');
  assert.equal(await counted(registry, 'UNAUTHENTICATED'), 3);

  const signed = await serve(h, handlers, [bearerTokenInterceptor({ secret: SECRET, subject: 'test' })]);
  await getQuote(signed);
  assert.equal((await readStream(signed)).messages, 1);
  assert.equal(ran, 2);
  assert.equal(await counted(registry, 'OK'), 2);
});

test('errors are mapped once at the boundary: domain errors keep code and message, others become INTERNAL', async () => {
  const logged: Array<{ msg: string; method: string }> = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  const registry = new Registry();
  const seen: unknown[] = [];
  const outer: ServerMiddleware = (_call, next) =>
    next().catch((err: unknown) => {
      seen.push(err);
      throw err;
    });
  const h = new HandlerFactory().use(outer, ...standardMiddleware({ logger, registry }));
  let fail: () => Error = () => new Error('unset');
  const client = await serve(h, {
    getQuote: () => Promise.reject(fail()),
    streamQuotes: async function* () {
      yield heartbeat();
      throw new Error('password=hunter2 in the stream');
    },
  });

  fail = () => new NotFoundError('symbol THYAO has no quote');
  await assert.rejects(getQuote(client), {
    code: grpc.status.NOT_FOUND,
    details: 'symbol THYAO has no quote',
  });
  fail = () => new InvalidArgumentError('symbol', 'must match the symbol pattern');
  await assert.rejects(getQuote(client), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err.details, 'symbol: must match the symbol pattern');
    assert.deepEqual(err.metadata.get('tickmesh-field'), ['symbol']);
    return true;
  });
  fail = () => new Error('connect ECONNREFUSED 10.0.0.7:6379');
  await assert.rejects(getQuote(client), { code: grpc.status.INTERNAL, details: 'internal error' });
  const stream = await readStream(client);
  assert.equal(stream.messages, 1);
  assert.equal(stream.error?.code, grpc.status.INTERNAL);
  assert.equal(stream.error?.details, 'internal error');

  // Outside the errors middleware every failure is already a ServerError.
  assert.equal(seen.length, 4);
  assert.ok(seen.every((err) => err instanceof ServerError));
  // Only the unexpected ones are logged, each once, with the method.
  assert.deepEqual(
    logged.map((l) => [l.msg, l.method]),
    [
      ['unary call failed', '/tickmesh.price.v1.PriceService/GetQuote'],
      ['stream failed', '/tickmesh.price.v1.PriceService/StreamQuotes'],
    ],
  );
  assert.equal(await counted(registry, 'INTERNAL'), 2);
});

test('a unary call without a deadline gets the server default; a client deadline is kept', async () => {
  const registry = new Registry();
  const h = new HandlerFactory(createLogger('test', 'silent'), registry, undefined, 300);
  const seen: Array<{ deadline: number; aborted: Promise<number> }> = [];
  let holdMs = 0;
  const client = await serve(h, {
    getQuote: async (_req, ctx) => {
      const started = Date.now();
      seen.push({
        deadline: ctx.deadline,
        aborted: new Promise((resolve) =>
          ctx.signal.addEventListener('abort', () => resolve(Date.now() - started), { once: true }),
        ),
      });
      await sleep(holdMs);
      return { quote: undefined };
    },
    streamQuotes: async function* () {
      yield heartbeat();
    },
  });

  holdMs = 2000;
  const started = Date.now();
  await assert.rejects(getQuote(client), { code: grpc.status.DEADLINE_EXCEEDED });
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 1500, `answered at the 300 ms default (${took} ms)`);
  const first = seen[0]!;
  assert.ok(Math.abs(first.deadline - (started + 300)) < 200, 'the handler saw the default deadline');
  assert.ok((await first.aborted) < 1500, "the handler's signal aborted at the deadline");
  assert.equal(await counted(registry, 'DEADLINE_EXCEEDED'), 1);

  // A client that sets its own deadline keeps it, even past the server default.
  holdMs = 600;
  const deadline = Date.now() + 5000;
  await getQuote(client, { deadline });
  assert.ok(Math.abs(seen[1]!.deadline - deadline) < 200, "the handler saw the client's deadline");
  assert.equal(await counted(registry, 'OK'), 1);
});
