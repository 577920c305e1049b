// Consumes one partition's durable consumer: apply, then ack, then publish
// the resulting quotes. Nothing is acked unless its Redis write succeeded
// (or it was already applied). A message that cannot be applied now (Redis
// down, cache rebuilding) is nak-ed with a delay: with max_ack_pending 1 the
// partition waits for it, in order, without spinning. The consume loop is
// re-established after errors and stops cleanly (pending message nak-ed so
// another replica takes it at once).
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Quote, Tick } from '@tickmesh/kit/proto';
import type { Logger } from '@tickmesh/kit';
import { decodeBatch } from '@tickmesh/kit';
import { ApplyConflictError, NotReadyError, type Applier } from './applier.js';
import type { EpochTracker } from './epoch.js';
import type { PriceCacheMetrics } from './metrics.js';
import { CorruptStateError } from './state.js';

export interface PartitionConsumerDeps {
  js: JetStreamClient;
  stream: string;
  consumerName: string;
  partition: number;
  /** Creates the durable consumer if it is missing (idempotent). */
  ensureConsumer: () => Promise<void>;
  applier: Applier;
  epochs: EpochTracker;
  publish: (quotes: Quote[]) => void;
  metrics: PriceCacheMetrics;
  logger: Logger;
  retryDelayMs: number;
  ackWaitMs: number;
}

export class PartitionConsumer {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private messages: ConsumerMessages | undefined;
  private failing = false;
  private wakeSleep: (() => void) | undefined;

  constructor(private readonly d: PartitionConsumerDeps) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeSleep?.();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  private async run(): Promise<void> {
    const log = this.d.logger.child({ partition: this.d.partition, consumer: this.d.consumerName });
    while (!this.stopped) {
      try {
        await this.d.ensureConsumer();
        const consumer = await this.d.js.consumers.get(this.d.stream, this.d.consumerName);
        const messages = await consumer.consume({ max_messages: 8, expires: 10_000, idle_heartbeat: 5_000 });
        this.messages = messages;
        void this.watchStatus(messages, log);
        for await (const m of messages) {
          if (this.stopped) {
            m.nak(); // hand it to another replica now, not after ack_wait
            continue;
          }
          await this.handle(m, log);
        }
      } catch (err) {
        if (!this.stopped) log.warn({ err }, 'consumer loop failed: re-establishing');
      }
      if (!this.stopped) await this.sleep(this.d.retryDelayMs);
    }
  }

  /** Closes the iterator when the consumer or stream is gone, so the loop re-establishes it. */
  private async watchStatus(messages: ConsumerMessages, log: Logger): Promise<void> {
    try {
      for await (const s of messages.status()) {
        const gone =
          s.type === 'consumer_deleted' ||
          (s.type === 'consumer_not_found' && s.count >= 3) ||
          s.type === 'stream_not_found';
        if (gone) {
          log.warn({ status: s.type }, 'consumer unavailable: re-establishing');
          await messages.close();
          return;
        }
        if (s.type === 'heartbeats_missed') log.debug({ count: s.count }, 'consumer heartbeats missed');
      }
    } catch {
      // the iterator ended
    }
  }

  private async handle(m: JsMsg, log: Logger): Promise<void> {
    const { metrics } = this.d;
    let ticks: Tick[];
    try {
      ticks = decodeBatch(m.data);
    } catch (err) {
      // Poison message: it can never apply; acking it keeps the partition moving.
      metrics.messages.inc({ outcome: 'malformed' });
      log.error(
        { seq: m.seq, err: err instanceof Error ? err.message : String(err) },
        'undecodable tick batch skipped',
      );
      this.ack(m);
      return;
    }
    for (;;) {
      try {
        const out = await this.d.applier.apply(this.d.partition, m.seq, ticks);
        this.ack(m);
        if (this.failing) {
          this.failing = false;
          log.info('applying again');
        }
        const sk = out.result.skipped;
        metrics.ticksApplied.inc(out.quotes.length);
        if (sk.duplicate) metrics.ticksSkipped.inc({ reason: 'duplicate' }, sk.duplicate);
        if (sk.redelivered) metrics.ticksSkipped.inc({ reason: 'redelivered' }, sk.redelivered);
        if (sk.invalid) metrics.ticksSkipped.inc({ reason: 'invalid' }, sk.invalid);
        if (sk.stale_day) metrics.ticksSkipped.inc({ reason: 'stale_day' }, sk.stale_day);
        if (out.result.lateBars) metrics.lateBars.inc(out.result.lateBars);
        metrics.messages.inc({ outcome: out.wrote ? 'applied' : 'skipped' });
        for (const q of out.quotes)
          metrics.applyLag.observe(Math.max(0, q.appliedTimeMs - q.eventTimeMs) / 1000);
        this.d.publish(out.quotes);
        return;
      } catch (err) {
        if (err instanceof NotReadyError) {
          // Hold the message briefly (a rebuild takes seconds), then give it back.
          if (!this.stopped && (await this.d.epochs.waitReady(Math.min(2000, this.d.ackWaitMs / 3))))
            continue;
          metrics.messages.inc({ outcome: 'deferred' });
          m.nak(this.d.retryDelayMs);
          return;
        }
        metrics.messages.inc({ outcome: 'failed' });
        if (!(err instanceof ApplyConflictError)) metrics.redisErrors.inc({ op: 'apply' });
        if (!this.failing || err instanceof CorruptStateError) {
          log.warn(
            { seq: m.seq, err: err instanceof Error ? err.message : String(err) },
            'cannot apply: will retry',
          );
        }
        this.failing = true;
        m.nak(this.d.retryDelayMs);
        await this.sleep(this.d.retryDelayMs);
        return;
      }
    }
  }

  /**
   * Fire-and-forget: a confirmation would cost a round trip per message and
   * could not be acted on (a message is acked once). An ack lost with the
   * connection brings the message back after ack_wait, and the ss guard skips it.
   */
  private ack(m: JsMsg): void {
    m.ack();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakeSleep = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
