// The tick stream as the price-cache sees it: whether it exists, its durable
// per-partition consumers (created or updated idempotently at start), the
// last sequence of a partition, and an ordered replay of a partition's tail.
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  ReplayPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@tickmesh/kit';
import { consumerFilters, partitionSubjects, PARTITIONS_METADATA_KEY } from '@tickmesh/kit';

const nanos = (ms: number) => ms * 1_000_000;

/** What the price-cache needs to know about the stream itself. */
export interface StreamFacts {
  /** When the stream was created: a re-created stream has another value. */
  created: string;
  firstSeq: number;
  lastSeq: number;
  /** The partition count stored in its metadata (undefined: a stream made before it was stored). */
  partitions: number | undefined;
}

export interface ConsumerSettings {
  prefix: string;
  ackWaitMs: number;
}

export class TickStream {
  readonly js: JetStreamClient;
  private jsmPromise: Promise<JetStreamManager> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    readonly stream: string,
    private readonly logger: Logger,
  ) {
    this.js = jetstream(nc);
  }

  /** The manager, created on first use (it needs JetStream to answer); retried after a failure. */
  private jsm(): Promise<JetStreamManager> {
    this.jsmPromise ??= jetstreamManager(this.nc, { timeout: 5000 }).catch((err: unknown) => {
      this.jsmPromise = undefined;
      throw err;
    });
    return this.jsmPromise;
  }

  consumerName(prefix: string, partition: number): string {
    return `${prefix}${partition}`;
  }

  /** True when the stream exists; false when it does not; throws when JetStream does not answer. */
  async exists(): Promise<boolean> {
    try {
      await (await this.jsm()).streams.info(this.stream);
      return true;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10059) return false;
      throw err;
    }
  }

  /** The stream's identity, bounds and stored partition count; undefined when it does not exist. */
  async facts(): Promise<StreamFacts | undefined> {
    try {
      const info = await (await this.jsm()).streams.info(this.stream);
      const stored = info.config.metadata?.[PARTITIONS_METADATA_KEY];
      return {
        created: info.created,
        firstSeq: info.state.first_seq,
        lastSeq: info.state.last_seq,
        partitions: stored === undefined ? undefined : Number(stored),
      };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10059) return undefined;
      throw err;
    }
  }

  /**
   * One durable pull consumer per partition, at most one message in flight
   * (max_ack_pending 1: the ordering argument in docs/price-cache.md), taking
   * the partition's lanes and its pre-lane subject. Creating an identical
   * consumer is a no-op; a changed ack wait, or a consumer of the pre-lane
   * subject alone, is updated in place (lane writers wait for that update:
   * services/ticker/src/lane-readiness.ts).
   */
  async ensureConsumers(partitions: number, s: ConsumerSettings): Promise<void> {
    for (let n = 0; n < partitions; n++) await this.ensureConsumer(n, s);
  }

  async ensureConsumer(n: number, s: ConsumerSettings): Promise<void> {
    const name = this.consumerName(s.prefix, n);
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      filter_subjects: partitionSubjects(n),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      replay_policy: ReplayPolicy.Instant,
      max_ack_pending: 1,
      ack_wait: nanos(s.ackWaitMs),
      max_deliver: -1,
    };
    const jsm = await this.jsm();
    try {
      await jsm.consumers.add(this.stream, config);
    } catch (err) {
      // Exists with another configuration: bring the settings we own up to date.
      const info = await jsm.consumers.info(this.stream, name).catch(() => undefined);
      if (!info) throw err;
      const wanted = partitionSubjects(n);
      const filters = consumerFilters(info.config);
      const preLane = filters.length === 1 && filters[0] === wanted[0];
      if (!preLane && !sameSet(filters, wanted)) {
        throw new Error(
          `consumer ${name} filters ${filters.join(', ')}, expected ${wanted.join(', ')}: delete it`,
          {
            cause: err,
          },
        );
      }
      await jsm.consumers.update(this.stream, name, {
        ack_wait: nanos(s.ackWaitMs),
        max_ack_pending: 1,
        max_deliver: -1,
        ...(preLane ? { filter_subject: '', filter_subjects: wanted } : {}),
      });
      this.logger.info({ consumer: name }, 'consumer configuration updated');
    }
  }

  /** Messages not yet acknowledged by a partition's durable consumer. */
  async pending(prefix: string, partition: number): Promise<number> {
    const info = await (await this.jsm()).consumers.info(this.stream, this.consumerName(prefix, partition));
    return info.num_pending + info.num_ack_pending;
  }

  /** The stream sequence of the newest message of a partition (0 when it has none). */
  async lastSeq(partition: number): Promise<number> {
    const jsm = await this.jsm();
    const last = await Promise.all(
      partitionSubjects(partition).map((subject) =>
        jsm.streams.getMessage(this.stream, { last_by_subj: subject }),
      ),
    );
    return Math.max(0, ...last.map((m) => m?.seq ?? 0));
  }

  /**
   * The partition's messages with stream seq in [fromSeq, toSeq], in order,
   * through an ordered (ephemeral, unacknowledged) consumer. Fails when no
   * message arrives for idleTimeoutMs (the stream lost them, or NATS is down).
   */
  async *replay(
    partition: number,
    fromSeq: number,
    toSeq: number,
    idleTimeoutMs: number,
  ): AsyncGenerator<{ seq: number; data: Uint8Array }> {
    if (toSeq < fromSeq) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: partitionSubjects(partition),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, fromSeq),
    });
    const messages = await consumer.consume({ max_messages: 1000 });
    let idle: NodeJS.Timeout | undefined;
    let timedOut = false;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        timedOut = true;
        void messages.close();
      }, idleTimeoutMs);
    };
    try {
      arm();
      for await (const m of messages) {
        arm();
        if (m.seq > toSeq) break;
        yield { seq: m.seq, data: m.data };
        if (m.seq >= toSeq) break;
      }
      if (timedOut)
        throw new Error(`replay of partition ${partition} stalled (no message for ${idleTimeoutMs} ms)`);
    } finally {
      clearTimeout(idle);
      await messages.close();
    }
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
