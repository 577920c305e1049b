// The ticker's Prometheus metrics (ingest API and simulator share them):
// ticks accepted (stored in JetStream) and rejected by reason, publish
// latency, publishes in flight, and the depth of the partition queues.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { REJECT_REASONS, type RejectReason } from './tick-validation.js';

export class TickerMetrics {
  readonly accepted: Counter;
  readonly rejected: Counter<'reason'>;
  readonly publishSeconds: Histogram;
  readonly publishFailures: Counter;
  readonly duplicateBatches: Counter;
  readonly batchTicks: Histogram;
  readonly inFlight: Gauge;
  readonly queueTicks: Gauge;
  readonly retentionHeadroom: Gauge;
  private queueDepth: () => number = () => 0;

  constructor(registry: Registry) {
    const registers = [registry];
    this.accepted = new Counter({
      name: 'tickmesh_ticks_accepted_total',
      help: 'Ticks stored in JetStream (acknowledged to their producer)',
      registers,
    });
    this.rejected = new Counter({
      name: 'tickmesh_ticks_rejected_total',
      help: 'Ticks refused before reaching JetStream, by reason',
      labelNames: ['reason'],
      registers,
    });
    // Every reason shows up as 0 from the start, so rate() works before the first rejection.
    for (const reason of REJECT_REASONS) this.rejected.inc({ reason }, 0);
    this.publishSeconds = new Histogram({
      name: 'tickmesh_publish_seconds',
      help: 'Time from sending a batch to JetStream until it was stored (successful publishes)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.publishFailures = new Counter({
      name: 'tickmesh_publish_failures_total',
      help: 'JetStream publish attempts that failed (each is retried with the same message id)',
      registers,
    });
    this.duplicateBatches = new Counter({
      name: 'tickmesh_publish_duplicates_total',
      help: 'Batches JetStream reported as already stored (a retry of a publish whose ack was lost)',
      registers,
    });
    this.batchTicks = new Histogram({
      name: 'tickmesh_publish_batch_ticks',
      help: 'Ticks per JetStream message',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'tickmesh_publish_in_flight',
      help: 'JetStream publishes awaiting their ack (at most one per partition)',
      registers,
    });
    this.queueTicks = new Gauge({
      name: 'tickmesh_publish_queue_ticks',
      help: 'Ticks waiting in the partition queues (in-flight batches included)',
      registers,
      // read at scrape time, so the hot path never touches the gauge
      collect: () => this.queueTicks.set(this.queueDepth()),
    });
    this.retentionHeadroom = new Gauge({
      name: 'tickmesh_ticks_stream_headroom_bytes',
      help: 'Bytes the ticks stream can still take before its byte limit deletes a tick the price-cache has not applied (-1: unlimited); ingest closes below 10 % of the limit',
      registers,
    });
  }

  /** Makes the queue gauge read `depth` at scrape time. */
  bindQueueDepth(depth: () => number): void {
    this.queueDepth = depth;
  }

  reject(reason: RejectReason, count = 1): void {
    this.rejected.inc({ reason }, count);
  }
}
