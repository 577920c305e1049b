// Memory bound of a stalled StreamQuotes client, measured precisely: the
// replica runs in this process and the heap is measured after a full GC, so
// garbage of the flood does not count, only what the server keeps.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientReadableStream } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  startNats,
  startRedis,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { Quote, PriceServiceClient, type StreamQuotesResponse } from '@tickmesh/kit/proto';
import { createClient } from '@tickmesh/kit';
import { KEY } from '../src/redis-store.js';
import {
  connectTestNats,
  createTickStream,
  startReplica,
  testEnv,
  whenReady,
  type Replica,
} from './support.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMb = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1e6;
};

describe('a client that stops reading', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let redis: Redis;
  let replica: Replica;
  let client: PriceServiceClient;

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    await createTickStream(nc);
    redis = new Redis(redisServer.url);
    // Long slow timeout: the stream stays stalled for the whole flood.
    replica = await startReplica(testEnv(nats.url, redisServer.url, { STREAM_SLOW_TIMEOUT_MS: '120000' }));
    await whenReady(replica);
    client = createClient(PriceServiceClient, `127.0.0.1:${replica.grpcPort}`, {
      unaryDeadlineMs: 5000,
      service: 'tickmesh.price.v1.PriceService',
    });
  });

  after(async () => {
    client?.close();
    redis?.disconnect();
    await replica?.stop();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  it('keeps at most one quote per symbol for it: retained heap stays flat while 200,000 updates go by', async () => {
    const epoch = Number(await redis.get(KEY.epoch));
    const stalled: ClientReadableStream<StreamQuotesResponse> = client.streamQuotes({
      symbols: [],
      all: true,
      maxUpdatesPerSecond: 0,
    });
    let received = 0;
    stalled.on('data', () => {
      received++;
      stalled.pause(); // read the snapshot, then never again
    });
    stalled.on('error', () => undefined);
    await waitUntil(() => received > 0, { timeoutMs: 30_000, intervalMs: 50, what: 'snapshot' });
    const symbols = Array.from({ length: 2000 }, (_, i) => `SYN${String(i).padStart(4, '0')}`);
    const publishRound = async (round: number) => {
      for (const symbol of symbols) {
        nc.publish(
          `quotes.${symbol}`,
          Quote.encode(
            Quote.fromPartial({ symbol, seq: round, epoch, last: 10 + round / 100, volume: round }),
          ).finish(),
        );
      }
      await nc.flush();
    };
    // Warm up until the stream is stalled and its pending map has reached its
    // size: one entry per symbol (the mirror holds one per symbol too).
    let round = 0;
    while (replica.app.hub.pendingTotal() < symbols.length) {
      assert.ok(round < 300, `stream never stalled (pending ${replica.app.hub.pendingTotal()})`);
      await publishRound(++round);
      await sleep(10);
    }
    const base = heapMb();
    const samples: number[] = [];
    const last = round + 100;
    while (round < last) {
      await publishRound(++round);
      if (round % 20 === 0) samples.push(heapMb());
    }
    await waitUntil(() => replica.app.mirror.get(symbols.at(-1)!)?.quote.seq === last, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'the flood processed',
    });
    const end = heapMb();
    const growth = Math.max(...samples, end) - base;
    console.log(
      `# stalled stream: 200,000 updates; retained heap ${base.toFixed(1)} MB -> ${end.toFixed(1)} MB (max growth ${growth.toFixed(1)} MB); pending ${replica.app.hub.pendingTotal()}`,
    );
    assert.equal(replica.app.hub.pendingTotal(), symbols.length, 'one pending quote per symbol, the latest');
    // Buffering the updates would keep ~200,000 x (quote + frame) = tens of MB.
    assert.ok(growth < 8, `retained heap grew ${growth.toFixed(1)} MB`);
    stalled.cancel();
  });
});
