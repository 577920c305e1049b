// Per-symbol state as the price-cache keeps it: integer minor units for every
// price (no float drift), plus the bookkeeping that makes the apply
// idempotent (ss: last stream sequence applied; watermarks per producer).
// Also the string encodings used in Redis hashes, sorted-set members and
// checkpoints, so every store speaks the same format.

export interface QuoteState {
  /** Stream sequence of the last message applied to this symbol (redelivery guard). */
  ss: number;
  /** Per-symbol sequence: +1 per applied tick. */
  seq: number;
  /** Trading day (YYYY-MM-DD, market time zone) the day fields belong to. */
  day: string;
  last: number;
  bid: number;
  ask: number;
  open: number;
  high: number;
  low: number;
  prevClose: number;
  volume: number;
  trades: number;
  lastSize: number;
  /** Event time of the tick that produced this state. */
  eventTimeMs: number;
  /** Newest event time that touched bars (the late-tick bound is measured from it). */
  maxEventTimeMs: number;
  /** When it was applied (informational; not part of the replayable state). */
  appliedTimeMs: number;
}

export interface BarState {
  start: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
}

/** Highest producer_seq applied for (symbol, producer), and the stream seq that last carried it. */
export interface Watermark {
  seq: number;
  ss: number;
}

export type Interval = 's' | 'm';
export const INTERVAL_MS: Record<Interval, number> = { s: 1000, m: 60_000 };

/** Raised when stored state cannot be parsed: it is reported, never half-used. */
export class CorruptStateError extends Error {
  constructor(what: string) {
    super(`corrupt cache state: ${what}`);
    this.name = 'CorruptStateError';
  }
}

// The quote hash holds two fields: `ss` (read alone by the write script's
// compare-and-set) and `st`, the rest packed in one string: one argument per
// symbol instead of sixteen on the hot path.
const PACKED: Array<keyof QuoteState> = [
  'seq',
  'day',
  'last',
  'bid',
  'ask',
  'open',
  'high',
  'low',
  'prevClose',
  'volume',
  'trades',
  'lastSize',
  'eventTimeMs',
  'maxEventTimeMs',
  'appliedTimeMs',
];

/** The packed `st` field. */
export function packQuoteState(s: QuoteState): string {
  return `${s.seq}:${s.day}:${s.last}:${s.bid}:${s.ask}:${s.open}:${s.high}:${s.low}:${s.prevClose}:${s.volume}:${s.trades}:${s.lastSize}:${s.eventTimeMs}:${s.maxEventTimeMs}:${s.appliedTimeMs}`;
}

/** Flat [field, value, ...] of the quote hash (HSET). */
export function encodeQuoteState(s: QuoteState): string[] {
  return ['ss', String(s.ss), 'st', packQuoteState(s)];
}

/** Parses a quote hash; undefined when the symbol has no state (empty hash). */
export function decodeQuoteState(
  hash: Record<string, string> | null | undefined,
  symbol = '?',
): QuoteState | undefined {
  if (!hash || hash.ss === undefined) return undefined;
  const ss = Number(hash.ss);
  const parts = (hash.st ?? '').split(':');
  if (!Number.isSafeInteger(ss) || parts.length !== PACKED.length)
    throw new CorruptStateError(`${symbol}: quote ${hash.ss} ${hash.st}`);
  const out: Record<string, number | string> = { ss };
  PACKED.forEach((key, i) => {
    const raw = parts[i]!;
    if (key === 'day') {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(raw)) throw new CorruptStateError(`${symbol}: day ${raw}`);
      out[key] = raw;
    } else {
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || raw === '') throw new CorruptStateError(`${symbol}: ${key}=${raw}`);
      out[key] = n;
    }
  });
  return out as unknown as QuoteState;
}

/** Sorted-set member of a bar: the values ride in the member, the score is the start. */
export function encodeBar(b: BarState): string {
  return `${b.start}:${b.open}:${b.high}:${b.low}:${b.close}:${b.volume}:${b.trades}`;
}

export function decodeBar(member: string): BarState {
  const parts = member.split(':');
  if (parts.length !== 7) throw new CorruptStateError(`bar ${member}`);
  const n = parts.map(Number);
  if (!n.every(Number.isSafeInteger)) throw new CorruptStateError(`bar ${member}`);
  return { start: n[0]!, open: n[1]!, high: n[2]!, low: n[3]!, close: n[4]!, volume: n[5]!, trades: n[6]! };
}

export function encodeWatermark(w: Watermark): string {
  return `${w.seq}:${w.ss}`;
}

export function decodeWatermarks(
  hash: Record<string, string> | null | undefined,
  symbol = '?',
): Map<string, Watermark> {
  const out = new Map<string, Watermark>();
  if (!hash) return out;
  for (const [producer, value] of Object.entries(hash)) {
    const [seq, ss] = value.split(':').map(Number);
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(ss))
      throw new CorruptStateError(`${symbol}: watermark ${producer}=${value}`);
    out.set(producer, { seq: seq!, ss: ss! });
  }
  return out;
}

export function copyState(s: QuoteState): QuoteState {
  return { ...s };
}
