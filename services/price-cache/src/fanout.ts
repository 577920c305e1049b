// The process subscribes once to quotes.> (core NATS): every replica sees
// every applied update, whichever replica applied it. Each update is decoded
// once (symbol, seq and epoch: no full decode), offered to the mirror, and
// (when it is news) handed to the streams
// that follow its symbol with its original bytes.
import { isValidSymbol } from '@tickmesh/kit';
import type { QuoteMirror } from './mirror.js';
import type { QuoteStreamSession } from './quote-stream.js';
import { scanQuote, type QuoteHead } from './wire.js';

/** Subject of the "cache rebuilt" notification (not a symbol: symbols never start with '_'). */
export const RESET_SUBJECT = 'quotes._reset';

export class QuoteHub {
  private readonly all = new Set<QuoteStreamSession>();
  private readonly bySymbol = new Map<string, Set<QuoteStreamSession>>();
  private count = 0;

  constructor(
    private readonly mirror: QuoteMirror,
    private readonly hooks: {
      /** A quote or notification of an epoch this process has not seen: check Redis. */
      onUnknownEpoch: () => void;
      onMalformed?: () => void;
    },
  ) {}

  get size(): number {
    return this.count;
  }

  /** Quotes waiting on all streams (each stream holds at most one per symbol). */
  pendingTotal(): number {
    let n = 0;
    for (const s of this.all) n += s.pendingCount;
    const seen = new Set<QuoteStreamSession>();
    for (const set of this.bySymbol.values()) {
      for (const s of set) {
        if (seen.has(s)) continue;
        seen.add(s);
        n += s.pendingCount;
      }
    }
    return n;
  }

  add(session: QuoteStreamSession): void {
    this.count++;
    if (session.opts.symbols === 'all') {
      this.all.add(session);
      return;
    }
    for (const s of session.opts.symbols) {
      let set = this.bySymbol.get(s);
      if (!set) this.bySymbol.set(s, (set = new Set()));
      set.add(session);
    }
  }

  remove(session: QuoteStreamSession): void {
    if (session.opts.symbols === 'all') {
      if (this.all.delete(session)) this.count--;
      return;
    }
    let removed = false;
    for (const s of session.opts.symbols) {
      const set = this.bySymbol.get(s);
      if (set?.delete(session)) removed = true;
      if (set && set.size === 0) this.bySymbol.delete(s);
    }
    if (removed) this.count--;
  }

  /** A message from quotes.>: read once (symbol, seq, epoch), fanned out with its own bytes. */
  handleMessage(subject: string, data: Uint8Array): void {
    if (subject === RESET_SUBJECT) {
      this.hooks.onUnknownEpoch();
      return;
    }
    let head: QuoteHead;
    try {
      head = scanQuote(data);
    } catch {
      this.hooks.onMalformed?.();
      return;
    }
    if (
      !isValidSymbol(head.symbol) ||
      subject.length !== 7 + head.symbol.length ||
      !subject.endsWith(head.symbol)
    ) {
      this.hooks.onMalformed?.();
      return;
    }
    // The subscription's buffer may be shared: keep a copy, made once for all streams.
    this.publish(head, data.slice());
  }

  publish(head: QuoteHead, bytes: Uint8Array): void {
    if (!this.mirror.offer(head.symbol, head.seq, head.epoch, bytes)) {
      if (head.epoch > this.mirror.epoch) this.hooks.onUnknownEpoch();
      return;
    }
    for (const session of this.all) session.offer(head.symbol, head.seq, head.epoch, bytes);
    const set = this.bySymbol.get(head.symbol);
    if (set) for (const session of set) session.offer(head.symbol, head.seq, head.epoch, bytes);
  }

  /** The epoch changed and the mirror holds the new state: every stream gets RESET + snapshot. */
  resetAll(epoch: number): void {
    for (const session of this.all) session.reset(epoch, this.snapshotFor(session));
    const done = new Set<QuoteStreamSession>();
    for (const set of this.bySymbol.values()) {
      for (const session of set) {
        if (done.has(session)) continue;
        done.add(session);
        session.reset(epoch, this.snapshotFor(session));
      }
    }
  }

  /** The mirror's current entries for what the session follows. */
  snapshotFor(session: QuoteStreamSession) {
    const symbols = session.opts.symbols === 'all' ? this.mirror.symbols() : [...session.opts.symbols].sort();
    return symbols.flatMap((s) => {
      const e = this.mirror.get(s);
      return e ? [e] : [];
    });
  }
}
