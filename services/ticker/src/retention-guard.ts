// Keeps the TICKS stream's size limit from deleting ticks the price-cache has
// not applied yet. The stream keeps limits retention with discard old (ADR
// 12): while the price-cache keeps up, the oldest messages it deletes are
// long applied. When the price-cache falls behind (Redis down) and the stream
// nears its byte limit, the oldest unapplied message would be next to go. The
// guard watches the stream and the price-cache's durable consumers and closes
// ingest before that: producers get RESOURCE_EXHAUSTED and retry later, the
// simulator pauses, nothing acknowledged is deleted unapplied. It reopens by
// itself once the price-cache has caught up enough.
//
// Refusing new ticks cannot hold back the age limit (max age): an outage longer
// than that is detected by the price-cache as a gap (docs/reliability.md).
import type { ConsumerInfo, JetStreamManager, MsgRequest, StreamInfo } from '@nats-io/jetstream';
import type { Logger } from '@tickmesh/kit';

export interface RetentionView {
  bytes: number;
  /** -1: no byte limit. */
  maxBytes: number;
  firstSeq: number;
  lastSeq: number;
  /** Stream seq of the oldest message some partition consumer has not acknowledged, if any. */
  oldestUnapplied: number | undefined;
}

/**
 * Bytes that can still be stored before the oldest unapplied message is
 * deleted (Infinity when nothing limits it). Bytes are spread evenly over
 * the messages held: an estimate, hence the reserve the guard keeps.
 */
export function headroomBytes(v: RetentionView): number {
  if (v.maxBytes < 0 || v.oldestUnapplied === undefined) return Number.POSITIVE_INFINITY;
  const held = v.lastSeq - v.firstSeq + 1;
  const before = held > 0 ? (v.bytes * Math.max(0, v.oldestUnapplied - v.firstSeq)) / held : 0;
  return v.maxBytes - v.bytes + before;
}

/** Where a partition consumer's oldest unapplied message is: known, or the first match after a seq. */
export type UnappliedAt = { seq: number } | { after: number; filters: string[] };

/**
 * For every durable consumer of partition subjects that has work left: its
 * oldest unacknowledged message, or where to look for it. ack_floor is not
 * used for a consumer with one message in flight: on a quiet partition it can
 * be far older than the message actually waiting.
 */
export function unappliedPositions(consumers: readonly ConsumerInfo[]): UnappliedAt[] {
  const out: UnappliedAt[] = [];
  for (const c of consumers) {
    const filters = partitionFilters(c);
    if (!c.config.durable_name || filters.length === 0) continue;
    if (c.num_ack_pending > 0) {
      // With max_ack_pending 1 the only unacknowledged message is the last one delivered.
      out.push({ seq: c.config.max_ack_pending === 1 ? c.delivered.stream_seq : c.ack_floor.stream_seq + 1 });
    } else if (c.num_pending > 0) {
      out.push({ after: c.delivered.stream_seq, filters });
    }
  }
  return out;
}

function partitionFilters(c: ConsumerInfo): string[] {
  const filters = c.config.filter_subjects?.length
    ? c.config.filter_subjects
    : c.config.filter_subject
      ? [c.config.filter_subject]
      : [];
  return filters.some((f) => /^ticks\.\d+(\.>)?$/.test(f)) ? filters : [];
}

export interface RetentionGuardOptions {
  /** Part of the byte limit kept free ahead of the oldest unapplied message (0..1). */
  reserveRatio: number;
  checkIntervalMs: number;
  logger?: Logger;
  /** Called with the headroom after every check (a gauge). */
  observe?: (headroomBytes: number) => void;
}

export class RetentionGuard {
  private exhausted: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly read: () => Promise<RetentionView>,
    private readonly opts: RetentionGuardOptions,
  ) {}

  /** Why ingest is closed, or undefined while there is room. */
  get reason(): string | undefined {
    return this.exhausted;
  }

  /** Calls `f` whenever ingest reopens. */
  onReopen(f: () => void): void {
    this.listeners.push(f);
  }

  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.check().finally(() => {
        if (this.timer) this.schedule();
      });
    }, this.opts.checkIntervalMs);
    this.timer.unref();
  }

  /** One look at the stream; exported for tests through start(). */
  async check(): Promise<void> {
    let view: RetentionView;
    try {
      view = await this.read();
    } catch (err) {
      // Without an answer the last verdict stands; the publisher's own failures cover NATS being down.
      this.opts.logger?.debug({ err: String(err) }, 'retention check failed');
      return;
    }
    const headroom = headroomBytes(view);
    this.opts.observe?.(headroom);
    const reserve = view.maxBytes * this.opts.reserveRatio;
    const before = this.exhausted;
    this.exhausted =
      headroom < reserve
        ? `the ticks stream is within ${Math.round(reserve)} bytes of deleting ticks the price-cache has not applied yet (message ${view.oldestUnapplied}): retry later`
        : undefined;
    if (this.exhausted && !before) {
      this.opts.logger?.error(
        { headroomBytes: Math.round(headroom), oldestUnapplied: view.oldestUnapplied, bytes: view.bytes },
        'ingest closed: the price-cache is behind and the ticks stream is near its byte limit',
      );
    } else if (!this.exhausted && before) {
      this.opts.logger?.warn(
        { headroomBytes: Math.round(headroom) },
        'ingest open again: the price-cache caught up',
      );
      for (const f of this.listeners) f();
    }
  }
}

/** The guard's view from JetStream: stream info, the durable consumers, and where each one waits. */
export function jetStreamRetentionView(jsm: JetStreamManager, stream: string): () => Promise<RetentionView> {
  const firstAfter = async (filters: string[], after: number): Promise<number | undefined> => {
    const found = await Promise.all(
      filters.map((subject) =>
        jsm.streams
          .getMessage(stream, { next_by_subj: subject, seq: after + 1 } as unknown as MsgRequest)
          .then((m) => m?.seq)
          .catch(() => undefined),
      ),
    );
    const seqs = found.filter((x): x is number => x !== undefined);
    return seqs.length > 0 ? Math.min(...seqs) : undefined;
  };
  return async () => {
    const [info, consumers]: [StreamInfo, ConsumerInfo[]] = await Promise.all([
      jsm.streams.info(stream),
      jsm.consumers.list(stream).next(),
    ]);
    let oldest: number | undefined;
    for (const at of unappliedPositions(consumers)) {
      const seq = 'seq' in at ? at.seq : await firstAfter(at.filters, at.after);
      if (seq !== undefined && (oldest === undefined || seq < oldest)) oldest = seq;
    }
    return {
      bytes: info.state.bytes,
      maxBytes: info.config.max_bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      oldestUnapplied: oldest,
    };
  };
}
