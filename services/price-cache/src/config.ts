// Configuration of the price-cache: every variable with its default and a
// one-line meaning (`node services/price-cache/src/main.ts --help` prints them).
import {
  commonConfig,
  grpcServerConfig,
  jwtConfig,
  int,
  port,
  str,
  url,
  type ConfigOf,
  type ConfigSpec,
  DEFAULT_TICK_PARTITIONS,
} from '@tickmesh/kit';

export const priceCacheConfigSpec = {
  ...commonConfig,
  ...grpcServerConfig,
  ...jwtConfig,
  METRICS_PORT: {
    schema: port(),
    default: '9102',
    doc: 'HTTP port for /metrics, /healthz and /readyz (0: none)',
  },
  GRPC_PORT: { schema: port(), default: '50052', doc: 'gRPC port of PriceService (0: any free port)' },
  NATS_URL: { schema: str(), default: 'nats://127.0.0.1:4222', doc: 'NATS server URL(s), comma-separated' },
  REDIS_URL: {
    schema: url('redis', 'rediss'),
    default: 'redis://127.0.0.1:6379',
    doc: 'Redis URL (the cache; runs without persistence)',
  },
  MARKET: {
    schema: str(),
    default: 'bist30',
    doc: 'Universe file (packages/kit/markets/<name>.json or a path): tick sizes, reference prices, time zone',
  },
  TICKS_STREAM: {
    schema: str(),
    default: 'TICKS',
    doc: 'JetStream stream holding the ticks (created by the ticker; waited for)',
  },
  TICK_PARTITIONS: {
    schema: int(1, 1024),
    default: String(DEFAULT_TICK_PARTITIONS),
    doc: 'Number of tick partitions ticks.<n>; must match the ticker',
  },
  CONSUMER_PREFIX: {
    schema: str(),
    default: 'price-cache-p',
    doc: 'Durable consumer name prefix (one consumer per partition: <prefix><n>)',
  },
  CONSUMER_ACK_WAIT_MS: {
    schema: int(1000, 600_000),
    default: '5000',
    doc: 'Ack wait of the durable consumers: a message held by a dead replica is redelivered after this (each partition waits that long after a crash, so keep it short; an apply never holds a message longer than a third of it)',
  },
  APPLY_MAX_RETRIES: {
    schema: int(1, 100),
    default: '8',
    doc: 'Compare-and-set retries of one message before it is nak-ed for redelivery',
  },
  RETRY_DELAY_MS: {
    schema: int(50, 60_000),
    default: '1000',
    doc: 'Nak delay when a message cannot be applied now (Redis down, cache rebuilding)',
  },
  CHECKPOINT_BUCKET: {
    schema: str(),
    default: 'tickmesh_checkpoints',
    doc: 'JetStream KV bucket holding per-symbol checkpoints',
  },
  CHECKPOINT_REPLICAS: {
    schema: int(1, 5),
    default: '1',
    doc: 'Replicas of the checkpoint bucket (when it is created)',
  },
  CHECKPOINT_INTERVAL_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'How often changed symbols are checkpointed from Redis into the KV bucket (a rebuild replays at most about this much of the stream tail beyond them)',
  },
  CHECKPOINT_SEGMENT_BARS: {
    schema: int(2, 10_000),
    default: '60',
    doc: 'Final bars sealed per immutable checkpoint segment; a symbol checkpoint carries at most about this many bars per interval plus the late-tick window',
  },
  BARS_1S_RETENTION: {
    schema: int(10, 86_400),
    default: '900',
    doc: 'How many 1-second bars are kept per symbol (newest first)',
  },
  BARS_1M_RETENTION: {
    schema: int(5, 10_080),
    default: '1440',
    doc: 'How many 1-minute bars are kept per symbol (newest first)',
  },
  LATE_TICK_BOUND_MS: {
    schema: int(0, 60_000),
    default: '5000',
    doc: 'A tick older than this vs the newest event time of its symbol does not touch bars (counted as late)',
  },
  MAX_PRODUCERS_PER_SYMBOL: {
    schema: int(1, 100_000),
    default: '256',
    doc: 'Dedupe watermarks kept per symbol; the producer not seen for the longest is dropped beyond this',
  },
  EPOCH_POLL_MS: {
    schema: int(50, 60_000),
    default: '500',
    doc: 'How often the cache epoch key is checked (an emptied Redis is noticed within this)',
  },
  REBUILD_LOCK_TTL_MS: {
    schema: int(1000, 600_000),
    default: '10000',
    doc: 'TTL of the rebuild lock (renewed while rebuilding; a dead rebuilder frees it after this)',
  },
  REBUILD_TIMEOUT_MS: {
    schema: int(1000, 3_600_000),
    default: '120000',
    doc: 'A rebuild taking longer than this is abandoned and retried',
  },
  CONSUMER_PENDING_SAMPLE_MS: {
    schema: int(500, 600_000),
    default: '5000',
    doc: 'How often consumer pending counts are sampled for metrics',
  },
  STREAM_HEARTBEAT_MS: {
    schema: int(100, 600_000),
    default: '5000',
    doc: 'StreamQuotes sends a heartbeat after this long without a message',
  },
  STREAM_SLOW_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'A StreamQuotes client that does not drain for this long is ended with RESOURCE_EXHAUSTED',
  },
  STREAM_MAX_PENDING: {
    schema: int(1, 1_000_000),
    default: '20000',
    doc: 'Conflated symbols waiting on one slow stream before it is ended with RESOURCE_EXHAUSTED',
  },
  STREAM_MAX_QUOTES_PER_MESSAGE: {
    schema: int(1, 10_000),
    default: '256',
    doc: 'Most quotes carried by one StreamQuotes message',
  },
  MAX_STREAMS: {
    schema: int(1, 1_000_000),
    default: '10000',
    doc: 'Open StreamQuotes calls per replica; more get RESOURCE_EXHAUSTED',
  },
  SETUP_RETRY_MS: {
    schema: int(100, 60_000),
    default: '1000',
    doc: 'Retry interval while the tick stream does not exist yet',
  },
} satisfies ConfigSpec;

export type PriceCacheConfig = ConfigOf<typeof priceCacheConfigSpec>;

/** Cross-field rules the per-variable schemas cannot express. */
export function configProblems(c: PriceCacheConfig): string[] {
  const problems: string[] = [];
  // Bars that a non-late tick can still change must never have been trimmed,
  // or a rebuild would not reproduce the same bars (docs/price-cache.md).
  if (c.BARS_1S_RETENTION < Math.ceil(c.LATE_TICK_BOUND_MS / 1000) + 2) {
    problems.push('BARS_1S_RETENTION must be at least LATE_TICK_BOUND_MS/1000 + 2');
  }
  if (c.BARS_1M_RETENTION < Math.ceil(c.LATE_TICK_BOUND_MS / 60_000) + 2) {
    problems.push('BARS_1M_RETENTION must be at least LATE_TICK_BOUND_MS/60000 + 2');
  }
  // One checkpoint holds every retained bar (~60 bytes each) and must fit a NATS message (1 MiB default).
  if ((c.BARS_1S_RETENTION + c.BARS_1M_RETENTION) * 60 + c.MAX_PRODUCERS_PER_SYMBOL * 60 > 900_000) {
    problems.push(
      'BARS_1S_RETENTION + BARS_1M_RETENTION + MAX_PRODUCERS_PER_SYMBOL too large for one checkpoint (max ~15000 in total)',
    );
  }
  if (!/^[A-Za-z0-9_-]+$/.test(c.TICKS_STREAM)) problems.push('TICKS_STREAM must be a valid stream name');
  if (!/^[A-Za-z0-9_-]+$/.test(c.CHECKPOINT_BUCKET))
    problems.push('CHECKPOINT_BUCKET must be a valid bucket name');
  if (!/^[A-Za-z0-9_-]+$/.test(c.CONSUMER_PREFIX))
    problems.push('CONSUMER_PREFIX must be a valid consumer name prefix');
  return problems;
}
