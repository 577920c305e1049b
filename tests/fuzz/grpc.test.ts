// Property-based fuzzing of every gRPC service with at least 10,000 generated requests
// each (fast-check, fixed seed FUZZ_SEED): messages built by the ts-proto types from odd
// values (unicode, injection strings, NaN/Infinity, negative and enormous numbers, huge
// arrays), plus raw bytes that are no message at all. For every service: no answer is
// INTERNAL/UNKNOWN or hangs, the process never crashes (no unhandled rejection), rejected
// input changes no state (Redis, the tick stream, the customer table), and memory stays
// bounded (RSS growth below a stated bound).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import type * as grpc from '@grpc/grpc-js';
import {
  CreateApiKeyRequest,
  CreateCustomerRequest,
  CreateCustomerResponse,
  Customer,
  DeleteCustomerRequest,
  GetCustomerRequest,
  GetCustomerResponse,
  GetWatchlistRequest,
  GetWatchlistResponse,
  ListApiKeysRequest,
  ListCustomersRequest,
  ListCustomersResponse,
  RevokeApiKeyRequest,
  SetWatchlistRequest,
  SetWatchlistResponse,
  UpdateCustomerRequest,
  UpdateCustomerResponse,
  VerifyApiKeyRequest,
  PublishTickRequest,
  PublishTickResponse,
  PublishTicksRequest,
  PublishTicksResponse,
  GetBarsRequest,
  GetQuoteRequest,
  ListQuotesRequest,
  StreamQuotesRequest,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import { fromUnits, loadUniverse } from '@tickmesh/kit';
import { startStack, waitUntil, type ServiceName, type Stack } from '@tickmesh/harness';
import { readStream } from '../faults/lib/model.js';
import { FUZZ_SEED, int64ish, nastyNumber, nastyString, rawBytes, samples } from './lib/arbitraries.js';
import { BAD_CODES, firstOfStream, pool, rawClient, tally, unary, type Answer } from './lib/raw-grpc.js';

const N = Number(process.env.FUZZ_RUNS) || 10_000;
const CONCURRENCY = 16;

const universe = loadUniverse('bist30');
const symbols = universe.instruments.map((i) => i.symbol);
let stack: Stack;
let nc: NatsConnection;
let redis: Redis;
const clients = new Map<string, grpc.Client>();

function client(svc: ServiceName): grpc.Client {
  const address = stack.svc(svc).spec.grpcAddress!;
  let c = clients.get(address);
  if (!c) {
    c = rawClient(address);
    clients.set(address, c);
  }
  return c;
}

before(async () => {
  stack = await startStack({
    services: ['ticker', 'price-cache', 'customers'],
    log: (l) => process.stderr.write(`# ${l}\n`),
  });
  nc = await connect({ servers: stack.nats.url, timeout: 5000 });
  redis = new Redis(stack.redis.url, { maxRetriesPerRequest: 2 });
  // A few valid ticks so the price-cache has quotes and bars to serve.
  for (const i of universe.instruments.slice(0, 5)) {
    const body = PublishTickRequest.encode({
      tick: {
        symbol: i.symbol,
        price: i.referencePrice,
        size: 10,
        producerId: '',
        producerSeq: 0,
        eventTimeMs: 0,
      },
    }).finish();
    const a = await unary(client('ticker'), '/tickmesh.ingest.v1.IngestService/PublishTick', body);
    assert.equal(a.code, 0, a.details);
  }
  await waitUntil(async () => (await redis.scard('tm:symbols')) >= 5, {
    timeoutMs: 30_000,
    what: 'quotes applied',
  });
});

after(async () => {
  for (const c of clients.values()) c.close();
  await nc?.close();
  redis?.disconnect();
  await stack?.stop();
});

/** Encodes with the generated type; a value the encoder refuses becomes raw bytes instead. */
function encode(f: () => Uint8Array, fallback: Uint8Array): Uint8Array {
  try {
    return f();
  } catch {
    return fallback;
  }
}

interface Sent {
  method: string;
  body: Uint8Array;
  answer?: Answer;
}

/** Sends everything, then reports failures (bad codes), crashes and RSS. */
async function fire(svc: ServiceName, requests: Sent[], stream = new Set<string>()): Promise<Sent[]> {
  const c = client(svc);
  await pool(requests, CONCURRENCY, async (r) => {
    r.answer = stream.has(r.method)
      ? await firstOfStream(c, r.method, r.body)
      : await unary(c, r.method, r.body);
  });
  return requests;
}

/**
 * Memory is bounded when RSS levels off: after a warm-up (V8 grows its heap to its working
 * size), the second half of the run may add at most PLATEAU_BYTES, and RSS stays below
 * RSS_CEILING_BYTES. A leak proportional to the requests fails the first check.
 */
const PLATEAU_BYTES = 48 * 1024 * 1024;
const RSS_CEILING_BYTES = 512 * 1024 * 1024;

interface RssTrace {
  start: number;
  half: number;
  end: number;
}

/** Sends the requests in three parts (warm-up 20 %, 40 %, 40 %), sampling RSS between them. */
async function fireMeasured(
  svc: ServiceName,
  requests: Sent[],
  stream = new Set<string>(),
): Promise<RssTrace> {
  const a = Math.floor(requests.length * 0.2);
  const b = Math.floor(requests.length * 0.6);
  await fire(svc, requests.slice(0, a), stream);
  const start = stack.svc(svc).rss() ?? NaN;
  await fire(svc, requests.slice(a, b), stream);
  const half = stack.svc(svc).rss() ?? NaN;
  await fire(svc, requests.slice(b), stream);
  return { start, half, end: stack.svc(svc).rss() ?? NaN };
}

function verdict(t: { diagnostic(m: string): void }, svc: ServiceName, sent: Sent[], rss: RssTrace): void {
  const bad = sent.filter((r) => BAD_CODES.has(r.answer!.code));
  const byMethod = new Map<string, Answer[]>();
  for (const r of sent) byMethod.set(r.method, [...(byMethod.get(r.method) ?? []), r.answer!]);
  for (const [m, answers] of byMethod) t.diagnostic(`${m}: ${JSON.stringify(tally(answers))}`);
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  t.diagnostic(
    `${svc}: ${sent.length} requests (seed ${FUZZ_SEED}); RSS after warm-up ${mib(rss.start)} MiB, half-way ${mib(rss.half)} MiB, end ${mib(rss.end)} MiB`,
  );
  assert.deepEqual(
    bad
      .slice(0, 5)
      .map(
        (r) =>
          `${r.method} ${Buffer.from(r.body).toString('hex').slice(0, 120)} -> ${r.answer!.code} ${r.answer!.details}`,
      ),
    [],
    `${bad.length} requests got a status that means the server failed`,
  );
  assert.deepEqual(stack.crashes(), []);
  const fatal = stack
    .grepLogs(/"level":"(fatal|error)"|Unhandled|uncaught/i)
    .filter((l) => l.service === svc);
  assert.deepEqual(fatal.slice(0, 5), [], 'error or fatal lines in the service log');
  assert.ok(
    rss.end - rss.half < PLATEAU_BYTES,
    `RSS still growing: +${mib(rss.end - rss.half)} MiB over the last 40 %`,
  );
  assert.ok(rss.end < RSS_CEILING_BYTES, `RSS ${mib(rss.end)} MiB`);
}

/** Every key the price-cache keeps (but its leases), with its value: equal digests = unchanged state. */
async function redisDigest(): Promise<string> {
  const keys = (await redis.keys('tm:*')).filter((k) => !/lock$/.test(k)).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const type = await redis.type(k);
    let v: unknown;
    if (type === 'hash') v = await redis.hgetall(k);
    else if (type === 'set') v = (await redis.smembers(k)).sort();
    else if (type === 'zset') v = await redis.zrange(k, '0', '-1', 'WITHSCORES');
    else v = await redis.get(k);
    parts.push(`${k}=${JSON.stringify(v)}`);
  }
  return parts.join('\n');
}

const symbolArb = fc.oneof(fc.constantFrom(...symbols), nastyString);
const symbolList = fc.oneof(
  { weight: 8, arbitrary: fc.array(symbolArb, { maxLength: 20 }) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...symbols), { minLength: 990, maxLength: 1010 }) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 16 }), { minLength: 1001, maxLength: 5000 }) },
);

test(`PriceService: ${N} generated requests change nothing and never fail the server`, async (t) => {
  const P = '/tickmesh.price.v1.PriceService/';
  const digest = await redisDigest();
  const rawMethod = fc.constantFrom('GetQuote', 'ListQuotes', 'GetBars', 'StreamQuotes');
  const gen = fc.oneof(
    {
      weight: 3,
      arbitrary: symbolArb.map((s) => ({
        method: `${P}GetQuote`,
        body: GetQuoteRequest.encode({ symbol: s }).finish(),
      })),
    },
    {
      weight: 2,
      arbitrary: symbolList.map((l) => ({
        method: `${P}ListQuotes`,
        body: ListQuotesRequest.encode({ symbols: l }).finish(),
      })),
    },
    {
      weight: 3,
      arbitrary: fc
        .record({
          symbol: symbolArb,
          interval: fc.integer({ min: -5, max: 10 }),
          startTimeMs: int64ish,
          endTimeMs: int64ish,
          limit: fc.oneof(fc.nat(), fc.constantFrom(0, 1, 1000, 1001, 2 ** 32 - 1)),
        })
        .map((r) => ({
          method: `${P}GetBars`,
          body: encode(() => GetBarsRequest.encode(r).finish(), new Uint8Array([0x0a, 0x01, 0x41])),
        })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          symbols: symbolList,
          all: fc.boolean(),
          maxUpdatesPerSecond: fc.oneof(fc.nat(), fc.constant(2 ** 32 - 1)),
        })
        .map((r) => ({ method: `${P}StreamQuotes`, body: StreamQuotesRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(rawMethod, rawBytes).map(([m, b]) => ({ method: `${P}${m}`, body: b })),
    },
  );
  const requests: Sent[] = samples(gen, N, 1);
  const rss = await fireMeasured('price-cache', requests, new Set([`${P}StreamQuotes`]));
  verdict(t, 'price-cache', requests, rss);
  assert.equal(await redisDigest(), digest, 'the cache changed');
});

async function listAllCustomers(): Promise<Customer[]> {
  const out: Customer[] = [];
  let token = '';
  for (let page = 0; page < 1000; page++) {
    const a = await unary(
      client('customers'),
      '/tickmesh.customer.v1.CustomerService/ListCustomers',
      ListCustomersRequest.encode({ pageSize: 500, pageToken: token, email: '' }).finish(),
    );
    assert.equal(a.code, 0, a.details);
    const res = ListCustomersResponse.decode(a.response!);
    out.push(...res.customers);
    token = res.nextPageToken;
    if (!token) return out;
  }
  throw new Error('too many pages');
}

test(`CustomerService: ${N} generated requests; only accepted ones change the table`, async (t) => {
  const C = '/tickmesh.customer.v1.CustomerService/';
  const created = await unary(
    client('customers'),
    `${C}CreateCustomer`,
    CreateCustomerRequest.encode({
      firstName: 'Canary',
      lastName: 'Bird',
      email: 'canary@example.com',
    }).finish(),
  );
  assert.equal(created.code, 0, created.details);
  const canary = CreateCustomerResponse.decode(created.response!).customer!;
  const setW = await unary(
    client('customers'),
    `${C}SetWatchlist`,
    SetWatchlistRequest.encode({ customerId: canary.id, symbols: ['THYAO', 'GARAN'] }).finish(),
  );
  assert.equal(setW.code, 0, setW.details);
  const countBefore = (await listAllCustomers()).length;

  const id = fc.oneof(
    { weight: 1, arbitrary: fc.constant(canary.id) },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: nastyString },
  );
  const email = fc.oneof(fc.emailAddress(), nastyString, fc.constant('canary@example.com'));
  const mask = fc.oneof(
    fc.constant(undefined),
    fc.array(
      fc.oneof(fc.constantFrom('first_name', 'lastName', 'email', 'id', 'create_time_ms'), nastyString),
      { maxLength: 5 },
    ),
  );
  const gen = fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .record({ firstName: nastyString, lastName: nastyString, email })
        .map((r) => ({ method: `${C}CreateCustomer`, body: CreateCustomerRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      arbitrary: id.map((i) => ({
        method: `${C}GetCustomer`,
        body: GetCustomerRequest.encode({ id: i }).finish(),
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          pageSize: fc.oneof(fc.nat(), fc.constant(2 ** 32 - 1)),
          pageToken: fc.oneof(nastyString, fc.base64String()),
          email: fc.oneof(fc.constant(''), email),
        })
        .map((r) => ({ method: `${C}ListCustomers`, body: ListCustomersRequest.encode(r).finish() })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ id, firstName: nastyString, lastName: nastyString, email, updateMask: mask })
        .map((r) => ({ method: `${C}UpdateCustomer`, body: UpdateCustomerRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      // never the canary: its deletion would be a legitimate change
      arbitrary: fc.oneof(fc.uuid(), nastyString).map((i) => ({
        method: `${C}DeleteCustomer`,
        body: DeleteCustomerRequest.encode({ id: i }).finish(),
      })),
    },
    {
      weight: 1,
      arbitrary: id.map((i) => ({
        method: `${C}GetWatchlist`,
        body: GetWatchlistRequest.encode({ customerId: i }).finish(),
      })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ customerId: id, symbols: symbolList })
        .map((r) => ({ method: `${C}SetWatchlist`, body: SetWatchlistRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ customerId: id, name: nastyString })
        .map((r) => ({ method: `${C}CreateApiKey`, body: CreateApiKeyRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      arbitrary: id.map((i) => ({
        method: `${C}ListApiKeys`,
        body: ListApiKeysRequest.encode({ customerId: i }).finish(),
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ customerId: id, keyId: fc.oneof(fc.uuid(), nastyString) })
        .map((r) => ({ method: `${C}RevokeApiKey`, body: RevokeApiKeyRequest.encode(r).finish() })),
    },
    {
      weight: 1,
      arbitrary: fc
        .oneof(
          nastyString,
          fc.string().map((s) => `tmk_${s}`),
        )
        .map((s) => ({
          method: `${C}VerifyApiKey`,
          body: VerifyApiKeyRequest.encode({ secret: s }).finish(),
        })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(
            'CreateCustomer',
            'GetCustomer',
            'UpdateCustomer',
            'SetWatchlist',
            'VerifyApiKey',
            'ListCustomers',
          ),
          rawBytes,
        )
        .map(([m, b]) => ({ method: `${C}${m}`, body: b })),
    },
  );
  const requests: Sent[] = samples(gen, N, 2);
  const rss = await fireMeasured('customers', requests);
  verdict(t, 'customers', requests, rss);

  // The table changed by exactly the accepted creates and deletes.
  const ok = (m: string) => requests.filter((r) => r.method === `${C}${m}` && r.answer!.code === 0);
  const after = await listAllCustomers();
  t.diagnostic(
    `customers: ${countBefore} -> ${after.length} (${ok('CreateCustomer').length} created, ${ok('DeleteCustomer').length} deleted)`,
  );
  assert.equal(after.length, countBefore + ok('CreateCustomer').length - ok('DeleteCustomer').length);
  // The canary is as it was, or as one of the accepted updates left it.
  const g = await unary(
    client('customers'),
    `${C}GetCustomer`,
    GetCustomerRequest.encode({ id: canary.id }).finish(),
  );
  assert.equal(g.code, 0, g.details);
  const now = GetCustomerResponse.decode(g.response!).customer!;
  const allowed = [
    canary,
    ...ok('UpdateCustomer').map((r) => UpdateCustomerResponse.decode(r.answer!.response!).customer!),
  ]
    .filter((c) => c.id === canary.id)
    .map((c) => `${c.firstName}|${c.lastName}|${c.email}`);
  assert.ok(
    allowed.includes(`${now.firstName}|${now.lastName}|${now.email}`),
    `canary changed by a rejected update: ${JSON.stringify(now)}`,
  );
  const w = await unary(
    client('customers'),
    `${C}GetWatchlist`,
    GetWatchlistRequest.encode({ customerId: canary.id }).finish(),
  );
  assert.equal(w.code, 0, w.details);
  const watch = GetWatchlistResponse.decode(w.response!).symbols.join(',');
  const allowedW = [
    'THYAO,GARAN',
    ...ok('SetWatchlist')
      .filter((r) => SetWatchlistRequest.decode(r.body).customerId === canary.id)
      .map((r) => SetWatchlistResponse.decode(r.answer!.response!).symbols.join(',')),
  ];
  assert.ok(allowedW.includes(watch), `canary watchlist changed by a rejected request: ${watch}`);
});

function tickArb(valid: boolean): fc.Arbitrary<Tick> {
  if (valid) {
    return fc
      .record({
        i: fc.nat({ max: universe.instruments.length - 1 }),
        k: fc.integer({ min: -50, max: 50 }),
        size: fc.integer({ min: 0, max: 1000 }),
      })
      .map(({ i, k, size }) => {
        const inst = universe.instruments[i]!;
        const units = Math.round(inst.referencePrice * 10 ** inst.decimals) + k * inst.tickUnits;
        return {
          symbol: inst.symbol,
          price: fromUnits(units, inst.decimals),
          size,
          producerId: '',
          producerSeq: 0,
          eventTimeMs: 0,
        };
      });
  }
  return fc.record({
    symbol: symbolArb,
    price: fc.oneof(nastyNumber, fc.constantFrom(285.5, 285.55, 0.05, 285.501)),
    size: fc.oneof(fc.integer({ min: -1000, max: 1000 }), int64ish, fc.constant(Number.MIN_SAFE_INTEGER)),
    producerId: fc.oneof(fc.constant(''), nastyString),
    producerSeq: fc.oneof(fc.constant(0), int64ish),
    eventTimeMs: fc.oneof(fc.constant(0), int64ish, fc.constant(Date.now() + 3_600_000), fc.constant(-1)),
    bid: fc.option(nastyNumber, { nil: undefined }),
    ask: fc.option(nastyNumber, { nil: undefined }),
  });
}

test(`IngestService: ${N} generated unary requests and a fuzzed stream; only acknowledged ticks reach JetStream`, async (t) => {
  const I = '/tickmesh.ingest.v1.IngestService/';
  const jsm = await jetstreamManager(nc);
  const fromSeq = (await jsm.streams.info('TICKS')).state.last_seq + 1;
  const gen = fc.oneof(
    {
      weight: 2,
      arbitrary: tickArb(true).map((tick) => ({
        method: `${I}PublishTick`,
        body: PublishTickRequest.encode({ tick }).finish(),
      })),
    },
    {
      weight: 6,
      arbitrary: fc.oneof(tickArb(false), fc.constant(undefined)).map((tick) => ({
        method: `${I}PublishTick`,
        body: encode(
          () => PublishTickRequest.encode({ tick }).finish(),
          new Uint8Array([0x0a, 0x02, 0x0a, 0x00]),
        ),
      })),
    },
    { weight: 1, arbitrary: rawBytes.map((b) => ({ method: `${I}PublishTick`, body: b })) },
  );
  const requests: Sent[] = samples(gen, N, 3);
  const rss = await fireMeasured('ticker', requests);

  // A fuzzed bidirectional stream: mostly good ticks with a steady producer, some bad ones.
  const streamTicks = samples(
    fc.tuple(
      fc.oneof({ weight: 3, arbitrary: tickArb(true) }, { weight: 1, arbitrary: tickArb(false) }),
      fc.nat(9),
    ),
    2000,
    4,
  ).map(([tick, dice], i) => ({
    ...tick,
    // one producer with strictly increasing seqs (so a rejection names one tick); one in ten claims another producer
    producerId: dice === 0 ? 'fuzz-other' : 'fuzz-stream',
    producerSeq: i + 1,
  }));
  const streamResult = await publishStream(streamTicks);
  verdict(t, 'ticker', requests, rss);
  t.diagnostic(
    `PublishTicks: ${streamTicks.length} ticks, ${streamResult.rejected.size} rejected, acked through ${streamResult.ackedThrough}, ended ${streamResult.status}`,
  );
  assert.ok(!BAD_CODES.has(streamResult.code), `the stream ended with ${streamResult.status}`);

  // What reached the stream is exactly what was acknowledged.
  const accepted = new Set(
    requests
      .filter((r) => r.answer!.code === 0)
      .map((r) => PublishTickResponse.decode(r.answer!.response!))
      .map((a) => `${a.producerId}/${a.producerSeq}`),
  );
  const stored = new Set<string>();
  await readStream(nc, fromSeq, (_seq, ticks) => {
    for (const tk of ticks) stored.add(`${tk.producerId}/${tk.producerSeq}`);
  });
  const streamStored = [...stored].filter((k) => k.startsWith('fuzz-stream/'));
  const unaryStored = [...stored].filter((k) => !k.startsWith('fuzz-stream/'));
  const notAccepted = unaryStored.filter((k) => !accepted.has(k));
  const lost = [...accepted].filter((k) => !stored.has(k));
  t.diagnostic(`PublishTick: ${accepted.size} accepted, ${unaryStored.length} stored`);
  assert.deepEqual(notAccepted.slice(0, 5), [], 'ticks in the stream that no OK answer covers');
  assert.deepEqual(lost.slice(0, 5), [], 'acknowledged ticks missing from the stream');
  const sentOk = new Set(
    streamTicks
      .filter((tk) => tk.producerId === 'fuzz-stream' && !streamResult.rejected.has(tk.producerSeq))
      .map((tk) => `fuzz-stream/${tk.producerSeq}`),
  );
  assert.deepEqual(
    streamStored.filter((k) => !sentOk.has(k)).slice(0, 5),
    [],
    'rejected stream ticks reached JetStream',
  );
  const ackedMissing = [...sentOk].filter(
    (k) => Number(k.split('/')[1]) <= streamResult.ackedThrough && !stored.has(k),
  );
  assert.deepEqual(ackedMissing.slice(0, 5), [], 'acknowledged stream ticks missing from JetStream');
});

/** Streams ticks over PublishTicks (raw duplex call), collecting rejections and acks. */
async function publishStream(
  ticks: Tick[],
): Promise<{ rejected: Set<number>; ackedThrough: number; code: number; status: string }> {
  const c = client('ticker');
  const call = c.makeBidiStreamRequest<Buffer, Buffer>(
    '/tickmesh.ingest.v1.IngestService/PublishTicks',
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  const rejected = new Set<number>();
  let ackedThrough = 0;
  const ended = new Promise<{ code: number; status: string }>((resolve) => {
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, status: `${s.code} ${s.details}` }));
    call.on('error', () => undefined);
  });
  call.on('data', (m: Buffer) => {
    const res = PublishTicksResponse.decode(m);
    if (res.rejection) rejected.add(res.rejection.producerSeq);
    if (res.ack && res.ack.producerId === 'fuzz-stream')
      ackedThrough = Math.max(ackedThrough, res.ack.storedThroughSeq);
  });
  for (let i = 0; i < ticks.length; i += 10) {
    const body = encode(
      () => PublishTicksRequest.encode({ tick: undefined, ticks: ticks.slice(i, i + 10) }).finish(),
      new Uint8Array([0xff]),
    );
    if (!call.write(Buffer.from(body))) await new Promise((r) => call.once('drain', r));
  }
  // Give the acks time to arrive, then close our side.
  await sleep(2000);
  call.end();
  const timer = setTimeout(() => call.cancel(), 10_000);
  const end = await ended;
  clearTimeout(timer);
  return { rejected, ackedThrough, ...end };
}
