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
import {
  JetStreamApiError,
  type ConsumerInfo,
  type JetStreamManager,
  type MsgRequest,
  type StreamInfo,
} from '@nats-io/jetstream';
import { consumerFilters, partitionSubjects, type Logger } from '@tickmesh/kit';
import { Periodic } from './periodic.js';

const STREAM_NOT_FOUND = 10059;
const NO_MESSAGE_FOUND = 10037;

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
 * deleted (Infinity when nothing limits it). JetStream tells the stream's
 * bytes, not how they spread over its messages; counting the messages before
 * the unapplied one at half the average size keeps the estimate on the safe
 * side when older messages were smaller (single ticks before busy batches).
 */
export function headroomBytes(v: RetentionView): number {
  if (v.maxBytes < 0 || v.oldestUnapplied === undefined) return Number.POSITIVE_INFINITY;
  const held = v.lastSeq - v.firstSeq + 1;
  const before = held > 0 ? (v.bytes * Math.max(0, v.oldestUnapplied - v.firstSeq)) / held : 0;
  return v.maxBytes - v.bytes + before / 2;
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
  const filters = consumerFilters(c.config);
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
  /**
   * Bytes this process may still store before the next check, counted down by
   * spend(): between two checks (or while one is slow) ingest cannot run past
   * the reserve. Other ticker replicas spend the same headroom, which the
   * reserve (10 % of the limit, many seconds of ingest) absorbs.
   */
  private budget = Number.POSITIVE_INFINITY;
  private readonly checks: Periodic;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly read: () => Promise<RetentionView>,
    private readonly opts: RetentionGuardOptions,
  ) {
    this.checks = new Periodic(opts.checkIntervalMs, () => this.check());
  }

  /** Why ingest is closed, or undefined while there is room. */
  get reason(): string | undefined {
    if (this.exhausted) return this.exhausted;
    if (this.budget <= 0)
      return 'the ticks stream is near its byte limit and the price-cache is behind: retry later';
    return undefined;
  }

  /** Counts bytes this process stored since the last check. */
  spend(bytes: number): void {
    this.budget -= bytes;
  }

  /** Calls `f` whenever ingest reopens. */
  onReopen(f: () => void): void {
    this.listeners.push(f);
  }

  /** Checks now, then every checkIntervalMs. */
  start(): Promise<void> {
    return this.checks.start();
  }

  stop(): void {
    this.checks.stop();
  }

  /** One look at the stream and the verdict it gives. */
  private async check(): Promise<void> {
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
    const wasClosed = this.reason !== undefined;
    this.budget = headroom - reserve;
    this.exhausted =
      headroom < reserve
        ? `the ticks stream is within ${Math.round(reserve)} bytes of deleting ticks the price-cache has not applied yet (message ${view.oldestUnapplied}): retry later`
        : undefined;
    if (this.exhausted && !wasClosed) {
      this.opts.logger?.error(
        { headroomBytes: Math.round(headroom), oldestUnapplied: view.oldestUnapplied, bytes: view.bytes },
        'ingest closed: the price-cache is behind and the ticks stream is near its byte limit',
      );
    } else if (!this.exhausted && wasClosed) {
      this.opts.logger?.warn(
        { headroomBytes: Math.round(headroom) },
        'ingest open again: the price-cache caught up',
      );
      for (const f of this.listeners) f();
    }
  }
}

/**
 * The guard's view from JetStream: stream info, the durable consumers and
 * where each one waits, and the price-cache's checkpoint positions (a Redis
 * that comes back empty is rebuilt from the checkpoints plus the stream after
 * them, so those messages are needed too, applied or not).
 */
export function jetStreamRetentionView(
  jsm: JetStreamManager,
  stream: string,
  checkpoints?: { bucket: string; partitions: number },
): () => Promise<RetentionView> {
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
  /** Per partition: the first message after its checkpoint. No bucket (no price-cache yet): none. */
  const checkpointPositions = async (bucket: string, partitions: number): Promise<UnappliedAt[]> => {
    const covered = async (n: number): Promise<number | undefined> => {
      try {
        const m = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.p.${n}` });
        return m && m.data.length > 0 ? Number(new TextDecoder().decode(m.data)) || 0 : 0;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) return undefined;
        if (err instanceof JetStreamApiError && err.code === NO_MESSAGE_FOUND) return 0;
        throw err;
      }
    };
    const all = await Promise.all(Array.from({ length: partitions }, (_, n) => covered(n)));
    // No bucket (no price-cache has run yet): nothing to keep for a rebuild.
    if (all.includes(undefined)) return [];
    return all.map((after, n) => ({ after: after!, filters: partitionSubjects(n) }));
  };
  return async () => {
    const [info, consumers]: [StreamInfo, ConsumerInfo[]] = await Promise.all([
      jsm.streams.info(stream),
      jsm.consumers.list(stream).next(),
    ]);
    const positions = unappliedPositions(consumers);
    if (checkpoints)
      positions.push(...(await checkpointPositions(checkpoints.bucket, checkpoints.partitions)));
    const seqs = await Promise.all(
      positions.map((at) => ('seq' in at ? at.seq : firstAfter(at.filters, at.after))),
    );
    let oldest: number | undefined;
    for (const seq of seqs) if (seq !== undefined && (oldest === undefined || seq < oldest)) oldest = seq;
    return {
      bytes: info.state.bytes,
      maxBytes: info.config.max_bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      oldestUnapplied: oldest,
    };
  };
}
