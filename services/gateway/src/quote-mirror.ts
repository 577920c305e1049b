// The gateway's copy of the latest quote per symbol, kept from the upstream
// stream. It answers client snapshots at once, and its per-symbol seq check
// drops anything not newer than what it holds, so two overlapping upstream
// streams (make-before-break) never produce a duplicate or a step back.
import { Quote } from '@tickmesh/kit/proto';
import { isValidSymbol } from '@tickmesh/kit';
import { conflatedJson, conflatedProto, quoteJson } from './quote-json.js';

export interface MirrorEntry {
  readonly symbol: string;
  readonly seq: number;
  readonly epoch: number;
  /** Event time of the tick behind this state (Unix ms). */
  readonly ts: number;
  /** Serialized quote (never marked conflated). */
  readonly json: string;
  /** The same quote as an encoded market.v1 Quote, for binary clients (never marked conflated). */
  readonly proto: Uint8Array;
}

/** One update to fan out: the new state, serialized, marked conflated when updates were skipped. */
export interface QuoteUpdate {
  readonly symbol: string;
  readonly seq: number;
  readonly ts: number;
  readonly json: string;
  /** Encoded market.v1 Quote, conflated set as in json. */
  readonly proto: Uint8Array;
  readonly conflated: boolean;
}

export type ApplyResult =
  | { kind: 'applied'; update: QuoteUpdate }
  /** Not newer than the mirror's state (duplicate from an overlapping stream, or stale). */
  | { kind: 'stale' }
  /** The quote belongs to another epoch: the caller must re-snapshot. */
  | { kind: 'epoch' }
  /** Malformed, or a new symbol beyond the size cap. */
  | { kind: 'rejected'; reason: string };

export class QuoteMirror {
  private readonly entries = new Map<string, MirrorEntry>();
  private currentEpoch: number | undefined;

  constructor(private readonly maxSymbols: number) {}

  get epoch(): number | undefined {
    return this.currentEpoch;
  }

  get size(): number {
    return this.entries.size;
  }

  get(symbol: string): MirrorEntry | undefined {
    return this.entries.get(symbol);
  }

  values(): IterableIterator<MirrorEntry> {
    return this.entries.values();
  }

  /** Replaces the whole state with a snapshot of `epoch`. Returns the number of quotes rejected. */
  replaceAll(quotes: readonly Quote[], epoch: number): number {
    this.entries.clear();
    this.currentEpoch = epoch;
    let rejected = 0;
    for (const q of quotes) {
      const r = this.apply({ ...q, epoch: q.epoch || epoch });
      if (r.kind !== 'applied' && r.kind !== 'stale') rejected++;
    }
    return rejected;
  }

  /** Applies one quote if it is newer than the state held for its symbol. */
  apply(q: Quote): ApplyResult {
    if (!isValidSymbol(q.symbol)) return { kind: 'rejected', reason: 'bad symbol' };
    if (!Number.isSafeInteger(q.seq) || q.seq < 0) return { kind: 'rejected', reason: 'bad seq' };
    if (!Number.isFinite(q.last)) return { kind: 'rejected', reason: 'bad price' };
    if (this.currentEpoch !== undefined && q.epoch !== this.currentEpoch) return { kind: 'epoch' };
    const prev = this.entries.get(q.symbol);
    if (prev !== undefined && q.seq <= prev.seq) return { kind: 'stale' };
    if (prev === undefined && this.entries.size >= this.maxSymbols)
      return { kind: 'rejected', reason: 'symbol cap' };
    // Both encodings once per update (a few µs at a few hundred updates/s),
    // so no frame ever serializes a quote again, whichever encoding it goes out in.
    const json = quoteJson(q);
    const proto = Quote.encode({ ...q, conflated: false }).finish();
    const entry: MirrorEntry = {
      symbol: q.symbol,
      seq: q.seq,
      epoch: q.epoch,
      ts: q.eventTimeMs,
      json,
      proto,
    };
    this.entries.set(q.symbol, entry);
    // A jump in seq means this state stands for updates we never saw: say so.
    const conflated = q.conflated || (prev !== undefined && q.seq > prev.seq + 1);
    return {
      kind: 'applied',
      update: {
        symbol: q.symbol,
        seq: q.seq,
        ts: q.eventTimeMs,
        json: conflated ? conflatedJson(json) : json,
        proto: conflated ? conflatedProto(proto) : proto,
        conflated,
      },
    };
  }
}
