// Cumulative acks of one PublishTicks stream: the highest producer_seq such
// that every tick this stream sent with a seq at or below it was stored in
// JetStream or rejected. Ticks complete out of order (partitions publish
// independently), so completed ticks wait here until everything before
// them has completed too.
import { BoundedDeque } from './bounded-deque.js';

export interface TrackedTick {
  readonly seq: number;
  done: boolean;
}

export class AckTracker {
  private readonly pending: BoundedDeque<TrackedTick>;
  private acked: number;
  private movedAt: number;

  constructor(
    /** Most ticks tracked at once: the stream's in-flight bound. */
    readonly capacity: number,
    initialAck = 0,
    private readonly clock: () => number = Date.now,
  ) {
    this.pending = new BoundedDeque(capacity);
    this.acked = initialAck;
    this.movedAt = clock();
  }

  /**
   * When the ack last moved, or tracking began with nothing in flight: the
   * oldest tracked tick has waited at most this long for the ack to cover it.
   */
  get lastMoveMs(): number {
    return this.movedAt;
  }

  /** Ticks sent and not yet covered by the cumulative ack. */
  get inFlight(): number {
    return this.pending.length;
  }

  get full(): boolean {
    return this.pending.full;
  }

  /** Highest seq covered so far (0 before anything completed). */
  get ackedThrough(): number {
    return this.acked;
  }

  /**
   * Starts tracking `seq`, which must be above every seq tracked before.
   * Returns the handle to mark done, or undefined when the tracker is full.
   */
  track(seq: number): TrackedTick | undefined {
    const entry: TrackedTick = { seq, done: false };
    return this.push(entry) ? entry : undefined;
  }

  /** Tracks a tick that is already complete (a rejection). */
  trackDone(seq: number): boolean {
    return this.push({ seq, done: true });
  }

  private push(entry: TrackedTick): boolean {
    if (this.pending.length === 0) this.movedAt = this.clock();
    return this.pending.push(entry);
  }

  /**
   * Advances over the completed prefix; returns the new cumulative ack, or
   * undefined when it did not move.
   */
  advance(): number | undefined {
    let n = 0;
    let last = this.acked;
    for (let e = this.pending.at(0); e?.done; e = this.pending.at(++n)) last = e.seq;
    if (n === 0) return undefined;
    this.pending.shift(n);
    this.acked = last;
    this.movedAt = this.clock();
    return last;
  }
}
