// Assembles one price-cache replica from its connections: store, reducer
// context, epoch tracking and rebuild, checkpoints, per-partition consumers,
// the quote mirror and fan-out, PriceService, and the health checks. main.ts
// hands it the clients and the server; tests run several of these in one
// process against the same NATS and Redis.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import {
  ConfigError,
  redisCheck,
  natsCheck,
  defaultInstrument,
  type Instrument,
  type Universe,
  quoteSubject,
  PARTITIONS_METADATA_KEY,
} from '@tickmesh/kit';
import { Quote } from '@tickmesh/kit/proto';
import type { GrpcServer, DependencyCheck, Logger } from '@tickmesh/kit';
import { Applier } from './applier.js';
import { CheckpointStore } from './checkpoint.js';
import { CheckpointWriter } from './checkpoint-writer.js';
import type { PriceCacheConfig } from './config.js';
import { EpochTracker } from './epoch.js';
import { QuoteHub, RESET_SUBJECT } from './fanout.js';
import { createPriceCacheMetrics, type PriceCacheMetrics } from './metrics.js';
import { QuoteMirror } from './mirror.js';
import { PartitionConsumer } from './partition-consumer.js';
import { PriceServiceHandlers, registerPriceService } from './price-service.js';
import { Rebuilder } from './rebuild.js';
import { makeDayOf, type ReducerContext } from './reducer.js';
import { RedisStore } from './redis-store.js';
import { TickStream } from './tick-stream.js';

/** How often a replica compares the tick stream's identity with the one the cache refers to. */
const STREAM_CHECK_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checks whose last result gates reads (with the cache state). */
const DEPENDENCIES = ['redis', 'nats', 'ticks-stream'] as const;

export interface PriceCacheDeps {
  config: PriceCacheConfig;
  nc: NatsConnection;
  redis: Redis;
  logger: Logger;
  registry: Registry;
  universe: Universe;
  /** Identifies this replica in locks and logs. */
  id?: string;
  /**
   * Called when the configuration contradicts the stream (another partition
   * count); main.ts exits 2. Without it the replica logs and stays not ready.
   */
  onConfigError?: (err: ConfigError) => void;
}

export interface PriceCache {
  register(server: GrpcServer): void;
  checks: DependencyCheck[];
  /** Starts the background work: setup (waits for the stream), epoch, consumers, checkpoints. */
  start(): void;
  stop(): Promise<void>;
  /** Undefined when ready to serve, else why not. */
  notReadyReason(): string | undefined;
  readonly id: string;
  readonly store: RedisStore;
  readonly epochs: EpochTracker;
  readonly mirror: QuoteMirror;
  readonly hub: QuoteHub;
  readonly rebuilder: Rebuilder;
  readonly metrics: PriceCacheMetrics;
  checkpointWriter(): CheckpointWriter | undefined;
  /** Resolves when the stream exists, consumers are set up and the KV bucket is open. */
  readonly setUp: Promise<void>;
}

export function createPriceCache(deps: PriceCacheDeps): PriceCache {
  const { config, nc, redis, logger } = deps;
  const id = deps.id ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  // The gauge reads the hub (made below) only when scraped.
  const metrics = createPriceCacheMetrics(deps.registry, { streamPending: () => hub.pendingTotal() });
  const tickStream = new TickStream(nc, config.TICKS_STREAM, logger);
  const js = tickStream.js;
  const instrumentOf = (symbol: string): Instrument =>
    deps.universe.bySymbol.get(symbol) ?? defaultInstrument(symbol);
  const ctx: ReducerContext = {
    instrumentOf,
    dayOf: makeDayOf(deps.universe.session.timeZone),
    lateTickBoundMs: config.LATE_TICK_BOUND_MS,
    maxProducersPerSymbol: config.MAX_PRODUCERS_PER_SYMBOL,
  };
  const store = new RedisStore(redis, {
    retention: { s: config.BARS_1S_RETENTION, m: config.BARS_1M_RETENTION },
    lateTickBoundMs: config.LATE_TICK_BOUND_MS,
  });
  let checkpoints: CheckpointStore | undefined;
  let writer: CheckpointWriter | undefined;
  const rebuilder = new Rebuilder({
    store,
    checkpoints: () => checkpoints,
    ticks: tickStream,
    ctx,
    partitions: config.TICK_PARTITIONS,
    lockTtlMs: config.REBUILD_LOCK_TTL_MS,
    timeoutMs: config.REBUILD_TIMEOUT_MS,
    token: id,
    logger,
    metrics,
    publishReset: (epoch) => nc.publish(RESET_SUBJECT, epoch),
  });
  const epochs = new EpochTracker({
    getEpoch: () => store.getEpoch(),
    rebuilder,
    pollMs: config.EPOCH_POLL_MS,
    logger,
  });
  const mirror = new QuoteMirror({
    readStates: (symbols) => store.readQuoteStates(symbols),
    listSymbols: () => store.symbols(),
    decimalsOf: (s) => instrumentOf(s).decimals,
  });
  const hub = new QuoteHub(mirror, {
    onUnknownEpoch: () => epochs.checkNow(),
    onMalformed: () => metrics.malformedQuotes.inc(),
  });
  const applier = new Applier(store, ctx, epochs, {
    maxRetries: config.APPLY_MAX_RETRIES,
    onConflict: () => metrics.conflicts.inc(),
    onRolledBack: (partition, position, expectedAtLeast) => {
      metrics.rollbacks.inc();
      logger.error(
        { partition, position, expectedAtLeast },
        'Redis went back in time (restored from an older copy): rebuilding under a new epoch',
      );
    },
  });
  const handlers = new PriceServiceHandlers({
    mirror,
    hub,
    store,
    notReadyReason: () => notReadyReason(),
    decimalsOf: (s) => instrumentOf(s).decimals,
    metrics,
    stream: {
      heartbeatMs: config.STREAM_HEARTBEAT_MS,
      slowTimeoutMs: config.STREAM_SLOW_TIMEOUT_MS,
      maxPending: config.STREAM_MAX_PENDING,
      maxQuotesPerMessage: config.STREAM_MAX_QUOTES_PER_MESSAGE,
      maxStreams: config.MAX_STREAMS,
    },
  });

  let stopped = false;
  let setupDone = false;
  let misconfigured: string | undefined;
  let subscription: Subscription | undefined;
  const consumers: PartitionConsumer[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let streamTimer: NodeJS.Timeout | undefined;
  let rebasing: Promise<unknown> | undefined;
  let resolveSetUp: () => void = () => undefined;
  const setUp = new Promise<void>((resolve) => (resolveSetUp = resolve));

  // Dependency checks also record their last result for notReadyReason().
  const up = new Map<string, boolean>();
  const tracked = (c: DependencyCheck): DependencyCheck => ({
    ...c,
    check: async () => {
      try {
        await c.check();
        up.set(c.name, true);
      } catch (err) {
        up.set(c.name, false);
        throw err;
      }
    },
  });
  const cacheProblem = (): string | undefined => {
    if (misconfigured) return misconfigured;
    if (!setupDone) return 'waiting for the tick stream';
    const epoch = epochs.current();
    if (epoch === undefined)
      return epochs.isRebuilding ? 'cache rebuilding' : 'cache epoch missing (rebuild pending)';
    if (mirror.loadedEpoch !== Number(epoch)) return 'loading quotes';
    return undefined;
  };
  const checks: DependencyCheck[] = [
    tracked(redisCheck(redis)),
    tracked(natsCheck(nc)),
    tracked({
      name: 'ticks-stream',
      timeoutMs: 1500,
      check: async () => {
        if (!(await tickStream.exists())) throw new Error(`stream ${config.TICKS_STREAM} does not exist`);
      },
    }),
    tracked({
      name: 'cache',
      check: async () => {
        const problem = cacheProblem();
        if (problem) throw new Error(problem);
      },
    }),
  ];
  function notReadyReason(): string | undefined {
    if (stopped) return 'shutting down';
    if (redis.status !== 'ready') return 'redis unavailable';
    if (nc.isClosed()) return 'nats unavailable';
    for (const name of DEPENDENCIES) if (up.get(name) !== true) return `${name} unavailable`;
    return cacheProblem();
  }

  const publishQuotes = (quotes: Quote[]) => {
    for (const q of quotes) nc.publish(quoteSubject(q.symbol), Quote.encode(q).finish());
  };

  epochs.onChange(async (epoch) => {
    const e = Number(epoch);
    // Retry the load until it succeeds or the epoch moves on (Redis may be down).
    while (!stopped && epochs.current() === epoch) {
      try {
        await mirror.reload(e);
        break;
      } catch (err) {
        metrics.redisErrors.inc({ op: 'mirror' });
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'mirror load failed: retrying',
        );
        await new Promise((r) => setTimeout(r, config.RETRY_DELAY_MS));
      }
    }
    if (mirror.loadedEpoch === e) hub.resetAll(e);
  });

  /**
   * Whether the cache's state refers to the tick stream as it is now (or a
   * rebuild is due, which records it). A re-created stream (another creation
   * time than the one kept beside the epoch) moves the cache onto it under a
   * new epoch; false until that is done.
   */
  async function streamIsCurrent(): Promise<boolean> {
    const facts = await tickStream.facts();
    if (!facts) throw new Error(`stream ${config.TICKS_STREAM} does not exist`);
    const [known, epoch] = await Promise.all([store.getStream(), store.getEpoch()]);
    if (epoch === null || known === facts.created) return true;
    if (known === null) {
      await store.adoptStream(facts.created);
      return false; // looked at again on the next pass
    }
    rebasing ??= rebuilder
      .rebase(facts.created, epochs.current())
      .then((e) => {
        if (e !== undefined) epochs.observe(e);
      })
      .catch((err: unknown) =>
        logger.error({ err }, 'moving onto the re-created tick stream failed: will retry'),
      )
      .finally(() => (rebasing = undefined));
    await rebasing;
    return false;
  }

  /**
   * A Redis whose positions are below the checkpoint marks of the same
   * stream went back in time (restored from an older copy while no replica
   * ran): drop its epoch, so it is rebuilt. A clean failover is at or above.
   */
  async function behindCheckpoints(cp: CheckpointStore): Promise<void> {
    const [epoch, sid, marks] = await Promise.all([store.getEpoch(), store.getStream(), cp.getStream()]);
    if (epoch === null || (sid !== null && marks !== undefined && marks.stream !== sid)) return;
    const positions = await store.partitionSeqs(config.TICK_PARTITIONS);
    for (let n = 0; n < config.TICK_PARTITIONS; n++) {
      const mark = (await cp.getPartition(n))?.seq ?? 0;
      const position = positions[n] ?? 0;
      if (position >= mark) continue;
      if (await store.dropEpoch(epoch)) {
        metrics.rollbacks.inc();
        logger.error(
          { partition: n, position, checkpoint: mark },
          'Redis is behind the checkpoints (restored from an older copy): rebuilding under a new epoch',
        );
      }
      return;
    }
  }

  /** Holds a partition's consumption until the cache refers to the stream as it is now. */
  async function streamGate(): Promise<void> {
    while (!stopped && !(await streamIsCurrent())) await sleep(config.RETRY_DELAY_MS);
  }

  async function setup(): Promise<void> {
    let logged = false;
    while (!stopped) {
      try {
        const facts = await tickStream.facts();
        if (facts) {
          if (facts.partitions !== undefined && facts.partitions !== config.TICK_PARTITIONS) {
            const err = new ConfigError([
              `TICK_PARTITIONS=${config.TICK_PARTITIONS} but stream ${config.TICKS_STREAM} is partitioned ` +
                `${facts.partitions} ways (metadata ${PARTITIONS_METADATA_KEY}=${facts.partitions}); ` +
                `use ${facts.partitions} or change the count (docs/operations.md)`,
            ]);
            misconfigured = err.problems[0];
            logger.fatal({ problem: misconfigured }, 'partition count differs from the stream');
            deps.onConfigError?.(err);
            return;
          }
          await streamGate(); // a re-created stream is moved onto before anything is consumed
          await tickStream.ensureConsumers(config.TICK_PARTITIONS, {
            prefix: config.CONSUMER_PREFIX,
            ackWaitMs: config.CONSUMER_ACK_WAIT_MS,
          });
          checkpoints = await CheckpointStore.open(js, config.CHECKPOINT_BUCKET, config.CHECKPOINT_REPLICAS);
          await behindCheckpoints(checkpoints);
          setupDone = true;
          logger.info({ stream: config.TICKS_STREAM, partitions: config.TICK_PARTITIONS }, 'consumers ready');
          return;
        }
        if (!logged)
          logger.warn(
            { stream: config.TICKS_STREAM },
            'tick stream does not exist yet: waiting for the ticker to create it',
          );
        logged = true;
      } catch (err) {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'setup failed: retrying');
      }
      await new Promise((r) => setTimeout(r, config.SETUP_RETRY_MS));
    }
  }

  function startBackground(): void {
    epochs.start();
    for (let n = 0; n < config.TICK_PARTITIONS; n++) {
      const settings = { prefix: config.CONSUMER_PREFIX, ackWaitMs: config.CONSUMER_ACK_WAIT_MS };
      const c = new PartitionConsumer({
        js,
        stream: config.TICKS_STREAM,
        consumerName: tickStream.consumerName(config.CONSUMER_PREFIX, n),
        partition: n,
        // A consumer found missing may be missing because the stream was
        // re-created: nothing of a new stream is consumed before the cache moved onto it.
        ensureConsumer: async () => {
          await streamGate();
          await tickStream.ensureConsumer(n, settings);
        },
        applier,
        epochs,
        publish: publishQuotes,
        metrics,
        logger,
        retryDelayMs: config.RETRY_DELAY_MS,
        ackWaitMs: config.CONSUMER_ACK_WAIT_MS,
      });
      consumers.push(c);
      c.start();
    }
    writer = new CheckpointWriter({
      store,
      checkpoints: checkpoints!,
      partitions: config.TICK_PARTITIONS,
      intervalMs: config.CHECKPOINT_INTERVAL_MS,
      segmentBars: config.CHECKPOINT_SEGMENT_BARS,
      lateTickBoundMs: config.LATE_TICK_BOUND_MS,
      token: id,
      logger,
      metrics,
    });
    writer.start();
    // A stream re-created while every consumer kept running: noticed within STREAM_CHECK_MS.
    const checkStream = () => {
      streamIsCurrent()
        .catch(() => undefined)
        .finally(() => {
          if (stopped) return;
          streamTimer = setTimeout(checkStream, STREAM_CHECK_MS);
          streamTimer.unref();
        });
    };
    streamTimer = setTimeout(checkStream, STREAM_CHECK_MS);
    streamTimer.unref();
    const sample = () => {
      void Promise.all(
        Array.from({ length: config.TICK_PARTITIONS }, (_, n) =>
          tickStream
            .pending(config.CONSUMER_PREFIX, n)
            .then((p) => metrics.consumerPending.set({ partition: String(n) }, p))
            .catch(() => undefined),
        ),
      ).finally(() => {
        if (!stopped) {
          sampler = setTimeout(sample, config.CONSUMER_PENDING_SAMPLE_MS);
          sampler.unref();
        }
      });
    };
    sample();
  }

  return {
    id,
    store,
    epochs,
    mirror,
    hub,
    rebuilder,
    metrics,
    checks,
    setUp,
    notReadyReason,
    checkpointWriter: () => writer,
    register: (server) => registerPriceService(server, handlers),
    start: () => {
      subscription = nc.subscribe('quotes.>', {
        callback: (err, msg) => {
          if (err) return;
          try {
            hub.handleMessage(msg.subject, msg.data);
          } catch (e) {
            // A callback that throws would end the subscription: log and carry on.
            logger.error({ err: e, subject: msg.subject }, 'quote notification handling failed');
          }
        },
      });
      // Updates published while this replica's NATS connection was down were
      // missed: reload the mirror and resend every stream a snapshot.
      void (async () => {
        for await (const s of nc.status()) {
          if (stopped) return;
          const epoch = epochs.current();
          if (s.type !== 'reconnect' || epoch === undefined) continue;
          try {
            await mirror.reload(Number(epoch));
            if (epochs.current() === epoch) hub.resetAll(Number(epoch));
          } catch (err) {
            metrics.redisErrors.inc({ op: 'mirror' });
            logger.warn(
              { err: err instanceof Error ? err.message : String(err) },
              'mirror resync after NATS reconnect failed',
            );
          }
        }
      })().catch(() => undefined);
      setup()
        .then(() => {
          if (stopped || misconfigured) return;
          startBackground();
          resolveSetUp();
        })
        .catch((err: unknown) => logger.error({ err }, 'price-cache setup failed'));
    },
    stop: async () => {
      stopped = true;
      if (sampler) clearTimeout(sampler);
      if (streamTimer) clearTimeout(streamTimer);
      await Promise.all(consumers.map((c) => c.stop()));
      await writer?.stop(true);
      rebuilder.abort();
      await epochs.stop();
      subscription?.unsubscribe();
    },
  };
}
