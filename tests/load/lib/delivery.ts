// The delivered share: for each client and symbol, every seq after the last
// one the client held when measuring started, up to the cut-off seq (the
// symbol's final seq), must arrive in some frame. A seq skipped by
// conflation, a dropped frame or a resnapshot counts as missing.
//
// Seqs are kept as sorted disjoint runs [start, end], so in-order delivery
// costs O(1) per quote and memory grows only with the number of gaps.

export interface SeqCutoff {
  epoch: number;
  seq: number;
}

export interface Tally {
  expected: number;
  received: number;
}

export class SeqTracker {
  private epoch: number | undefined;
  /** Seqs above this count; undefined until the first quote of the window. */
  private base: number | undefined;
  /** Highest seq seen before measuring started. */
  private pre: number | undefined;
  private measuring: boolean;
  private runs: number[] = [];
  private closed: Tally = { expected: 0, received: 0 };
  /** Highest seq seen in the current epoch. */
  maxSeen = 0;
  duplicates = 0;
  outOfOrder = 0;

  constructor(measuring = false) {
    this.measuring = measuring;
  }

  get currentEpoch(): number | undefined {
    return this.epoch;
  }

  /** Measuring starts: seqs after the last one already held count from now on. */
  startMeasuring(): void {
    if (this.measuring) return;
    this.measuring = true;
    this.base = this.pre;
  }

  /** A live quote (in a `quotes` frame). */
  quote(epoch: number, seq: number): void {
    this.observe(epoch, seq, false);
  }

  /** A snapshot quote: state, not a tick. It sets the base when the client has none yet. */
  snapshot(epoch: number, seq: number): void {
    this.observe(epoch, seq, true);
  }

  private observe(epoch: number, seq: number, isSnapshot: boolean): void {
    if (this.epoch !== undefined && epoch !== this.epoch) {
      // A new epoch restarts the seq space: close the old segment at what it reached.
      const t = this.tallyCurrent(this.maxSeen);
      this.closed.expected += t.expected;
      this.closed.received += t.received;
      this.runs = [];
      this.base = undefined;
      this.pre = undefined;
      this.maxSeen = 0;
    }
    this.epoch = epoch;
    if (seq > this.maxSeen) this.maxSeen = seq;
    if (!this.measuring) {
      if (this.pre === undefined || seq > this.pre) this.pre = seq;
      return;
    }
    if (this.base === undefined) {
      // First quote of the window: a snapshot is the starting state; a live
      // quote is the first delivered tick.
      this.base = isSnapshot ? seq : seq - 1;
      if (isSnapshot) return;
    }
    if (seq <= this.base) return;
    this.insert(seq);
  }

  private insert(seq: number): void {
    const r = this.runs;
    const n = r.length;
    if (n === 0) {
      r.push(seq, seq);
      return;
    }
    const lastEnd = r[n - 1]!;
    if (seq === lastEnd + 1) {
      r[n - 1] = seq;
      return;
    }
    if (seq > lastEnd + 1) {
      r.push(seq, seq);
      return;
    }
    // Rare: a seq at or below the newest one.
    for (let i = n - 2; i >= 0; i -= 2) {
      const start = r[i]!;
      const end = r[i + 1]!;
      if (seq >= start && seq <= end) {
        this.duplicates++;
        return;
      }
      if (seq > end) {
        this.outOfOrder++;
        // Between run i and run i+2 (which exists, since seq < lastEnd).
        const nextStart = r[i + 2]!;
        if (seq === end + 1 && seq === nextStart - 1)
          r.splice(i + 1, 2); // joins two runs
        else if (seq === end + 1) r[i + 1] = seq;
        else if (seq === nextStart - 1) r[i + 2] = seq;
        else r.splice(i + 2, 0, seq, seq);
        return;
      }
    }
    this.outOfOrder++;
    if (seq === r[0]! - 1) r[0] = seq;
    else r.unshift(seq, seq);
  }

  private tallyCurrent(cutoff: number): Tally {
    if (this.base === undefined || cutoff <= this.base) return { expected: 0, received: 0 };
    let received = 0;
    for (let i = 0; i < this.runs.length; i += 2) {
      const start = this.runs[i]!;
      const end = Math.min(this.runs[i + 1]!, cutoff);
      if (end >= start) received += end - start + 1;
    }
    return { expected: cutoff - this.base, received };
  }

  /**
   * Expected and received seqs up to the cut-off. Without a cut-off for this
   * epoch, the highest seq this client saw is used (a weaker check: losses at
   * the very end are not seen).
   */
  tally(cutoff?: SeqCutoff): Tally {
    const c = cutoff !== undefined && cutoff.epoch === this.epoch ? cutoff.seq : this.maxSeen;
    const t = this.tallyCurrent(c);
    return { expected: this.closed.expected + t.expected, received: this.closed.received + t.received };
  }
}

export interface DeliverySummary {
  expected: number;
  received: number;
  /** received / expected (1 when nothing was expected). */
  share: number;
  /** The worst client's share. */
  worstClientShare: number;
  clientsMeasured: number;
}

/** Folds per-client tallies (one Tally per client, summed over its symbols). */
export function summarizeDelivery(perClient: Iterable<Tally>): DeliverySummary {
  let expected = 0;
  let received = 0;
  let worst = 1;
  let clients = 0;
  for (const t of perClient) {
    expected += t.expected;
    received += t.received;
    if (t.expected > 0) {
      clients++;
      worst = Math.min(worst, t.received / t.expected);
    }
  }
  return {
    expected,
    received,
    share: expected === 0 ? 1 : received / expected,
    worstClientShare: worst,
    clientsMeasured: clients,
  };
}

/** Merges summaries from several workers. */
export function mergeDelivery(parts: DeliverySummary[]): DeliverySummary {
  const expected = parts.reduce((a, p) => a + p.expected, 0);
  const received = parts.reduce((a, p) => a + p.received, 0);
  const measured = parts.filter((p) => p.clientsMeasured > 0);
  return {
    expected,
    received,
    share: expected === 0 ? 1 : received / expected,
    worstClientShare: measured.length ? Math.min(...measured.map((p) => p.worstClientShare)) : 1,
    clientsMeasured: parts.reduce((a, p) => a + p.clientsMeasured, 0),
  };
}
