// In-process copy of the latest quote per symbol, kept current by quotes.>
// (every replica sees every applied update) and reloaded from Redis when the
// epoch changes. GetQuote/ListQuotes and stream snapshots read it, so a
// unary call costs no Redis round trip. Each entry keeps its protobuf bytes:
// streams forward them without encoding again.
import { Quote } from '@tickmesh/kit/proto';
import { toQuote } from './quotes.js';
import type { QuoteState } from './state.js';

/** The latest quote of a symbol: its bytes, decoded only when a caller needs the object. */
export class MirrorEntry {
  /** GetQuoteResponse encoding, made on first use. */
  response: Buffer | undefined;

  constructor(
    readonly symbol: string,
    readonly seq: number,
    readonly epoch: number,
    readonly bytes: Uint8Array,
    private decoded?: Quote,
  ) {}

  get quote(): Quote {
    return (this.decoded ??= Quote.decode(this.bytes));
  }
}

export class QuoteMirror {
  private readonly entries = new Map<string, MirrorEntry>();
  private currentEpoch = 0;
  private loaded = 0;

  constructor(
    private readonly deps: {
      /** States from Redis (absent symbols left out). */
      readStates: (symbols: string[]) => Promise<Map<string, QuoteState>>;
      listSymbols: () => Promise<string[]>;
      decimalsOf: (symbol: string) => number;
    },
  ) {}

  get epoch(): number {
    return this.currentEpoch;
  }

  /** The epoch whose full load from Redis has completed (0: none yet). */
  get loadedEpoch(): number {
    return this.loaded === this.currentEpoch ? this.loaded : 0;
  }

  get size(): number {
    return this.entries.size;
  }

  get(symbol: string): MirrorEntry | undefined {
    return this.entries.get(symbol);
  }

  symbols(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Takes an update; false when it is older than what the mirror has or of another epoch. */
  offer(symbol: string, seq: number, epoch: number, bytes: Uint8Array, quote?: Quote): boolean {
    if (epoch !== this.currentEpoch) return false;
    const cur = this.entries.get(symbol);
    if (cur && cur.seq >= seq) return false;
    this.entries.set(symbol, new MirrorEntry(symbol, seq, epoch, bytes, quote));
    return true;
  }

  /**
   * Switches to `epoch` and loads every symbol from Redis. Updates arriving
   * meanwhile are kept when newer than what the load returns.
   */
  async reload(epoch: number): Promise<void> {
    if (epoch !== this.currentEpoch) {
      this.currentEpoch = epoch;
      this.entries.clear();
    }
    const symbols = await this.deps.listSymbols();
    for (let i = 0; i < symbols.length; i += 500) await this.fetch(symbols.slice(i, i + 500));
    if (this.currentEpoch === epoch) this.loaded = epoch;
  }

  /** Loads the symbols from Redis into the mirror (a miss); returns those found. */
  async fetch(symbols: string[]): Promise<MirrorEntry[]> {
    const epoch = this.currentEpoch;
    const states = await this.deps.readStates(symbols);
    const out: MirrorEntry[] = [];
    if (epoch !== this.currentEpoch) return out; // the epoch moved on while reading: stale
    for (const [symbol, state] of states) {
      const q = toQuote(symbol, state, this.deps.decimalsOf(symbol), epoch);
      this.offer(symbol, q.seq, epoch, Quote.encode(q).finish(), q);
      const e = this.entries.get(symbol);
      if (e) out.push(e);
    }
    return out;
  }
}
