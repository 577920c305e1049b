// Consume and apply against real NATS (JetStream) and Redis, private per test:
// resends and redeliveries applied once, one replica and two at once reach
// the same exact state, FLUSHALL is rebuilt (timed), and a Redis outage
// stops acks and heals by itself.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  healthClient,
  healthStatus,
  startNats,
  startRedis,
  waitForHealth,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { createClient, decodeBatch, partitionOf } from '@tickmesh/kit';
import { PriceServiceClient } from '@tickmesh/kit/proto';
import { Applier } from '../src/applier.js';
import {
  CheckpointStore,
  decodeCheckpoint,
  listedSegmentKeys,
  type CheckpointV2,
} from '../src/checkpoint.js';
import { CheckpointWriter } from '../src/checkpoint-writer.js';
import { KEY, RedisStore } from '../src/redis-store.js';
import {
  connectTestNats,
  createLogger,
  createTickStream,
  ctx,
  makeTicks,
  PARTITIONS,
  publishTicks,
  readStream,
  redisState,
  startReplica,
  testEnv,
  waitForExactState,
  whenReady,
  type Replica,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0); // 10:00 in Istanbul
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'EKGYO', 'ZZZ1'];

interface Env {
  nats: NatsTestServer;
  redisServer: RedisTestServer;
  nc: NatsConnection;
  js: JetStreamClient;
  redis: Redis;
  replicas: Replica[];
}

async function setUp(): Promise<Env> {
  const nats = await startNats();
  const redisServer = await startRedis();
  const nc = await connectTestNats(nats.url);
  await createTickStream(nc);
  const redis = new Redis(redisServer.url, {
    maxRetriesPerRequest: 1,
    retryStrategy: (n) => Math.min(n * 50, 500),
  });
  redis.on('error', () => undefined);
  return { nats, redisServer, nc, js: jetstream(nc), redis, replicas: [] };
}

async function tearDown(e: Env | undefined): Promise<void> {
  if (!e) return;
  for (const r of e.replicas) await r.stop().catch(() => undefined);
  e.redis.disconnect();
  await e.nc.close().catch(() => undefined);
  await e.nats.stop();
  await e.redisServer.stop();
}

async function metricValue(r: Replica, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await r.app.metrics[name as keyof typeof r.app.metrics].get();
  return m.values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
    )
    .reduce((a, v) => a + v.value, 0);
}

/** Takes messages off a durable consumer like a replica that dies before acking: they come back after ack_wait. */
async function stealAndDrop(e: Env, consumer: string, count: number, apply: boolean): Promise<number> {
  const store = new RedisStore(e.redis, { retention: { s: 60, m: 30 }, lateTickBoundMs: 5000 });
  const applier = new Applier(store, ctx, { observe: () => undefined }, { maxRetries: 5 });
  const c = await e.js.consumers.get('TICKS', consumer);
  let taken = 0;
  for (let i = 0; i < count * 10 && taken < count; i++) {
    let m;
    try {
      m = await c.next({ expires: 1000 });
    } catch (err) {
      // A pull that saw no heartbeat in time (a busy machine) is an empty pull: try again.
      if (/heartbeats missed/.test(String(err))) continue;
      throw err;
    }
    if (!m) continue;
    taken++;
    // Applied but never acked: the redelivery must not apply it again.
    if (apply) await applier.apply(Number(consumer.slice(-1)), m.seq, decodeBatch(m.data));
  }
  return taken;
}

describe('one replica: a known sequence with resends and redeliveries', () => {
  let e: Env | undefined;
  before(async () => {
    e = await setUp();
  });
  after(() => tearDown(e));

  it('applies every distinct tick once, in order, quotes and bars exact', async () => {
    const env = e!;
    const a = makeTicks({ producer: 'A', firstSeq: 1, n: 120, symbols: SYMBOLS, t0: T0 });
    const b = makeTicks({ producer: 'B', firstSeq: 1, n: 60, symbols: ['THYAO', 'EKGYO'], t0: T0 + 50 });
    // Publish before the replica starts: the durable consumers begin at the stream start.
    for (let i = 0; i < 60; i += 20) await publishTicks(env.js, a.slice(i, i + 20));
    const replica = await startReplica(testEnv(env.nats.url, env.redisServer.url));
    env.replicas.push(replica);
    await whenReady(replica);
    // A replica that takes messages and dies: some applied-but-unacked, some untouched.
    const stealing = Promise.all([
      stealAndDrop(env, 'price-cache-p0', 2, true),
      stealAndDrop(env, 'price-cache-p1', 1, false),
    ]);
    for (let i = 60; i < 120; i += 5) await publishTicks(env.js, a.slice(i, i + 5));
    for (let i = 0; i < 60; i += 5) await publishTicks(env.js, b.slice(i, i + 5));
    const stolen = (await stealing).reduce((x, y) => x + y, 0);
    // Resends: the same ticks re-batched (new message ids, so JetStream stores them) ...
    for (let i = 40; i < 100; i += 7)
      await publishTicks(env.js, a.slice(i, i + 7), { msgIdSuffix: '/resend' });
    // ... and one batch retried with its own id (JetStream drops it: duplicate window).
    const retried = await publishTicks(env.js, a.slice(100, 105));
    assert.ok(
      retried.every((p) => p.duplicate),
      'a retried batch with the same message id is stored once',
    );
    await publishTicks(env.js, b.slice(10, 30), { msgIdSuffix: '/resend2' });

    const expected = await waitForExactState(env.nc, env.redis, 'exact state after resends and redeliveries');
    // Independent spot checks (not from the reducer): seq and volume count each distinct tick once.
    const all = [...a, ...b];
    for (const s of SYMBOLS) {
      const mine = all.filter((t) => t.symbol === s);
      const got = expected.get(s)!.state!;
      assert.equal(got.seq, mine.length, `${s} seq`);
      assert.equal(
        got.volume,
        mine.reduce((n, t) => n + t.size, 0),
        `${s} volume`,
      );
      assert.equal(got.trades, mine.length, `${s} trades`);
    }
    const thyao = expected.get('THYAO')!.state!;
    const lastThyao = [...a, ...b]
      .filter((t) => t.symbol === 'THYAO')
      .sort((x, y) => x.eventTimeMs - y.eventTimeMs);
    assert.equal(thyao.high, Math.max(...lastThyao.map((t) => Math.round(t.price * 100))));
    assert.equal(thyao.prevClose, 28550, 'reference price of the universe');
    // Bars: the 1-minute bars hold every distinct tick's volume.
    const bars1m = expected.get('GARAN')!.bars1m.map((m) => Number(m.split(':')[5]));
    assert.equal(
      bars1m.reduce((x, y) => x + y, 0),
      expected.get('GARAN')!.state!.volume,
    );

    assert.ok(stolen > 0, 'some messages were taken by the dying replica');
    assert.ok(
      (await metricValue(replica, 'ticksSkipped', { reason: 'duplicate' })) > 0,
      'resends were dropped',
    );
    await waitUntil(async () => (await metricValue(replica, 'ticksSkipped', { reason: 'redelivered' })) > 0, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'a redelivery skipped',
    });
  });

  it('a redelivered message whose write already happened changes nothing (applier level)', async () => {
    const env = e!;
    const store = new RedisStore(env.redis, { retention: { s: 60, m: 30 }, lateTickBoundMs: 5000 });
    const applier = new Applier(store, ctx, { observe: () => undefined }, { maxRetries: 3 });
    const before = JSON.stringify([...(await redisState(env.redis))]);
    for (const m of (await readStream(env.nc)).slice(-5)) {
      const out = await applier.apply(partitionOf(m.ticks[0]!.symbol, PARTITIONS), m.seq, m.ticks);
      assert.equal(out.quotes.length, 0);
      assert.equal(out.wrote, false);
    }
    assert.equal(JSON.stringify([...(await redisState(env.redis))]), before);
  });
});

describe('lanes and the subject before lanes', () => {
  let e: Env | undefined;
  before(async () => {
    e = await setUp();
  });
  after(() => tearDown(e));

  it('updates a consumer of the pre-lane subject in place and applies both kinds of message', async () => {
    const env = e!;
    const jsm = await jetstreamManager(env.nc);
    // Durable consumers as a price-cache before lanes created them: one subject each.
    for (let n = 0; n < PARTITIONS; n++) {
      await jsm.consumers.add('TICKS', {
        durable_name: `price-cache-p${n}`,
        filter_subject: `ticks.${n}`,
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: 1,
      });
    }
    const a = makeTicks({ producer: 'old.writer', firstSeq: 1, n: 40, symbols: SYMBOLS, t0: T0 });
    const b = makeTicks({ producer: 'lane.writer', firstSeq: 1, n: 40, symbols: SYMBOLS, t0: T0 + 7 });
    for (let i = 0; i < 40; i += 10) {
      await publishTicks(env.js, a.slice(i, i + 10));
      await publishTicks(env.js, b.slice(i, i + 10), { lane: true });
    }
    const replica = await startReplica(testEnv(env.nats.url, env.redisServer.url));
    env.replicas.push(replica);
    await whenReady(replica);
    const expected = await waitForExactState(env.nc, env.redis, 'both subjects applied');
    for (const s of SYMBOLS) {
      const mine = [...a, ...b].filter((t) => t.symbol === s);
      assert.equal(expected.get(s)!.state!.trades, mine.length, `${s} trades`);
    }
    for (let n = 0; n < PARTITIONS; n++) {
      const info = await jsm.consumers.info('TICKS', `price-cache-p${n}`);
      assert.deepEqual([...(info.config.filter_subjects ?? [])].sort(), [`ticks.${n}`, `ticks.${n}.>`]);
    }
  });
});

describe('two replicas at once', () => {
  let e: Env | undefined;
  before(async () => {
    e = await setUp();
  });
  after(() => tearDown(e));

  it('end in exactly the state one replica reaches', async () => {
    const env = e!;
    const r1 = await startReplica(testEnv(env.nats.url, env.redisServer.url), 'r1');
    const r2 = await startReplica(testEnv(env.nats.url, env.redisServer.url), 'r2');
    env.replicas.push(r1, r2);
    await Promise.all([whenReady(r1), whenReady(r2)]);
    const a = makeTicks({ producer: 'A', firstSeq: 1, n: 400, symbols: SYMBOLS, t0: T0 });
    const b = makeTicks({ producer: 'B', firstSeq: 1, n: 200, symbols: ['THYAO', 'GARAN'], t0: T0 + 30 });
    for (let i = 0; i < 400; i += 10) {
      await publishTicks(env.js, a.slice(i, i + 10));
      if (i % 20 === 0) await publishTicks(env.js, b.slice(i / 2, i / 2 + 10));
      if (i % 50 === 0 && i > 0)
        await publishTicks(env.js, a.slice(i - 15, i + 3), { msgIdSuffix: '/resend' });
    }
    const expected = await waitForExactState(env.nc, env.redis, 'two replicas converge');
    assert.equal(expected.get('THYAO')!.state!.seq, [...a, ...b].filter((t) => t.symbol === 'THYAO').length);
    // Both took part: each handled (applied, or found applied) some messages.
    const handled1 = await metricValue(r1, 'messages');
    const handled2 = await metricValue(r2, 'messages');
    assert.ok(handled1 > 0 && handled2 > 0, `both replicas handled messages (${handled1}, ${handled2})`);

    // FLUSHALL while ticks flow: exactly one replica rebuilds, both end in the exact state.
    const rebuildsBefore = (await metricValue(r1, 'rebuilds')) + (await metricValue(r2, 'rebuilds'));
    const more = makeTicks({ producer: 'C', firstSeq: 1, n: 200, symbols: SYMBOLS, t0: T0 + 100_000 });
    for (let i = 0; i < 200; i += 10) {
      await publishTicks(env.js, more.slice(i, i + 10));
      if (i === 100) await env.redisServer.flushAll();
    }
    await waitForExactState(env.nc, env.redis, 'two replicas after FLUSHALL');
    const rebuildsAfter = (await metricValue(r1, 'rebuilds')) + (await metricValue(r2, 'rebuilds'));
    assert.equal(rebuildsAfter - rebuildsBefore, 1, 'one rebuild, by one replica');
    await Promise.all([whenReady(r1), whenReady(r2)]);
  });
});

describe('Redis is a cache', () => {
  let e: Env | undefined;
  let replica: Replica;
  before(async () => {
    e = await setUp();
    replica = await startReplica(testEnv(e.nats.url, e.redisServer.url));
    e.replicas.push(replica);
    await whenReady(replica);
  });
  after(() => tearDown(e));

  it('FLUSHALL is rebuilt from checkpoints plus the stream tail to the exact state', async () => {
    const env = e!;
    for (let i = 0; i < 10; i++)
      await publishTicks(
        env.js,
        makeTicks({ producer: 'A', firstSeq: 1 + i * 100, n: 100, symbols: SYMBOLS, t0: T0 }),
      );
    await waitForExactState(env.nc, env.redis, 'initial state');
    // Let a checkpoint round cover it, then add a tail that no checkpoint covers.
    const kvMarks = async () => {
      const kv = await new Kvm(env.js).open('tickmesh_checkpoints');
      const e2 = await kv.get('p.0');
      return e2 ? Number(e2.string()) : 0;
    };
    await waitUntil(async () => (await kvMarks()) > 0, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'a partition checkpoint',
    });
    // No more checkpoints from here: the tail below exists only in the stream.
    await replica.app.checkpointWriter()!.stop(false);
    for (let i = 10; i < 14; i++)
      await publishTicks(
        env.js,
        makeTicks({ producer: 'A', firstSeq: 1 + i * 100, n: 100, symbols: SYMBOLS, t0: T0 }),
      );
    await waitForExactState(env.nc, env.redis, 'state with tail');
    const epochBefore = await env.redis.get(KEY.epoch);
    const started = performance.now();
    await env.redisServer.flushAll();
    await waitForExactState(env.nc, env.redis, 'rebuilt state');
    const ms = performance.now() - started;
    const epochAfter = await env.redis.get(KEY.epoch);
    assert.notEqual(epochAfter, epochBefore, 'a rebuild sets a new epoch');
    const report = replica.app.rebuilder.lastReport!;
    console.log(
      `# FLUSHALL -> exact state in ${ms.toFixed(0)} ms (rebuild ${report.ms.toFixed(0)} ms, ${report.restored} checkpoints restored, ${report.replayedMessages} messages replayed)`,
    );
    assert.ok(report.restored > 0, 'checkpoints were used');
    assert.ok(report.replayedMessages > 0, 'the tail was replayed from the stream');
    assert.ok(ms < 30_000);
    // Quotes served after the rebuild carry the new epoch.
    await waitUntil(() => replica.app.notReadyReason() === undefined, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'ready again',
    });
    assert.equal(replica.app.mirror.get('THYAO')!.quote.epoch, Number(epochAfter));
  });

  it('while Redis is down: NOT_SERVING, UNAVAILABLE, nothing acked; then it heals by itself', async () => {
    const env = e!;
    const address = `127.0.0.1:${replica.grpcPort}`;
    const health = healthClient(address);
    const client = createClient(PriceServiceClient, address, {
      unaryDeadlineMs: 3000,
      service: 'tickmesh.price.v1.PriceService',
    });
    try {
      await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'SERVING');
      const jsm = await jetstreamManager(env.nc);
      await env.redisServer.stop();
      await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'NOT_SERVING');
      assert.equal(await healthStatus(health, ''), 'SERVING', 'liveness stays SERVING');
      assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
      const err = await new Promise<{ code?: number }>((resolve) =>
        client.getQuote({ symbol: 'THYAO' }, (e2) => resolve(e2 ?? {})),
      );
      assert.equal(err.code, status.UNAVAILABLE);
      const floorsBefore = await Promise.all(
        [0, 1, 2, 3].map((n) =>
          jsm.consumers.info('TICKS', `price-cache-p${n}`).then((i) => i.ack_floor.stream_seq),
        ),
      );
      await publishTicks(
        env.js,
        makeTicks({ producer: 'C', firstSeq: 1, n: 40, symbols: SYMBOLS, t0: T0 + 5000 }),
      );
      await sleep(2500);
      const infos = await Promise.all(
        [0, 1, 2, 3].map((n) => jsm.consumers.info('TICKS', `price-cache-p${n}`)),
      );
      assert.deepEqual(
        infos.map((i) => i.ack_floor.stream_seq),
        floorsBefore,
        'no ack while Redis is down',
      );
      assert.ok(
        infos.reduce((n, i) => n + i.num_pending + i.num_ack_pending, 0) > 0,
        'the new ticks wait in the stream',
      );
      // Redis comes back empty (no persistence): rebuild, then serve again.
      await env.redisServer.start();
      await waitForExactState(env.nc, env.redis, 'state after the outage', 60_000);
      await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'SERVING', 30_000);
      const q = await new Promise<{ quote?: { symbol: string; seq: number } }>((resolve, reject) =>
        client.getQuote({ symbol: 'THYAO' }, (e2, res) => (e2 ? reject(e2) : resolve(res))),
      );
      assert.equal(q.quote!.symbol, 'THYAO');
    } finally {
      health.close();
      client.close();
    }
  });
});

/** Keys of the checkpoint bucket under `filter`, sorted. */
async function kvKeys(kv: KV, filter: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys(filter)) out.push(k);
  return out.sort();
}

/** A symbol's record as the price-cache wrote it; it must be version 2. */
async function recordOf(kv: KV, symbol: string): Promise<CheckpointV2> {
  const entry = await kv.get(`q.${symbol}`);
  const cp = entry ? decodeCheckpoint(entry.value) : undefined;
  assert.equal(cp?.v, 2, `q.${symbol} is a version 2 record`);
  return cp as CheckpointV2;
}

describe('incremental checkpoints', () => {
  let e: Env | undefined;
  let replica: Replica;
  const SEGMENT_BARS = 10;
  before(async () => {
    e = await setUp();
    replica = await startReplica(
      testEnv(e.nats.url, e.redisServer.url, { CHECKPOINT_SEGMENT_BARS: String(SEGMENT_BARS) }),
    );
    e.replicas.push(replica);
    await whenReady(replica);
  });
  after(() => tearDown(e));

  it('seal final bars once, purge what retention dropped, and rebuild the exact state (v1 records too)', async () => {
    const env = e!;
    const writer = replica.app.checkpointWriter()!;
    const kv = await new Kvm(env.js).open('tickmesh_checkpoints');
    const round = async () => {
      // The periodic loop may hold the lease for a moment.
      await waitUntil(async () => (await writer.round()).skipped === undefined, {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: 'a checkpoint round',
      });
    };
    const keys = (filter: string) => kvKeys(kv, filter);
    // One tick per second of event time: each symbol ticks every 5 s, so 1-second
    // bars (60 retained) and 1-minute bars (30 retained) both outgrow their retention.
    for (let i = 0; i < 8; i++) {
      await publishTicks(
        env.js,
        makeTicks({ producer: 'A', firstSeq: 1 + i * 300, n: 300, symbols: SYMBOLS, t0: T0, stepMs: 1000 }),
      );
      await waitForExactState(env.nc, env.redis, `state after batch ${i}`);
      await round();
    }
    const listed: string[] = [];
    for (const symbol of SYMBOLS) {
      const entry = await kv.get(`q.${symbol}`);
      const cp = await recordOf(kv, symbol);
      assert.ok(cp.cs.length > 0 && cp.cm.length > 0, `${symbol}: both intervals have sealed segments`);
      // Open bars: fewer than a segment of final ones plus the 5 s late window.
      assert.ok(cp.s.length < SEGMENT_BARS + 7, `${symbol}: ${cp.s.length} open 1s bars`);
      assert.ok(cp.m.length < SEGMENT_BARS + 2, `${symbol}: ${cp.m.length} open 1m bars`);
      assert.ok(entry!.length < 4096, `${symbol}: the record is small (${entry!.length} bytes)`);
      listed.push(...listedSegmentKeys(cp));
      // Bounded by retention: 60/10 + 1 and 30/10 + 1 segments at most.
      assert.ok(
        cp.cs.length <= 7 && cp.cm.length <= 4,
        `${symbol}: ${cp.cs.length} + ${cp.cm.length} segments`,
      );
    }
    assert.deepEqual(await keys('c.>'), listed.sort(), 'every segment no checkpoint lists was purged');

    // A record in the old format (every bar inline) is still restored.
    const full = async (symbol: string) => ({
      v: 1,
      symbol,
      ss: Number(await env.redis.hget(KEY.quote(symbol), 'ss')),
      q: await env.redis.hgetall(KEY.quote(symbol)),
      w: await env.redis.hgetall(KEY.watermarks(symbol)),
      s: await env.redis.zrange(KEY.bars('s', symbol), '0', '-1'),
      m: await env.redis.zrange(KEY.bars('m', symbol), '0', '-1'),
    });
    await writer.stop(false);
    await kv.put('q.ZZZ1', JSON.stringify(await full('ZZZ1')));
    // A tail no checkpoint covers.
    await publishTicks(
      env.js,
      makeTicks({ producer: 'A', firstSeq: 2401, n: 200, symbols: SYMBOLS, t0: T0, stepMs: 1000 }),
    );
    await waitForExactState(env.nc, env.redis, 'state with tail');
    await env.redisServer.flushAll();
    await waitForExactState(env.nc, env.redis, 'rebuilt from segments, records and the tail');
    const report = replica.app.rebuilder.lastReport!;
    assert.equal(report.restored, SYMBOLS.length);
    assert.ok(report.segments > 0, 'segments were read back');
    assert.ok(report.replayedMessages > 0, 'the tail was replayed');

    // The next round turns the v1 record into a v2 one and sweeps the symbol's
    // segments it does not list (those of before, and a stray one).
    await kv.put('c.ZZZ1.s.5000.1', JSON.stringify({ v: 1, symbol: 'ZZZ1', i: 's', bars: [] }));
    await publishTicks(
      env.js,
      makeTicks({ producer: 'A', firstSeq: 2601, n: 50, symbols: SYMBOLS, t0: T0, stepMs: 1000 }),
    );
    await waitForExactState(env.nc, env.redis, 'state after the rebuild');
    await round();
    const zzz = await recordOf(kv, 'ZZZ1');
    assert.equal(zzz.lb, 5000);
    assert.deepEqual(await keys('c.ZZZ1.>'), listedSegmentKeys(zzz).sort(), 'no unlisted segment is left');
  });

  it('a symbol whose Redis state does not parse holds back its partition mark only', async () => {
    const env = e!;
    const writer = replica.app.checkpointWriter()!; // stopped above: rounds run only when called
    const kv = await new Kvm(env.js).open('tickmesh_checkpoints');
    const mark = async (n: number) => Number((await kv.get(`p.${n}`))?.string() ?? 0);
    await publishTicks(
      env.js,
      makeTicks({ producer: 'A', firstSeq: 2651, n: 50, symbols: SYMBOLS, t0: T0, stepMs: 1000 }),
    );
    await waitForExactState(env.nc, env.redis, 'state before the corruption');
    const bad = 'GARAN';
    const badPartition = partitionOf(bad, PARTITIONS);
    const others = new Set(SYMBOLS.filter((s) => s !== bad).map((s) => partitionOf(s, PARTITIONS)));
    others.delete(badPartition);
    assert.ok(others.size > 0, 'some symbol lives in another partition');
    const before = await Promise.all(Array.from({ length: PARTITIONS }, (_, n) => mark(n)));
    const good = await env.redis.hget(KEY.quote(bad), 'st');
    await env.redis.hset(KEY.quote(bad), 'st', 'not-a-state');
    try {
      const r = await writer.round();
      assert.equal(r.skipped, undefined);
      assert.equal(r.written, SYMBOLS.length - 1, 'every other symbol was checkpointed');
      assert.equal(await mark(badPartition), before[badPartition], 'its partition mark stayed');
      for (const n of others) assert.ok((await mark(n)) > before[n]!, `partition ${n} moved on`);
    } finally {
      await env.redis.hset(KEY.quote(bad), 'st', good!);
    }
  });

  it('another late-tick bound re-seals every symbol, sweeps the old segments, and rebuilds exactly', async () => {
    const env = e!;
    const kv = await new Kvm(env.js).open('tickmesh_checkpoints');
    const keys = () => kvKeys(kv, 'c.>');
    const oldKeys = (await keys()).filter((k) => k.includes('.5000.'));
    assert.ok(oldKeys.length > 0);
    // A replica restarted with LATE_TICK_BOUND_MS=9000: bars sealed under 5 s may change now.
    const writer = new CheckpointWriter({
      store: replica.app.store,
      checkpoints: await CheckpointStore.open(env.js, 'tickmesh_checkpoints', 1),
      partitions: PARTITIONS,
      intervalMs: 300,
      segmentBars: SEGMENT_BARS,
      lateTickBoundMs: 9000,
      token: 'bound-test',
      logger: createLogger('price-cache-test', 'error'),
      metrics: replica.app.metrics,
    });
    await publishTicks(
      env.js,
      makeTicks({ producer: 'A', firstSeq: 2701, n: 50, symbols: SYMBOLS, t0: T0, stepMs: 1000 }),
    );
    await waitForExactState(env.nc, env.redis, 'state before the new bound');
    const r = await writer.round();
    assert.equal(r.written, SYMBOLS.length);
    const through = new Map<string, number>();
    for (const symbol of SYMBOLS) {
      const cp = await recordOf(kv, symbol);
      assert.equal(cp.lb, 9000, `${symbol} re-sealed`);
      through.set(`${symbol}.s`, cp.cs.at(-1)?.[1] ?? -1);
      through.set(`${symbol}.m`, cp.cm.at(-1)?.[1] ?? -1);
    }
    const left = (await keys()).filter((k) => k.includes('.5000.'));
    assert.ok(left.length < oldKeys.length, `old segments swept (${oldKeys.length} -> ${left.length})`);
    for (const k of left) {
      // Only above the new last sealed bar may one stay (a concurrent writer could be sealing there).
      const [, symbol, i, , from] = k.split('.');
      assert.ok(Number(from) > through.get(`${symbol}.${i}`)!, `${k} is above what the new record seals`);
    }
    await env.redisServer.flushAll();
    await waitForExactState(env.nc, env.redis, 'rebuilt from re-sealed segments');
  });

  it('a record that does not decode: its partition is replayed from the start, the state exact', async () => {
    const env = e!;
    const kv = await new Kvm(env.js).open('tickmesh_checkpoints');
    await kv.put('q.ZZZ1', JSON.stringify({ v: 9, symbol: 'ZZZ1' }));
    await env.redisServer.flushAll();
    await waitForExactState(env.nc, env.redis, 'rebuilt around an unreadable record');
    const report = replica.app.rebuilder.lastReport!;
    assert.equal(report.restored, SYMBOLS.length - 1);
    const p = partitionOf('ZZZ1', PARTITIONS);
    const inPartition = (await readStream(env.nc)).filter((m) =>
      m.ticks.some((t) => partitionOf(t.symbol, PARTITIONS) === p),
    ).length;
    assert.ok(
      report.replayedMessages >= inPartition,
      `partition ${p} replayed from the start (${report.replayedMessages} >= ${inPartition})`,
    );
  });
});

describe('NATS outage', () => {
  let e: Env | undefined;
  let replica: Replica;
  before(async () => {
    e = await setUp();
    replica = await startReplica(testEnv(e.nats.url, e.redisServer.url));
    e.replicas.push(replica);
    await whenReady(replica);
  });
  after(() => tearDown(e));

  it('NOT_SERVING while NATS is down, then consumes again by itself', async () => {
    const env = e!;
    await publishTicks(env.js, makeTicks({ producer: 'A', firstSeq: 1, n: 100, symbols: SYMBOLS, t0: T0 }));
    await waitForExactState(env.nc, env.redis, 'before the outage');
    const health = healthClient(`127.0.0.1:${replica.grpcPort}`);
    try {
      await env.nats.stop();
      await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'NOT_SERVING');
      assert.equal(await healthStatus(health, ''), 'SERVING');
      await env.nats.start();
      await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'SERVING', 60_000);
      // The test's own connection reconnects too; publish after the outage.
      await waitUntil(
        async () =>
          (
            await publishTicks(
              env.js,
              makeTicks({ producer: 'B', firstSeq: 1, n: 100, symbols: SYMBOLS, t0: T0 + 20_000 }),
            )
          ).length > 0,
        { timeoutMs: 30_000, intervalMs: 500, what: 'publish after the outage' },
      );
      await waitForExactState(env.nc, env.redis, 'after the outage', 60_000);
    } finally {
      health.close();
    }
  });
});
