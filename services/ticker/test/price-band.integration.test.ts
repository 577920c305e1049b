// Price bands end to end: a real nats-server and Redis, a real price-cache
// (in this process) and two ingest API replicas asking it for the previous
// close. Yesterday's trading is in the stream; a tick at 100x is refused on
// both replicas naming tick.price, in-band ticks are stored and applied, the
// reference follows yesterday's close and then the price-cache's prev_close
// after the day rolled, and with the price-cache gone an instrument without a
// reference for today is refused with UNAVAILABLE, not accepted unchecked.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createClient, localTime, parseConfig } from '@tickmesh/kit';
import {
  IngestServiceClient,
  PriceServiceClient,
  type PublishTickResponse,
  type PublishTicksResponse,
  type Quote,
  type Tick,
} from '@tickmesh/kit/proto';
import {
  metricValue,
  startNats,
  startRedis,
  stopAll,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import {
  PARTITIONS,
  connectTestNats,
  publishTicks,
  startReplica,
  testEnv,
  whenReady,
  type Replica,
} from '../../price-cache/test/support.js';
import { ingestConfigSpec } from '../src/config.js';
import { startIngestApp, type IngestApp } from '../src/ingest-app.js';
import { readStream } from './support/stream-contents.js';

const ISTANBUL = 'Europe/Istanbul';
let nats: NatsTestServer;
let redis: RedisTestServer;
let nc: NatsConnection;
let priceCache: Replica;
const apps: IngestApp[] = [];
const clients: IngestServiceClient[] = [];
let prices: PriceServiceClient;

function ingestConfig(natsUrl: string, priceCacheAddress: string) {
  return parseConfig(ingestConfigSpec, {
    LOG_LEVEL: 'silent',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    NATS_URL: natsUrl,
    TICK_PARTITIONS: String(PARTITIONS),
    NATS_CONNECT_TIMEOUT_MS: '10000',
    INGEST_UNARY_TIMEOUT_MS: '5000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    PRICE_CACHE_ADDRESS: priceCacheAddress,
    GRPC_UNARY_DEADLINE_MS: '500',
    PRICE_BAND_RECHECK_MS: '200',
  });
}

type Answer = { ok: PublishTickResponse } | { err: grpc.ServiceError };

function publishTick(client: IngestServiceClient, t: Partial<Tick>): Promise<Answer> {
  const tick: Tick = {
    symbol: 'THYAO',
    price: 0,
    size: 10,
    producerId: '',
    producerSeq: 0,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
    ...t,
  };
  return new Promise((resolve) =>
    // The client's deadline interceptor sets unaryDeadlineMs.
    client.publishTick({ tick }, (err, res) => resolve(err ? { err } : { ok: res })),
  );
}

function quote(symbol: string): Promise<Quote | undefined> {
  return new Promise((resolve) =>
    prices.getQuote({ symbol }, (err, res) => resolve(err ? undefined : res.quote)),
  );
}

function refused(a: Answer, code: grpc.status, field?: string): grpc.ServiceError {
  assert.ok('err' in a, `expected ${grpc.status[code]}, got ${JSON.stringify('ok' in a ? a.ok : a)}`);
  assert.equal(a.err.code, code, a.err.details);
  if (field) {
    assert.equal(a.err.metadata.get('tickmesh-field')[0], field);
    assert.ok(a.err.details.startsWith(`${field}:`), a.err.details);
  }
  return a.err;
}

const today = () => localTime(Date.now(), ISTANBUL).date;

before(async () => {
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  nc = await connectTestNats(nats.url);
  priceCache = await startReplica(testEnv(nats.url, redis.url));
  const address = `127.0.0.1:${priceCache.grpcPort}`;
  // The ticker creates the TICKS stream; the price-cache waits for it.
  for (let i = 0; i < 2; i++) {
    const app = await startIngestApp(ingestConfig(nats.url, address));
    apps.push(app);
    clients.push(
      createClient(IngestServiceClient, `127.0.0.1:${app.grpcPort}`, {
        unaryDeadlineMs: 10_000,
        service: 'tickmesh.ingest.v1.IngestService',
      }),
    );
  }
  prices = createClient(PriceServiceClient, address, {
    unaryDeadlineMs: 2000,
    service: 'tickmesh.price.v1.PriceService',
  });
  await whenReady(priceCache);
});

after(async () => {
  for (const c of clients) c.close();
  prices?.close();
  for (const a of apps) await a.stop().catch(() => undefined);
  await priceCache?.stop().catch(() => undefined);
  await nc?.close().catch(() => undefined);
  await stopAll();
});

describe('price bands against a real price-cache', () => {
  it("refuses a tick at 100x, stores in-band ticks and follows yesterday's close across the day roll", async () => {
    // Yesterday's trading, already in the stream: THYAO closed at 308.25 (file reference 285.5).
    const yesterday = Date.now() - 86_400_000;
    const js = jetstream(nc);
    await publishTicks(
      js,
      [300, 305.5, 308.25].map((price, i) => ({
        symbol: 'THYAO',
        price,
        size: 100,
        producerId: 'history',
        producerSeq: i + 1,
        eventTimeMs: yesterday + i,
        bid: undefined,
        ask: undefined,
      })),
      { lane: true },
    );
    await waitUntil(async () => (await quote('THYAO'))?.last === 308.25, { timeoutMs: 20_000 });
    const y = (await quote('THYAO'))!;
    assert.notEqual(y.sessionDate, today(), 'the history is of an earlier day');

    // 100x the price: refused by both replicas, naming tick.price, counted by reason.
    for (const client of clients) {
      const err = refused(
        await publishTick(client, { price: 30825 }),
        grpc.status.INVALID_ARGUMENT,
        'tick.price',
      );
      assert.match(
        err.details,
        /outside today's price band \[277\.5, 339\] \(previous close 308\.25 ± 10%\)/,
      );
    }
    for (const app of apps) {
      const body = await app.kit.registry.metrics();
      assert.equal(metricValue(body, 'tickmesh_ticks_rejected_total', { reason: 'price_outside_band' }), 1);
    }

    // 335.5 is outside the file's band around 285.5 but inside yesterday's close's: stored.
    const first = await publishTick(clients[0]!, { price: 335.5 });
    assert.ok('ok' in first, JSON.stringify(first));
    await waitUntil(async () => (await quote('THYAO'))?.sessionDate === today(), { timeoutMs: 20_000 });
    const rolled = (await quote('THYAO'))!;
    assert.equal(rolled.prevClose, 308.25);
    assert.equal(rolled.last, 335.5);

    // The day has rolled in the price-cache: its prev_close is the reference on every replica.
    await new Promise((r) => setTimeout(r, 300)); // past PRICE_BAND_RECHECK_MS
    for (const client of clients) {
      assert.ok('ok' in (await publishTick(client, { price: 339 })), 'the upper limit itself');
      assert.ok(
        'ok' in (await publishTick(client, { price: 277.5, bid: 277.5, ask: 278 })),
        'the lower limit',
      );
      refused(await publishTick(client, { price: 339.25 }), grpc.status.INVALID_ARGUMENT, 'tick.price');
      refused(
        await publishTick(client, { price: 290, bid: 277.25 }),
        grpc.status.INVALID_ARGUMENT,
        'tick.bid',
      );
    }

    // The stream: a Rejection on tick.price for the outlier, the rest stored.
    const call = clients[1]!.publishTicks();
    const responses: PublishTicksResponse[] = [];
    call.on('data', (r: PublishTicksResponse) => responses.push(r));
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    const t = (seq: number, price: number): Tick => ({
      symbol: 'THYAO',
      price,
      size: 1,
      producerId: 'band-stream',
      producerSeq: seq,
      eventTimeMs: 0,
      bid: undefined,
      ask: undefined,
    });
    call.write({ tick: undefined, ticks: [t(1, 310), t(2, 3100), t(3, 311)] });
    call.end();
    assert.equal((await ended).code, grpc.status.OK);
    const rejections = responses.flatMap((r) => (r.rejection ? [r.rejection] : []));
    assert.deepEqual(
      rejections.map((r) => [r.producerSeq, r.field]),
      [[2, 'tick.price']],
    );
    assert.equal(responses.at(-1)?.ack?.storedThroughSeq, 3);

    // What the stream holds: every accepted price, none of the refused ones.
    const stored = (await readStream(nc, 'TICKS')).flatMap((b) => b.ticks).map((x) => x.price);
    for (const p of [335.5, 339, 277.5, 310, 311]) assert.ok(stored.includes(p), `${p} stored`);
    for (const p of [30825, 339.25, 3100]) assert.ok(!stored.includes(p), `${p} never stored`);
    await waitUntil(async () => (await quote('THYAO'))?.last === 311, { timeoutMs: 20_000 });
    assert.equal((await quote('THYAO'))!.high, 339);
  });

  it('refuses with UNAVAILABLE when the price-cache is gone and no reference for today is known', async () => {
    await priceCache.stop();
    // GARAN was never looked up: its band cannot be checked.
    refused(await publishTick(clients[0]!, { symbol: 'GARAN', price: 130 }), grpc.status.UNAVAILABLE);
    // THYAO's reference of today is cached: still checked, and served.
    assert.ok('ok' in (await publishTick(clients[0]!, { price: 312 })));
    refused(await publishTick(clients[0]!, { price: 30825 }), grpc.status.INVALID_ARGUMENT, 'tick.price');
  });
});
