// PriceService over real gRPC against a price-cache process (real NATS and
// Redis): status codes for good and bad requests, StreamQuotes snapshot then
// strictly increasing updates, a client that stops reading (bounded server
// memory, RESOURCE_EXHAUSTED), and UNAVAILABLE for open streams on shutdown.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  freePort,
  healthClient,
  startNats,
  startRedis,
  waitForHealth,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import {
  BarInterval,
  Quote,
  PriceServiceClient,
  StreamQuotesResponse_Kind as Kind,
  type StreamQuotesRequest,
  type StreamQuotesResponse,
} from '@tickmesh/kit/proto';
import { createClient, projectRoot } from '@tickmesh/kit';
import { KEY } from '../src/redis-store.js';
import {
  connectTestNats,
  createTickStream,
  makeTicks,
  publishTicks,
  storedSeq,
  testEnv,
  waitForExactState,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'ZZZ1'];
const SERVICE = 'tickmesh.price.v1.PriceService';

function unary<Req, Res>(
  fn: (req: Req, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

async function code(p: Promise<unknown>): Promise<{ code: number; field?: string; details?: string }> {
  try {
    await p;
    return { code: status.OK };
  } catch (err) {
    const e = err as ServiceError;
    return {
      code: e.code,
      field: e.metadata?.get('tickmesh-field')[0] as string | undefined,
      details: e.details,
    };
  }
}

/** Collects a stream's messages; `ended` resolves with its final status code. */
function collect(call: ClientReadableStream<StreamQuotesResponse>) {
  const messages: StreamQuotesResponse[] = [];
  call.on('data', (m: StreamQuotesResponse) => messages.push(m));
  const ended = new Promise<number>((resolve) => {
    call.on('error', (e: ServiceError) => resolve(e.code));
    call.on('end', () => resolve(status.OK));
  });
  return { messages, ended };
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('PriceService over gRPC', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let redis: Redis;
  let child: ChildProcess;
  let client: PriceServiceClient;
  let metricsPort: number;
  const log: string[] = [];

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    await createTickStream(nc);
    redis = new Redis(redisServer.url);
    const grpcPort = await freePort();
    metricsPort = await freePort();
    child = spawn(process.execPath, ['--import', 'tsx', 'services/price-cache/src/main.ts'], {
      cwd: projectRoot(),
      env: {
        ...process.env,
        ...testEnv(nats.url, redisServer.url, {
          GRPC_PORT: String(grpcPort),
          METRICS_PORT: String(metricsPort),
          LOG_LEVEL: 'warn',
          STREAM_HEARTBEAT_MS: '500',
          STREAM_SLOW_TIMEOUT_MS: '3000',
        }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    const health = healthClient(`127.0.0.1:${grpcPort}`);
    await waitForHealth(health, SERVICE, 'SERVING', 60_000);
    health.close();
    client = createClient(PriceServiceClient, `127.0.0.1:${grpcPort}`, {
      unaryDeadlineMs: 5000,
      service: SERVICE,
    });
    await publishTicks(
      jetstream(nc),
      makeTicks({ producer: 'A', firstSeq: 1, n: 200, symbols: SYMBOLS, t0: T0 }),
    );
    await waitForExactState(nc, redis, 'initial ticks applied');
    // The mirror follows quotes.> shortly after Redis.
    await waitUntil(
      async () => (await unary(client.getQuote.bind(client), { symbol: 'THYAO' })).quote!.seq === 50,
      { timeoutMs: 30_000, intervalMs: 50, what: 'mirror current' },
    );
  });

  after(async () => {
    client?.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    redis?.disconnect();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  it('answers GetQuote, ListQuotes and GetBars', async () => {
    const q = (await unary(client.getQuote.bind(client), { symbol: 'GARAN' })).quote!;
    assert.equal(q.symbol, 'GARAN');
    assert.equal(q.seq, 50);
    assert.equal(q.epoch, Number(await redis.get(KEY.epoch)));
    assert.equal(String(q.last), q.last.toFixed(1).replace(/\.0$/, ''), 'price printed as its decimal');
    const list = await unary(client.listQuotes.bind(client), { symbols: ['THYAO', 'NOPE', 'ZZZ1', 'THYAO'] });
    assert.deepEqual(
      list.quotes.map((x) => x.symbol),
      ['THYAO', 'ZZZ1'],
    );
    assert.deepEqual(list.missing, ['NOPE']);
    const everything = await unary(client.listQuotes.bind(client), { symbols: [] });
    assert.deepEqual(everything.quotes.map((x) => x.symbol).sort(), [...SYMBOLS].sort());
    const bars = await unary(client.getBars.bind(client), {
      symbol: 'THYAO',
      interval: BarInterval.BAR_INTERVAL_SECOND,
      startTimeMs: T0 + 2000,
      endTimeMs: T0 + 6000,
      limit: 3,
    });
    assert.deepEqual(
      bars.bars.map((b) => b.startTimeMs),
      [T0 + 4000, T0 + 5000, T0 + 6000],
      'the most recent 3 of the inclusive range, oldest first',
    );
    const minute = await unary(client.getBars.bind(client), {
      symbol: 'THYAO',
      interval: BarInterval.BAR_INTERVAL_MINUTE,
      startTimeMs: 0,
      endTimeMs: 0,
      limit: 0,
    });
    const thyao = (await unary(client.getQuote.bind(client), { symbol: 'THYAO' })).quote!;
    assert.equal(
      minute.bars.reduce((n, b) => n + b.volume, 0),
      thyao.volume,
      'minute bars hold the day volume',
    );
  });

  it('rejects bad requests with the right codes, naming the field', async () => {
    const gq = client.getQuote.bind(client);
    assert.deepEqual(await code(unary(gq, { symbol: 'NOPE' })), {
      code: status.NOT_FOUND,
      field: undefined,
      details: 'symbol NOPE has no quote',
    });
    for (const symbol of ['', 'thyao', 'A.B', 'X'.repeat(17), "'; DROP TABLE"]) {
      const r = await code(unary(gq, { symbol }));
      assert.equal(r.code, status.INVALID_ARGUMENT, symbol);
      assert.equal(r.field, 'symbol');
    }
    const lq = client.listQuotes.bind(client);
    assert.equal(
      (await code(unary(lq, { symbols: Array.from({ length: 1001 }, (_, i) => `S${i}`) }))).field,
      'symbols',
    );
    assert.equal((await code(unary(lq, { symbols: ['THYAO', 'bad'] }))).field, 'symbols[1]');
    const gb = client.getBars.bind(client);
    const base = {
      symbol: 'THYAO',
      interval: BarInterval.BAR_INTERVAL_SECOND,
      startTimeMs: 0,
      endTimeMs: 0,
      limit: 0,
    };
    assert.equal(
      (await code(unary(gb, { ...base, interval: BarInterval.BAR_INTERVAL_UNSPECIFIED }))).field,
      'interval',
    );
    assert.equal((await code(unary(gb, { ...base, limit: 1001 }))).field, 'limit');
    assert.equal((await code(unary(gb, { ...base, startTimeMs: 10, endTimeMs: 5 }))).field, 'end_time_ms');
    assert.equal((await code(unary(gb, { ...base, symbol: 'NOPE' }))).code, status.NOT_FOUND);
    // Malformed protobuf bytes.
    const raw = await code(
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          `/${SERVICE}/GetQuote`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0x0a, 0xff, 0xff, 0xff]),
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      ),
    );
    assert.equal(raw.code, status.INVALID_ARGUMENT);
    for (const [req, field] of [
      [{ symbols: [], all: false, maxUpdatesPerSecond: 0 }, 'symbols'],
      [{ symbols: ['THYAO'], all: true, maxUpdatesPerSecond: 0 }, 'symbols'],
      [{ symbols: ['th'], all: false, maxUpdatesPerSecond: 0 }, 'symbols[0]'],
      [{ symbols: ['THYAO'], all: false, maxUpdatesPerSecond: 5000 }, 'max_updates_per_second'],
    ] as Array<[StreamQuotesRequest, string]>) {
      const { ended } = collect(client.streamQuotes(req));
      const c = await ended;
      assert.equal(c, status.INVALID_ARGUMENT, field);
    }
    // Still serving after all that.
    assert.equal((await unary(gq, { symbol: 'THYAO' })).quote!.symbol, 'THYAO');
  });

  it('StreamQuotes sends the snapshot, then updates with strictly increasing seq per symbol', async () => {
    const call = client.streamQuotes({ symbols: ['THYAO', 'GARAN'], all: false, maxUpdatesPerSecond: 0 });
    const { messages } = collect(call);
    await waitUntil(() => messages.length > 0, { timeoutMs: 30_000, intervalMs: 50, what: 'snapshot' });
    const epoch = Number(await redis.get(KEY.epoch));
    const snap = messages[0]!;
    assert.equal(snap.kind, Kind.KIND_SNAPSHOT);
    assert.deepEqual(snap.quotes.map((q) => `${q.symbol}@${q.seq}`).sort(), ['GARAN@50', 'THYAO@50']);
    await publishTicks(
      jetstream(nc),
      makeTicks({ producer: 'B', firstSeq: 1, n: 400, symbols: SYMBOLS, t0: T0 + 60_000 }),
    );
    const finalSeq = 150;
    await waitUntil(
      () => {
        const last = new Map<string, number>();
        for (const m of messages) for (const q of m.quotes) last.set(q.symbol, q.seq);
        return last.get('THYAO') === finalSeq && last.get('GARAN') === finalSeq;
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'updates up to the last tick' },
    );
    call.cancel();
    const seen = new Map<string, number>();
    let updates = 0;
    for (const m of messages) {
      assert.equal(m.epoch, epoch);
      assert.equal(m.heartbeatIntervalMs, 500);
      if (m.kind === Kind.KIND_HEARTBEAT) continue;
      assert.ok(m.kind === Kind.KIND_UPDATE || m === snap, `kind ${m.kind}`);
      for (const q of m.quotes) {
        assert.ok(q.symbol === 'THYAO' || q.symbol === 'GARAN', q.symbol);
        assert.ok(q.seq > (seen.get(q.symbol) ?? 0), `${q.symbol} seq ${q.seq} after ${seen.get(q.symbol)}`);
        if (m.kind === Kind.KIND_UPDATE) updates++;
        seen.set(q.symbol, q.seq);
      }
    }
    assert.ok(updates > 0);
    // The last streamed quote is the stored one.
    const stored = await storedSeq(redis, 'THYAO');
    assert.equal(seen.get('THYAO'), stored);
  });

  it('a client that stops reading: bounded server memory, then RESOURCE_EXHAUSTED', async () => {
    const epoch = Number(await redis.get(KEY.epoch));
    const stalled = client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 });
    const slow = collect(stalled);
    const healthy = collect(client.streamQuotes({ symbols: [], all: true, maxUpdatesPerSecond: 0 }));
    await waitUntil(() => slow.messages.length > 0 && healthy.messages.length > 0, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'snapshots',
    });
    stalled.pause();
    const heapBefore = await metric(metricsPort, 'nodejs_heap_size_used_bytes');
    // Flood quotes.> with synthetic updates of 2,000 symbols: far more than one client could take.
    const symbols = Array.from({ length: 2000 }, (_, i) => `SYN${String(i).padStart(4, '0')}`);
    let published = 0;
    let heapMax = heapBefore;
    let pendingMax = 0;
    const until = Date.now() + 4500;
    for (let round = 1; Date.now() < until; round++) {
      for (const symbol of symbols) {
        const q = Quote.fromPartial({
          symbol,
          seq: round,
          epoch,
          last: 10 + round / 100,
          eventTimeMs: Date.now(),
          volume: round,
        });
        nc.publish(`quotes.${symbol}`, Quote.encode(q).finish());
        published++;
      }
      await nc.flush();
      if (round % 5 === 0) {
        heapMax = Math.max(heapMax, await metric(metricsPort, 'nodejs_heap_size_used_bytes'));
        pendingMax = Math.max(pendingMax, await metric(metricsPort, 'tickmesh_price_stream_pending_quotes'));
      }
    }
    heapMax = Math.max(heapMax, await metric(metricsPort, 'nodejs_heap_size_used_bytes'));
    const growthMb = (heapMax - heapBefore) / 1e6;
    console.log(
      `# stalled stream: ${published} updates published in 4.5 s; server heap ${Math.round(heapBefore / 1e6)} MB -> max ${Math.round(heapMax / 1e6)} MB (+${growthMb.toFixed(1)} MB, mostly garbage of the flood); pending quotes max ${pendingMax}`,
    );
    // The bound: at most one waiting quote per symbol per stream (2 streams, 2,004 symbols) ...
    assert.ok(pendingMax <= 2 * (symbols.length + SYMBOLS.length), `pending ${pendingMax}`);
    // ... and no runaway heap (the precise, after-GC bound is in stream-memory.integration.test.ts;
    // this process's heap includes the flood's garbage).
    assert.ok(growthMb < 250, `server heap grew ${growthMb.toFixed(1)} MB`);
    await waitUntil(async () => (await metric(metricsPort, 'tickmesh_price_streams_slow_ended_total')) >= 1, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'the stalled stream to be ended',
    });
    stalled.resume();
    assert.equal(await slow.ended, status.RESOURCE_EXHAUSTED);
    // The reading client kept up, and got conflated updates at worst.
    const lastSyn = new Map<string, number>();
    for (const m of healthy.messages)
      for (const q of m.quotes) if (q.symbol.startsWith('SYN')) lastSyn.set(q.symbol, q.seq);
    assert.equal(lastSyn.size, symbols.length);
    const conflated = await metric(metricsPort, 'tickmesh_conflated_updates_total');
    console.log(`# conflated updates: ${conflated}`);
  });

  it('shutdown ends open streams with UNAVAILABLE', async () => {
    const s = collect(client.streamQuotes({ symbols: ['THYAO'], all: false, maxUpdatesPerSecond: 0 }));
    await waitUntil(() => s.messages.length > 0, { timeoutMs: 30_000, intervalMs: 50, what: 'snapshot' });
    child.kill('SIGTERM');
    assert.equal(await s.ended, status.UNAVAILABLE);
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    assert.equal(child.exitCode, 0, log.join('').slice(-2000));
  });
});
