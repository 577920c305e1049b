// Shared by the price-cache integration tests and benchmarks: the tick stream
// the ticker would create, a tick publisher (plain JetStream client, as the
// contract says), in-process replicas, the expected state computed by the
// pure reducer from what the stream holds, and Redis read back in the same form.
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  parseConfig,
  createLogger,
  loadUniverse,
  defaultInstrument,
  createServiceKit,
  serveGrpc,
  type RunningGrpcService,
  batchMessageId,
  decodeBatch,
  encodeBatch,
  partitionOf,
  laneSubject,
  tickSubject,
} from '@tickmesh/kit';
import type { Tick } from '@tickmesh/kit/proto';
import { waitUntil } from '@tickmesh/harness';
import { createPriceCache, type PriceCache } from '../src/app.js';
import { priceCacheConfigSpec, type PriceCacheConfig } from '../src/config.js';
import { PRICE_SERVICE_NAME } from '../src/price-service.js';
import {
  applyMessage,
  makeDayOf,
  newView,
  symbolsOf,
  type ReducerContext,
  type SymbolView,
} from '../src/reducer.js';
import { KEY } from '../src/redis-store.js';
import { decodeQuoteState, encodeBar, type QuoteState } from '../src/state.js';

export const universe = loadUniverse('bist30');
export const PARTITIONS = 4;

/** Settings that make tests quick: short waits, frequent checkpoints. */
export function testEnv(
  natsUrl: string,
  redisUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NATS_URL: natsUrl,
    REDIS_URL: redisUrl,
    GRPC_PORT: '0',
    GRPC_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    TICK_PARTITIONS: String(PARTITIONS),
    CONSUMER_ACK_WAIT_MS: '2000',
    RETRY_DELAY_MS: '200',
    CHECKPOINT_INTERVAL_MS: '300',
    EPOCH_POLL_MS: '100',
    HEALTH_CHECK_INTERVAL_MS: '200',
    SETUP_RETRY_MS: '200',
    REBUILD_LOCK_TTL_MS: '3000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    BARS_1S_RETENTION: '60',
    BARS_1M_RETENTION: '30',
    ...extra,
  };
}

export function testConfig(env: Record<string, string>): PriceCacheConfig {
  return parseConfig(priceCacheConfigSpec, env);
}

export async function connectTestNats(url: string): Promise<NatsConnection> {
  return connect({ servers: url, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
}

/** The stream as the ticker creates it. */
export async function createTickStream(nc: NatsConnection, name = 'TICKS'): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name,
    subjects: ['ticks.>'],
    storage: 'file' as never,
    duplicate_window: 120_000_000_000,
  });
}

export interface Published {
  seq: number;
  partition: number;
  ticks: Tick[];
  duplicate: boolean;
}

/**
 * Publishes ticks of one producer as batches per partition, with the
 * contract's message ids, on the pre-lane subject `ticks.<n>` (as writers
 * before lanes did) or, with `lane`, on the producer's lane subject.
 */
export async function publishTicks(
  js: JetStreamClient,
  ticks: Tick[],
  opts: { msgIdSuffix?: string; lane?: boolean } = {},
): Promise<Published[]> {
  const byPartition = new Map<number, Tick[]>();
  for (const t of ticks) {
    const p = partitionOf(t.symbol, PARTITIONS);
    const list = byPartition.get(p) ?? [];
    list.push(t);
    byPartition.set(p, list);
  }
  const out: Published[] = [];
  for (const [partition, list] of byPartition) {
    const id =
      batchMessageId(list[0]!.producerId, partition, list[0]!.producerSeq, list.at(-1)!.producerSeq) +
      (opts.msgIdSuffix ?? '');
    const subject = opts.lane ? laneSubject(partition, list[0]!.producerId) : tickSubject(partition);
    const ack = await js.publish(subject, encodeBatch(list), { msgID: id });
    out.push({ seq: ack.seq, partition, ticks: list, duplicate: ack.duplicate });
  }
  return out;
}

export const ctx: ReducerContext = {
  instrumentOf: (s) => universe.bySymbol.get(s) ?? defaultInstrument(s),
  dayOf: makeDayOf(universe.session.timeZone),
  lateTickBoundMs: 5000,
  maxProducersPerSymbol: 256,
};

/** Every message of the stream, in stream order. */
export async function readStream(
  nc: NatsConnection,
  stream = 'TICKS',
): Promise<Array<{ seq: number; ticks: Tick[] }>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  const out: Array<{ seq: number; ticks: Tick[] }> = [];
  if (info.state.messages === 0) return out;
  const c = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const msgs = await c.consume({ max_messages: 1000 });
  for await (const m of msgs) {
    out.push({ seq: m.seq, ticks: decodeBatch(m.data) });
    if (m.seq >= last) break;
  }
  await msgs.close();
  return out;
}

export interface SymbolSnapshot {
  state: Omit<QuoteState, 'appliedTimeMs'> | undefined;
  watermarks: Record<string, string>;
  bars1s: string[];
  bars1m: string[];
}

/** The state one replica applying the whole stream must reach (retention applied as Redis trims). */
export function expectedState(
  messages: Array<{ seq: number; ticks: Tick[] }>,
  retention = { s: 60, m: 30 },
): Map<string, SymbolSnapshot> {
  const views = new Map<string, SymbolView>();
  for (const m of messages) {
    for (const s of symbolsOf(m.ticks)) if (!views.has(s)) views.set(s, newView(s));
    applyMessage(views, m.ticks, m.seq, ctx, 0);
  }
  const out = new Map<string, SymbolSnapshot>();
  for (const [symbol, v] of views) {
    if (!v.state) continue;
    const { appliedTimeMs: _a, ...state } = v.state;
    const bars = (i: 's' | 'm', keep: number) =>
      [...v.bars[i].values()]
        .sort((a, b) => a.start - b.start)
        .slice(-keep)
        .map(encodeBar);
    out.set(symbol, {
      state,
      watermarks: Object.fromEntries([...v.watermarks].map(([p, w]) => [p, `${w.seq}:${w.ss}`]).sort()),
      bars1s: bars('s', retention.s),
      bars1m: bars('m', retention.m),
    });
  }
  return out;
}

/** What Redis holds, in the same form as expectedState. */
export async function redisState(redis: Redis): Promise<Map<string, SymbolSnapshot>> {
  const symbols = (await redis.smembers(KEY.symbols)).sort();
  const out = new Map<string, SymbolSnapshot>();
  for (const s of symbols) {
    const decoded = decodeQuoteState(await redis.hgetall(KEY.quote(s)), s);
    if (!decoded) continue;
    const { appliedTimeMs: _a, ...state } = decoded;
    const w = await redis.hgetall(KEY.watermarks(s));
    out.set(s, {
      state,
      watermarks: Object.fromEntries(Object.entries(w).sort()),
      bars1s: await redis.zrange(KEY.bars('s', s), '0', '-1'),
      bars1m: await redis.zrange(KEY.bars('m', s), '0', '-1'),
    });
  }
  return out;
}

/** The per-symbol seq stored in Redis (0 when the symbol has no quote). */
export async function storedSeq(redis: Redis, symbol: string): Promise<number> {
  return decodeQuoteState(await redis.hgetall(KEY.quote(symbol)), symbol)?.seq ?? 0;
}

export function sortedMap<T>(m: Map<string, T>): Array<[string, T]> {
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** Waits until Redis equals the state expected from the stream; returns it. */
export async function waitForExactState(
  nc: NatsConnection,
  redis: Redis,
  what: string,
  timeoutMs = 60_000,
  retention?: { s: number; m: number },
): Promise<Map<string, SymbolSnapshot>> {
  const expected = expectedState(await readStream(nc), retention);
  let last: Map<string, SymbolSnapshot> | undefined;
  try {
    await waitUntil(
      async () => {
        if ((await redis.get(KEY.epoch)) === null) return false;
        last = await redisState(redis);
        return JSON.stringify(sortedMap(last)) === JSON.stringify(sortedMap(expected));
      },
      { timeoutMs, what },
    );
  } catch (err) {
    const diff = sortedMap(expected)
      .filter(([s, e]) => JSON.stringify(last?.get(s)) !== JSON.stringify(e))
      .slice(0, 3)
      .map(
        ([s, e]) =>
          `${s}:\n expected ${JSON.stringify(e.state)} seq\n actual   ${JSON.stringify(last?.get(s)?.state)}`,
      );
    throw new Error(`${(err as Error).message}\n${diff.join('\n')}`, { cause: err });
  }
  return expected;
}

export interface Replica {
  app: PriceCache;
  running: RunningGrpcService;
  nc: NatsConnection;
  redis: Redis;
  grpcPort: number;
  stop(): Promise<void>;
}

/** One price-cache replica in this process, with its own connections, on a free gRPC port. */
export async function startReplica(env: Record<string, string>, id?: string): Promise<Replica> {
  const config = testConfig(env);
  const kit = createServiceKit('price-cache', config);
  const nc = await connectTestNats(config.NATS_URL);
  const redis = new Redis(config.REDIS_URL, {
    connectTimeout: 2000,
    commandTimeout: 2000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (n) => Math.min(50 * n, 500),
  });
  redis.on('error', () => undefined);
  const app = createPriceCache({
    config,
    nc,
    redis,
    logger: kit.logger,
    registry: kit.registry,
    universe,
    id,
  });
  const running = await serveGrpc({
    kit,
    config,
    grpcPort: 0,
    services: [PRICE_SERVICE_NAME],
    checks: app.checks,
    register: app.register,
    handleSignals: false,
  });
  app.start();
  let stopped: Promise<void> | undefined;
  return {
    app,
    running,
    nc,
    redis,
    grpcPort: running.grpcPort,
    stop: () =>
      (stopped ??= (async () => {
        await running.stop();
        await app.stop();
        await nc.close();
        redis.disconnect();
      })()),
  };
}

/** Waits until the replica serves (stream set up, epoch known, mirror loaded, dependencies up). */
export function whenReady(r: Replica, timeoutMs = 30_000): Promise<true> {
  return waitUntil(() => r.app.notReadyReason() === undefined, {
    timeoutMs,
    intervalMs: 50,
    what: `replica ready (${r.app.notReadyReason()})`,
  });
}

/** Ticks with controlled content: `n` ticks over `symbols`, one producer, event times 100 ms apart. */
export function makeTicks(opts: {
  producer: string;
  firstSeq: number;
  n: number;
  symbols: string[];
  t0: number;
  priceStep?: number;
  /** Event time between consecutive ticks (default 100 ms). */
  stepMs?: number;
}): Tick[] {
  const out: Tick[] = [];
  for (let i = 0; i < opts.n; i++) {
    const symbol = opts.symbols[i % opts.symbols.length]!;
    const inst = ctx.instrumentOf(symbol);
    const steps = ((i * 7) % 23) - 11;
    const reference = inst.referencePrice > 0 ? inst.referencePrice : 50; // symbols outside the universe
    const price = Number((reference + steps * inst.tickSize * (opts.priceStep ?? 1)).toFixed(inst.decimals));
    out.push({
      symbol,
      price,
      size: 1 + ((i * 13) % 50),
      producerId: opts.producer,
      producerSeq: opts.firstSeq + i,
      eventTimeMs: opts.t0 + (opts.firstSeq + i) * (opts.stepMs ?? 100),
      bid: i % 3 === 0 ? Number((price - inst.tickSize).toFixed(inst.decimals)) : undefined,
      ask: i % 3 === 0 ? Number((price + inst.tickSize).toFixed(inst.decimals)) : undefined,
    });
  }
  return out;
}

export { createLogger };
