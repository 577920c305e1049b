// Lanes: a producer's ticks of one partition, on a subject of their own
// (laneSubject). Each batch is published with Nats-Expected-Last-Subject-Sequence
// set to the lane's last stored message, so JetStream refuses a write whose
// writer did not know the lane's latest state: the stored ticks of a lane are
// in strictly increasing producer_seq, whatever call, stream or ticker replica
// they came through. Before a batch goes out, its ticks at or below the lane's
// last stored seq are judged against what the stream holds:
//   - the same tick stored before (same producer, seq and content) -> duplicate;
//   - anything else -> refused (seq_not_increasing): it never was stored, and
//     storing it now would put it behind a later seq;
//   - a tick whose seq cannot be checked because the stream no longer holds
//     that part of the lane (retention) -> refused (event_time_too_old) when its
//     event time says it may have been stored before the stream's horizon.
// The lane's state is the stream itself; this book only caches it (the last
// stored seq and the seq ranges of the last few batches), so losing it costs a
// read, never a wrong answer. A cached state that went stale (another writer)
// is caught by JetStream (LaneConflictError), forgotten and read again.
import type { Tick } from '@tickmesh/kit/proto';
import { InvalidArgumentError, laneSubject } from '@tickmesh/kit';
import type { RejectReason } from './tick-validation.js';

/** One stored message of a lane. */
export interface StoredMessage {
  streamSeq: number;
  ticks: Tick[];
}

export interface Horizon {
  /** The stream's first sequence. */
  firstSeq: number;
  /**
   * Time (ms) before which the stream may have removed messages: the first
   * message's time, or 0 when it never removed one.
   */
  removedBeforeMs: number;
}

/** The reads lanes need from JetStream (jetStreamLaneReader), an interface so the logic is tested alone. */
export interface LaneReader {
  /** The newest message on `subject`, if any. */
  last(subject: string): Promise<StoredMessage | undefined>;
  /** The first message on `subject` with stream seq >= `streamSeq`, if any. */
  atOrAfter(subject: string, streamSeq: number): Promise<StoredMessage | undefined>;
  horizon(): Promise<Horizon>;
}

/** JetStream refused a lane write because the lane moved on since its state was read. */
export class LaneConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LaneConflictError';
  }
}

/** A tick the lane check refuses: INVALID_ARGUMENT (unary) or a Rejection (stream). */
export class TickRefusedError extends InvalidArgumentError {
  constructor(
    field: string,
    readonly rejectReason: RejectReason,
    message: string,
  ) {
    super(field, message);
    this.name = 'TickRefusedError';
  }
}

export type Verdict = { kind: 'duplicate'; streamSeq: number } | { kind: 'refused'; error: TickRefusedError };

export interface LanePlan {
  subject: string;
  /** Nats-Expected-Last-Subject-Sequence for the ticks without a verdict. */
  expectedSubjectSeq: number;
  /** One per tick of the batch: a verdict, or undefined for a tick to publish. */
  verdicts: Array<Verdict | undefined>;
}

interface SeqRange {
  streamSeq: number;
  first: number;
  last: number;
}

/** Where a seq was looked up in a lane: the message holding it or the first after it, if any. */
interface Located {
  message: StoredMessage | undefined;
  /** A lane message before `message` is still in the stream. */
  sawEarlier: boolean;
}

/** Lane messages walked from the previous tick's before a binary search takes over. */
const WALK_STEPS = 4;

interface LaneState {
  /** Stream seq of the lane's newest message; 0 when the stream holds none. */
  subjectSeq: number;
  /** producer_seq of the newest stored tick of the lane. */
  lastSeq: number;
  /** Seq ranges of the lane's last few messages, oldest first. */
  recent: SeqRange[];
  /** An empty lane may have lost messages to retention before this event time. */
  emptyFloorMs: number;
}

export interface LaneBookOptions {
  /** Lane states cached (least recently used go first; a miss costs one read). */
  maxLanes: number;
  /** How far ahead of its arrival an event time may be (the ingest rule). */
  maxFutureMs: number;
  /** Seq ranges remembered per lane. */
  recentBatches?: number;
}

export class LaneBook {
  private readonly states = new Map<string, LaneState>();
  private readonly recentBatches: number;

  constructor(
    private readonly reader: LaneReader,
    private readonly opts: LaneBookOptions,
  ) {
    this.recentBatches = opts.recentBatches ?? 8;
  }

  get size(): number {
    return this.states.size;
  }

  /** Judges a batch (one producer, strictly increasing seq, one partition) against its lane. */
  async plan(partition: number, ticks: readonly Tick[]): Promise<LanePlan> {
    const producerId = ticks[0]!.producerId;
    const subject = laneSubject(partition, producerId);
    const state = await this.state(subject);
    const verdicts: Array<Verdict | undefined> = [];
    // Where the previous tick was found: a resent window walks the lane from there.
    let at: Located | undefined;
    for (const t of ticks) {
      if (t.producerSeq <= state.lastSeq) {
        at = await this.locate(subject, state, t.producerSeq, at);
        verdicts.push(await this.judge(t, at, state));
      } else if (state.subjectSeq === 0 && t.eventTimeMs < state.emptyFloorMs)
        verdicts.push(tooOld(t, state.emptyFloorMs));
      else verdicts.push(undefined);
    }
    return { subject, expectedSubjectSeq: state.subjectSeq, verdicts };
  }

  /** Records a batch JetStream stored as new (not a duplicate) at `streamSeq`. */
  stored(partition: number, producerId: string, streamSeq: number, ticks: readonly Tick[]): void {
    const subject = laneSubject(partition, producerId);
    const state = this.states.get(subject);
    if (!state) return;
    state.subjectSeq = streamSeq;
    state.lastSeq = ticks.at(-1)!.producerSeq;
    state.recent.push({ streamSeq, first: ticks[0]!.producerSeq, last: state.lastSeq });
    if (state.recent.length > this.recentBatches) state.recent.shift();
  }

  /** Drops a lane's cached state (it went stale): the next plan reads it again. */
  forget(partition: number, producerId: string): void {
    this.states.delete(laneSubject(partition, producerId));
  }

  private async state(subject: string): Promise<LaneState> {
    const cached = this.states.get(subject);
    if (cached) {
      // Map order is insertion order: re-inserting keeps the least recently used first.
      this.states.delete(subject);
      this.states.set(subject, cached);
      return cached;
    }
    const last = await this.reader.last(subject);
    let state: LaneState;
    if (last) {
      const lastSeq = last.ticks.at(-1)?.producerSeq ?? 0;
      state = {
        subjectSeq: last.streamSeq,
        lastSeq,
        recent: [{ streamSeq: last.streamSeq, first: last.ticks[0]?.producerSeq ?? 0, last: lastSeq }],
        emptyFloorMs: 0,
      };
    } else {
      const h = await this.reader.horizon();
      state = {
        subjectSeq: 0,
        lastSeq: 0,
        recent: [],
        emptyFloorMs: h.removedBeforeMs > 0 ? h.removedBeforeMs + this.opts.maxFutureMs : 0,
      };
    }
    this.states.set(subject, state);
    while (this.states.size > this.opts.maxLanes) this.states.delete(this.states.keys().next().value!);
    return state;
  }

  /**
   * The lane message that holds `seq` or, when none does, the first one after
   * it: from where the batch's previous tick was found (walking a few messages
   * on), from a remembered range, or by a binary search over the stream.
   */
  private async locate(
    subject: string,
    state: LaneState,
    seq: number,
    prev: Located | undefined,
  ): Promise<Located> {
    if (prev?.message) {
      let m: StoredMessage | undefined = prev.message;
      for (let step = 0; m && step <= WALK_STEPS; step++) {
        if (seq <= m.ticks.at(-1)!.producerSeq)
          return { message: m, sawEarlier: prev.sawEarlier || m !== prev.message };
        m = await this.reader.atOrAfter(subject, m.streamSeq + 1);
        if (m && (m.streamSeq > state.subjectSeq || m.ticks.length === 0)) m = undefined;
      }
    }
    const known = state.recent.find((r) => r.first <= seq && seq <= r.last);
    if (known) {
      const m = await this.reader.atOrAfter(subject, known.streamSeq);
      if (m && m.streamSeq === known.streamSeq) return { message: m, sawEarlier: true };
    }
    const h = await this.reader.horizon();
    return this.search(subject, seq, h.firstSeq, state.subjectSeq);
  }

  /** A tick at or below the lane's last stored seq, where `at` says: the same tick stored before, or refused. */
  private async judge(t: Tick, at: Located, state: LaneState): Promise<Verdict> {
    if (at.message && at.message.ticks[0]!.producerSeq <= t.producerSeq) return member(at.message, t);
    // No stored message holds the seq. The lane's messages on both sides of it are in the
    // stream (never stored) unless the earlier ones may have been removed by retention.
    if (!at.sawEarlier) {
      const h = await this.reader.horizon();
      if (h.removedBeforeMs > 0) {
        const floor = h.removedBeforeMs + this.opts.maxFutureMs;
        if (t.eventTimeMs < floor) return tooOld(t, floor);
      }
    }
    return notIncreasing(t, state.lastSeq);
  }

  /**
   * Binary search over stream seqs [lo, hi] for the lane's first message whose
   * last seq >= `seq`; sawEarlier says whether a lane message before it exists.
   */
  private async search(subject: string, seq: number, lo: number, hi: number): Promise<Located> {
    let message: StoredMessage | undefined;
    let sawEarlier = false;
    while (lo <= hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const m = await this.reader.atOrAfter(subject, mid);
      if (!m || m.streamSeq > hi || m.ticks.length === 0) {
        hi = mid - 1;
      } else if (m.ticks.at(-1)!.producerSeq >= seq) {
        message = m;
        hi = mid - 1;
      } else {
        sawEarlier = true;
        lo = m.streamSeq + 1;
      }
    }
    return { message, sawEarlier };
  }
}

function member(m: StoredMessage, t: Tick): Verdict {
  const stored = m.ticks.find((s) => s.producerSeq === t.producerSeq);
  if (!stored) {
    return refused(
      t,
      'seq_not_increasing',
      `seq ${t.producerSeq} falls inside a stored batch that does not hold it: seqs of a producer must increase`,
    );
  }
  if (!sameTick(stored, t)) {
    return refused(
      t,
      'seq_not_increasing',
      `seq ${t.producerSeq} of producer ${t.producerId} was stored with other content: a seq names one tick`,
    );
  }
  return { kind: 'duplicate', streamSeq: m.streamSeq };
}

/**
 * The fields a producer chooses. Event time is left out: a producer that lets
 * the ticker stamp it (0) gets a new time on every resend.
 */
export function sameTick(a: Tick, b: Tick): boolean {
  return (
    a.symbol === b.symbol && a.price === b.price && a.size === b.size && a.bid === b.bid && a.ask === b.ask
  );
}

function notIncreasing(t: Tick, lastSeq: number): Verdict {
  return refused(
    t,
    'seq_not_increasing',
    `must be > ${lastSeq}, the last seq stored for producer ${t.producerId} on this symbol's partition (send one producer's ticks in order, one call at a time)`,
  );
}

function tooOld(t: Tick, floorMs: number): Verdict {
  return {
    kind: 'refused',
    error: new TickRefusedError(
      'tick.event_time_ms',
      'event_time_too_old',
      `is before ${new Date(floorMs).toISOString()}: the ticks stream no longer holds what its producer stored before then, so a resend cannot be told from a new tick`,
    ),
  };
}

function refused(t: Tick, reason: RejectReason, message: string): Verdict {
  return { kind: 'refused', error: new TickRefusedError('tick.producer_seq', reason, message) };
}
