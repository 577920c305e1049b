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

// A slot's row: its epoch (NaN before the first quote), the highest seq seen
// in that epoch, the highest seq seen before measuring (NaN: none), the base
// (seqs above it count; NaN until the window's first quote), and its single
// run of received seqs [START, END] (NaN: none, or spilled to a list).
const EPOCH = 0;
const MAX = 1;
const PRE = 2;
const BASE = 3;
const START = 4;
const END = 5;
const STRIDE = 6;

/**
 * The seqs of many symbols of one client, one row of numbers per symbol
 * (slot) in a single Float64Array. The load generator runs this for every
 * quote of every client (hundreds of thousands a second, on the machine that
 * runs the gateway): a Map and four objects per client and symbol cost a
 * cache miss each, which was a quarter of a load worker's CPU. In-order
 * delivery touches one row; gaps and reordering move the symbol's runs to a
 * list (rare).
 */
export class SeqTable {
  private rows = new Float64Array(0);
  /** Runs of the slots whose seqs did not arrive in order: [start, end, start, end, ...]. */
  private readonly spilled = new Map<number, number[]>();
  private measuring: boolean;
  /** What closed epochs reached, over all slots (a tally does not depend on their cut-offs). */
  private closedExpected = 0;
  private closedReceived = 0;
  duplicates = 0;
  outOfOrder = 0;

  constructor(measuring = false) {
    this.measuring = measuring;
  }

  /** Measuring starts: each slot's seqs after the last one already held count from now on. */
  startMeasuring(): void {
    if (this.measuring) return;
    this.measuring = true;
    const r = this.rows;
    for (let i = 0; i < r.length; i += STRIDE) r[i + BASE] = r[i + PRE]!;
  }

  /** Whether the slot has seen a quote. */
  has(slot: number): boolean {
    const i = slot * STRIDE;
    return i < this.rows.length && !Number.isNaN(this.rows[i + EPOCH]);
  }

  /** The slot's epoch, undefined before its first quote. */
  epochOf(slot: number): number | undefined {
    return this.has(slot) ? this.rows[slot * STRIDE + EPOCH] : undefined;
  }

  /** Highest seq the slot has seen in its current epoch (0 before any). */
  maxSeenOf(slot: number): number {
    return this.has(slot) ? this.rows[slot * STRIDE + MAX]! : 0;
  }

  /** Slots that have seen a quote, ascending. */
  *slots(): IterableIterator<number> {
    for (let slot = 0; slot * STRIDE < this.rows.length; slot++) if (this.has(slot)) yield slot;
  }

  /**
   * A live quote (in a `quotes` frame). True when it is the slot's latest
   * state: the first of its epoch, or no older than any seen.
   */
  quote(slot: number, epoch: number, seq: number): boolean {
    return this.observe(slot, epoch, seq, false);
  }

  /** A snapshot quote: state, not a tick. It sets the base when the slot has none yet. */
  snapshot(slot: number, epoch: number, seq: number): boolean {
    return this.observe(slot, epoch, seq, true);
  }

  private observe(slot: number, epoch: number, seq: number, isSnapshot: boolean): boolean {
    const i = slot * STRIDE;
    if (i >= this.rows.length) this.grow(slot);
    const r = this.rows;
    const current = r[i + EPOCH]!;
    const newest = current !== epoch || seq >= r[i + MAX]!;
    if (current !== epoch && !Number.isNaN(current)) {
      // A new epoch restarts the seq space: close the old segment at what it reached.
      this.closedExpected += this.expectedUpTo(i, r[i + MAX]!);
      this.closedReceived += this.receivedUpTo(slot, r[i + MAX]!);
      r[i + MAX] = 0;
      r[i + PRE] = r[i + BASE] = r[i + START] = r[i + END] = NaN;
      this.spilled.delete(slot);
    }
    r[i + EPOCH] = epoch;
    if (seq > r[i + MAX]!) r[i + MAX] = seq;
    if (!this.measuring) {
      const pre = r[i + PRE]!;
      if (Number.isNaN(pre) || seq > pre) r[i + PRE] = seq;
      return newest;
    }
    let base = r[i + BASE]!;
    if (Number.isNaN(base)) {
      // First quote of the window: a snapshot is the starting state; a live
      // quote is the first delivered tick.
      base = r[i + BASE] = isSnapshot ? seq : seq - 1;
      if (isSnapshot) return newest;
    }
    if (seq <= base) return newest;
    const end = r[i + END]!;
    if (seq === end + 1) {
      r[i + END] = seq; // in order: the common case
      return newest;
    }
    if (Number.isNaN(end)) {
      const runs = this.spilled.get(slot);
      if (runs) this.insert(runs, seq);
      else r[i + START] = r[i + END] = seq;
      return newest;
    }
    // Out of the single run: keep this slot's runs in a list from now on.
    const runs = [r[i + START]!, end];
    r[i + START] = r[i + END] = NaN;
    this.spilled.set(slot, runs);
    this.insert(runs, seq);
    return newest;
  }

  private grow(slot: number): void {
    const rows = new Float64Array(Math.max(slot + 1, (this.rows.length / STRIDE) * 2, 8) * STRIDE);
    rows.fill(NaN);
    for (let i = MAX; i < rows.length; i += STRIDE) rows[i] = 0;
    rows.set(this.rows);
    this.rows = rows;
  }

  private insert(r: number[], seq: number): void {
    const n = r.length;
    const lastEnd = r[n - 1]!;
    if (seq === lastEnd + 1) {
      r[n - 1] = seq;
      return;
    }
    if (seq > lastEnd + 1) {
      r.push(seq, seq);
      return;
    }
    // A seq at or below the newest one.
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

  private expectedUpTo(i: number, cutoff: number): number {
    const base = this.rows[i + BASE]!;
    return Number.isNaN(base) || cutoff <= base ? 0 : cutoff - base;
  }

  private receivedUpTo(slot: number, cutoff: number): number {
    const i = slot * STRIDE;
    const base = this.rows[i + BASE]!;
    if (Number.isNaN(base) || cutoff <= base) return 0;
    const runs = this.spilled.get(slot) ?? [this.rows[i + START]!, this.rows[i + END]!];
    let received = 0;
    for (let k = 0; k < runs.length; k += 2) {
      const end = Math.min(runs[k + 1]!, cutoff);
      if (end >= runs[k]!) received += end - runs[k]! + 1; // false for NaN: no run
    }
    return received;
  }

  /** What closed epochs (of any slot) reached: add it once to the slots' tallies. */
  get closed(): Tally {
    return { expected: this.closedExpected, received: this.closedReceived };
  }

  /**
   * The slot's expected and received seqs in its current epoch, up to the
   * cut-off. Without a cut-off for this epoch, the highest seq the slot saw is
   * used (a weaker check: losses at the very end are not seen).
   */
  tallyCurrent(slot: number, cutoff?: SeqCutoff): Tally {
    if (!this.has(slot)) return { expected: 0, received: 0 };
    const i = slot * STRIDE;
    const c =
      cutoff !== undefined && cutoff.epoch === this.rows[i + EPOCH] ? cutoff.seq : this.rows[i + MAX]!;
    return { expected: this.expectedUpTo(i, c), received: this.receivedUpTo(slot, c) };
  }

  /** Expected and received seqs over every slot, closed epochs included, each slot up to its cut-off. */
  tally(cutoffOf: (slot: number) => SeqCutoff | undefined = () => undefined): Tally {
    let { expected, received } = this.closed;
    for (const slot of this.slots()) {
      const x = this.tallyCurrent(slot, cutoffOf(slot));
      expected += x.expected;
      received += x.received;
    }
    return { expected, received };
  }
}

/** Symbol → slot: a client keeps its per-symbol state in rows indexed by slot (SeqTable). */
export class SymbolSlots {
  private readonly bySymbol = new Map<string, number>();
  private readonly symbols: string[] = [];

  slotOf(symbol: string): number {
    let slot = this.bySymbol.get(symbol);
    if (slot === undefined) {
      slot = this.symbols.push(symbol) - 1;
      this.bySymbol.set(symbol, slot);
    }
    return slot;
  }

  /** The slot's symbol (slots come from slotOf only). */
  symbolAt(slot: number): string {
    return this.symbols[slot]!;
  }

  /** The symbol's slot, undefined if no frame had it. */
  find(symbol: string): number | undefined {
    return this.bySymbol.get(symbol);
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
