// The price-cache's own Prometheus metrics (the kit adds gRPC and process ones).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type PriceCacheMetrics = ReturnType<typeof createPriceCacheMetrics>;

export function createPriceCacheMetrics(registry: Registry, sources: { streamPending?: () => number } = {}) {
  const registers = [registry];
  return {
    streamPending: new Gauge({
      name: 'tickmesh_price_stream_pending_quotes',
      help: 'Quotes waiting (conflated, one per symbol) on StreamQuotes calls that are not drained',
      registers,
      collect() {
        if (sources.streamPending) this.set(sources.streamPending());
      },
    }),
    applyLag: new Histogram({
      name: 'tickmesh_tick_apply_lag_seconds',
      help: 'Time from a tick event time to its application in Redis',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    ticksApplied: new Counter({
      name: 'tickmesh_ticks_applied_total',
      help: 'Ticks applied to the cache',
      registers,
    }),
    ticksSkipped: new Counter({
      name: 'tickmesh_ticks_skipped_total',
      help: 'Ticks not applied, by reason (duplicate resend, redelivered message, invalid, stale trading day)',
      labelNames: ['reason'],
      registers,
    }),
    lateBars: new Counter({
      name: 'tickmesh_ticks_late_for_bars_total',
      help: 'Applied ticks older than the late bound: quote updated, bars untouched',
      registers,
    }),
    messages: new Counter({
      name: 'tickmesh_tick_messages_total',
      help: 'JetStream tick messages handled, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    conflicts: new Counter({
      name: 'tickmesh_apply_conflicts_total',
      help: 'Guarded writes refused because another writer moved a symbol on (re-read and retried)',
      registers,
    }),
    consumerPending: new Gauge({
      name: 'tickmesh_consumer_pending',
      help: 'Messages not yet acknowledged by the durable consumer of a partition (sampled)',
      labelNames: ['partition'],
      registers,
    }),
    streamsOpen: new Gauge({
      name: 'tickmesh_price_streams_open',
      help: 'Open StreamQuotes calls',
      registers,
    }),
    conflated: new Counter({
      name: 'tickmesh_conflated_updates_total',
      help: 'Quote updates replaced by a newer one before a stream could send them',
      registers,
    }),
    streamsEndedSlow: new Counter({
      name: 'tickmesh_price_streams_slow_ended_total',
      help: 'StreamQuotes calls ended with RESOURCE_EXHAUSTED because the client did not keep up',
      registers,
    }),
    redisErrors: new Counter({
      name: 'tickmesh_redis_errors_total',
      help: 'Failed Redis operations',
      labelNames: ['op'],
      registers,
    }),
    rebuilds: new Counter({
      name: 'tickmesh_cache_rebuilds_total',
      help: 'Cache rebuilds completed by this replica',
      registers,
    }),
    streamRecreated: new Counter({
      name: 'tickmesh_ticks_stream_recreated_total',
      help: 'Times this replica found the tick stream re-created and moved the cache onto it (new epoch)',
      registers,
    }),
    rollbacks: new Counter({
      name: 'tickmesh_redis_rollbacks_total',
      help: 'Times this replica found Redis behind a position already applied (restored from an older copy): rebuild',
      registers,
    }),
    rebuildSeconds: new Gauge({
      name: 'tickmesh_cache_last_rebuild_seconds',
      help: 'Duration of the last rebuild',
      registers,
    }),
    rebuildReplayed: new Gauge({
      name: 'tickmesh_cache_last_rebuild_messages',
      help: 'Stream messages replayed by the last rebuild',
      registers,
    }),
    checkpointWrites: new Counter({
      name: 'tickmesh_checkpoint_writes_total',
      help: 'Per-symbol checkpoints written to the KV bucket',
      registers,
    }),
    checkpointBytes: new Counter({
      name: 'tickmesh_checkpoint_bytes_total',
      help: 'Bytes written to the checkpoint bucket: part=symbol (quote, watermarks, unsealed bars), part=segment (sealed bars, written once)',
      labelNames: ['part'] as const,
      registers,
    }),
    checkpointErrors: new Counter({
      name: 'tickmesh_checkpoint_errors_total',
      help: 'Failed checkpoint rounds or writes',
      registers,
    }),
    malformedQuotes: new Counter({
      name: 'tickmesh_quote_notifications_malformed_total',
      help: 'Undecodable messages on quotes.>',
      registers,
    }),
  };
}
