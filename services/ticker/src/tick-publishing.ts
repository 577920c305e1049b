// Opens the JetStream side of a ticker process from its configuration:
// ensures the TICKS stream (retrying for a bounded time while JetStream is
// still starting) and starts the TickPublisher on top of it, with the lane
// check on as soon as the stream's readers take lanes.
import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConfigError, type Logger } from '@tickmesh/kit';
import type { JetStreamConfig } from './config.js';
import { jetStreamPublishFn } from './jetstream-publish.js';
import { jetStreamLaneReader } from './lane-reader.js';
import { LaneReadiness } from './lane-readiness.js';
import { LaneBook } from './lanes.js';
import { RetentionGuard, jetStreamRetentionView } from './retention-guard.js';
import type { TickerMetrics } from './metrics.js';
import { TickPublisher } from './tick-publisher.js';
import { ensureTicksStream, type TicksStreamSettings } from './ticks-stream.js';

/** Lane states a ticker keeps (a miss costs one read of the lane's last message). */
const LANES_CACHED = 16_384;
/** Part of the stream's byte limit kept free ahead of the oldest unapplied tick. */
const RETENTION_RESERVE_RATIO = 0.1;
/** How often the retention guard looks at the stream (ingest may run this long past the reserve). */
const RETENTION_CHECK_MS = 1000;
/** How often a ticker looks again whether the stream's readers take lanes. */
const LANE_RECHECK_MS = 10_000;

export function streamSettings(c: JetStreamConfig): TicksStreamSettings {
  return {
    name: c.TICKS_STREAM,
    replicas: c.TICKS_STREAM_REPLICAS,
    maxAgeMs: c.TICKS_STREAM_MAX_AGE_MS,
    maxBytes: c.TICKS_STREAM_MAX_BYTES,
    duplicateWindowMs: c.TICKS_STREAM_DUPLICATE_WINDOW_MS,
    maxMsgSize: c.TICKS_STREAM_MAX_MSG_SIZE,
    partitions: c.TICK_PARTITIONS,
  };
}

export async function openTickPublishing(opts: {
  nc: NatsConnection;
  config: JetStreamConfig;
  metrics?: TickerMetrics;
  logger?: Logger;
  /** How long to keep trying to set the stream up at start (default: NATS_CONNECT_TIMEOUT_MS). */
  setupTimeoutMs?: number;
  /** How far ahead of its arrival a tick's event time may be (the ingest rule; 0 for the simulator). */
  maxFutureMs?: number;
}): Promise<TickPublisher> {
  const { nc, config, logger } = opts;
  const jsm = await jetstreamManager(nc, { timeout: config.PUBLISH_TIMEOUT_MS });
  const settings = streamSettings(config);
  const deadline = Date.now() + (opts.setupTimeoutMs ?? config.NATS_CONNECT_TIMEOUT_MS);
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureTicksStream(jsm, settings, logger);
      break;
    } catch (err) {
      // JetStream answered with an error (overlapping subjects, bad replicas), or the
      // stream holds another partition count: retrying cannot help.
      if (err instanceof JetStreamApiError || err instanceof ConfigError || Date.now() >= deadline) throw err;
      logger?.warn({ err: String(err), attempt }, 'cannot set up the ticks stream yet: retrying');
      await delay(Math.min(2000, 200 * attempt));
    }
  }
  const js = jetstream(nc, { timeout: config.PUBLISH_TIMEOUT_MS });
  const view = jetStreamRetentionView(jsm, config.TICKS_STREAM, {
    bucket: config.CHECKPOINT_BUCKET,
    partitions: config.TICK_PARTITIONS,
  });
  const guard = new RetentionGuard(view, {
    reserveRatio: RETENTION_RESERVE_RATIO,
    checkIntervalMs: RETENTION_CHECK_MS,
    logger,
    observe: (headroom) =>
      opts.metrics?.retentionHeadroom.set(Number.isFinite(headroom) ? Math.round(headroom) : -1),
  });
  await guard.start();
  const lanes = await openLaneCheck(jsm, config.TICKS_STREAM, { maxFutureMs: opts.maxFutureMs ?? 0, logger });
  const publisher = new TickPublisher({
    partitions: config.TICK_PARTITIONS,
    maxBatchTicks: config.PUBLISH_MAX_BATCH_TICKS,
    queueTicks: config.PUBLISH_QUEUE_TICKS,
    retryMinMs: config.PUBLISH_RETRY_MIN_MS,
    retryMaxMs: config.PUBLISH_RETRY_MAX_MS,
    publish: jetStreamPublishFn({
      js,
      stream: config.TICKS_STREAM,
      timeoutMs: config.PUBLISH_TIMEOUT_MS,
      recreate: { jsm, settings },
      logger,
    }),
    metrics: opts.metrics,
    logger,
    lanes,
    gate: guard,
  });
  publisher.onClose(() => {
    lanes.stop();
    guard.stop();
  });
  // Back from a NATS outage: retry now what sleeps in its backoff (up to
  // PUBLISH_RETRY_MAX_MS otherwise). The loop ends when the connection closes.
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') publisher.retryNow();
  })().catch(() => undefined);
  return publisher;
}

/** The lane check of a TickPublisher: on once the stream's readers take lanes (lane-readiness.ts). */
export async function openLaneCheck(
  jsm: JetStreamManager,
  stream: string,
  opts: { maxFutureMs: number; logger?: Logger },
): Promise<{ book: LaneBook; enabled: () => boolean; stop: () => void }> {
  const readiness = new LaneReadiness(jsm, stream, { recheckMs: LANE_RECHECK_MS, logger: opts.logger });
  await readiness.start();
  const book = new LaneBook(jetStreamLaneReader(jsm, stream), {
    maxLanes: LANES_CACHED,
    maxFutureMs: opts.maxFutureMs,
  });
  return { book, enabled: () => readiness.enabled, stop: () => readiness.stop() };
}
