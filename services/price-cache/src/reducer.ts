// The apply step as a pure function of (stored state, one JetStream message):
// no I/O, no clock except the `nowMs` it is given (only stamped as
// applied_time_ms). Everything the cache holds is therefore a deterministic
// function of the stream, which is what makes redeliveries, several replicas
// and rebuilds converge on one state (docs/price-cache.md).
import type { Tick } from '@tickmesh/kit/proto';
import { roundToTickUnits, localTime, isValidSymbol } from '@tickmesh/kit';
import type { Instrument } from '@tickmesh/kit';
import { INTERVAL_MS, type BarState, type Interval, type QuoteState, type Watermark } from './state.js';

export interface ReducerContext {
  instrumentOf(symbol: string): Instrument;
  /** Trading day (YYYY-MM-DD in the market's time zone) of an event time. */
  dayOf(eventTimeMs: number): string;
  /** A tick older than this vs the symbol's newest bar-touching event time leaves bars alone. */
  lateTickBoundMs: number;
  /** Watermarks kept per symbol (the producer seen longest ago goes first). */
  maxProducersPerSymbol: number;
}

/** The state of one symbol as read from a store, changed in place by applyMessage. */
export interface SymbolView {
  readonly symbol: string;
  state: QuoteState | undefined;
  readonly watermarks: Map<string, Watermark>;
  /** Bars that can still change (at least those within the late bound); more is harmless. */
  readonly bars: Record<Interval, Map<number, BarState>>;
  readonly dirty: {
    state: boolean;
    wmSet: Set<string>;
    wmDel: Set<string>;
    bars: Record<Interval, Set<number>>;
  };
}

export function newView(
  symbol: string,
  state?: QuoteState,
  watermarks: Map<string, Watermark> = new Map(),
  bars: Record<Interval, Map<number, BarState>> = { s: new Map(), m: new Map() },
): SymbolView {
  return {
    symbol,
    state,
    watermarks,
    bars,
    dirty: { state: false, wmSet: new Set(), wmDel: new Set(), bars: { s: new Set(), m: new Set() } },
  };
}

export function isDirty(v: SymbolView): boolean {
  return (
    v.dirty.state ||
    v.dirty.wmSet.size > 0 ||
    v.dirty.wmDel.size > 0 ||
    v.dirty.bars.s.size > 0 ||
    v.dirty.bars.m.size > 0
  );
}

export function clearDirty(v: SymbolView): void {
  v.dirty.state = false;
  v.dirty.wmSet.clear();
  v.dirty.wmDel.clear();
  v.dirty.bars.s.clear();
  v.dirty.bars.m.clear();
}

/**
 * Bars starting before this can never change again for a symbol whose newest
 * bar-touching event time is `maxEventTimeMs`: an older tick is late and
 * leaves bars alone (applyMessage).
 */
export function finalBefore(maxEventTimeMs: number, lateTickBoundMs: number, interval: Interval): number {
  if (maxEventTimeMs <= 0) return Number.NEGATIVE_INFINITY;
  return alignDown(maxEventTimeMs - lateTickBoundMs, INTERVAL_MS[interval]);
}

/** Drops bars no tick can change any more (replay keeps views across many messages). */
export function pruneBars(v: SymbolView, lateTickBoundMs: number): void {
  const mt = v.state?.maxEventTimeMs ?? 0;
  for (const interval of ['s', 'm'] as const) {
    const floor = finalBefore(mt, lateTickBoundMs, interval);
    for (const start of v.bars[interval].keys())
      if (start < floor && !v.dirty.bars[interval].has(start)) v.bars[interval].delete(start);
  }
}

export type SkipReason = 'invalid' | 'duplicate' | 'redelivered' | 'stale_day';

export interface AppliedTick {
  symbol: string;
  /** The symbol's full state right after this tick (a copy). */
  state: QuoteState;
}

export interface ApplyResult {
  applied: AppliedTick[];
  skipped: Record<SkipReason, number>;
  /** Applied ticks that were too late to touch bars. */
  lateBars: number;
}

const MAX_UNITS = 1e14;
const MAX_SIZE = 1e12;

/** Why a tick cannot be applied, or undefined. The ticker validates too; this guards the cache. */
export function tickProblem(t: Tick, instrument: Instrument | undefined): string | undefined {
  if (!isValidSymbol(t.symbol)) return 'symbol';
  if (typeof t.producerId !== 'string' || t.producerId.length === 0 || t.producerId.length > 128)
    return 'producer_id';
  if (!Number.isSafeInteger(t.producerSeq) || t.producerSeq < 1) return 'producer_seq';
  if (!Number.isSafeInteger(t.eventTimeMs) || t.eventTimeMs <= 0) return 'event_time_ms';
  if (!Number.isSafeInteger(t.size) || t.size < 0 || t.size > MAX_SIZE) return 'size';
  if (!instrument) return undefined;
  if (priceUnits(t.price, instrument) === undefined) return 'price';
  if (t.bid !== undefined && priceUnits(t.bid, instrument) === undefined) return 'bid';
  if (t.ask !== undefined && priceUnits(t.ask, instrument) === undefined) return 'ask';
  return undefined;
}

/** A price in minor units snapped to the tick grid (float noise only), or undefined when unusable. */
export function priceUnits(price: number, i: Instrument): number | undefined {
  if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) return undefined;
  const units = roundToTickUnits(price, i.decimals, i.tickUnits);
  return units > 0 && units <= MAX_UNITS ? units : undefined;
}

/** Distinct symbols of the ticks that could apply (the views a caller must load). */
export function symbolsOf(ticks: readonly Tick[]): string[] {
  const out = new Set<string>();
  for (const t of ticks) if (isValidSymbol(t.symbol)) out.add(t.symbol);
  return [...out];
}

/**
 * Applies the ticks of the message at `streamSeq` to `views` (one per symbol
 * of symbolsOf(ticks)), in order:
 *  - a symbol whose state already covers streamSeq (ss >= streamSeq) skips
 *    the whole message: it is a redelivery;
 *  - a tick whose producer_seq <= the (symbol, producer) watermark is a resend;
 *  - a tick of a trading day older than the symbol's current day is dropped;
 *  - otherwise the quote, the day's statistics and (unless late) the bars change
 *    and seq grows by one.
 */
export function applyMessage(
  views: Map<string, SymbolView>,
  ticks: readonly Tick[],
  streamSeq: number,
  ctx: ReducerContext,
  nowMs: number,
): ApplyResult {
  const result: ApplyResult = {
    applied: [],
    skipped: { invalid: 0, duplicate: 0, redelivered: 0, stale_day: 0 },
    lateBars: 0,
  };
  const covered = new Map<string, boolean>();
  const touched = new Set<SymbolView>();
  for (const t of ticks) {
    const instrument = isValidSymbol(t.symbol) ? ctx.instrumentOf(t.symbol) : undefined;
    if (!instrument || tickProblem(t, instrument) !== undefined) {
      result.skipped.invalid++;
      continue;
    }
    const view = views.get(t.symbol);
    if (!view) throw new Error(`no state loaded for ${t.symbol}`);
    let isCovered = covered.get(t.symbol);
    if (isCovered === undefined) {
      // Decided once per message, before this message changes ss.
      isCovered = view.state !== undefined && view.state.ss >= streamSeq;
      covered.set(t.symbol, isCovered);
    }
    if (isCovered) {
      result.skipped.redelivered++;
      continue;
    }
    const wm = view.watermarks.get(t.producerId);
    if (wm && t.producerSeq <= wm.seq) {
      result.skipped.duplicate++;
      continue;
    }
    view.watermarks.set(t.producerId, { seq: t.producerSeq, ss: streamSeq });
    view.dirty.wmSet.add(t.producerId);
    view.dirty.wmDel.delete(t.producerId);
    touched.add(view);

    const day = ctx.dayOf(t.eventTimeMs);
    if (view.state && day < view.state.day) {
      result.skipped.stale_day++;
      continue;
    }
    const units = priceUnits(t.price, instrument)!;
    const s = applyToQuote(view, t, units, day, instrument, streamSeq, nowMs);
    if (s.maxEventTimeMs > 0 && t.eventTimeMs < s.maxEventTimeMs - ctx.lateTickBoundMs) {
      result.lateBars++;
    } else {
      s.maxEventTimeMs = Math.max(s.maxEventTimeMs, t.eventTimeMs);
      applyToBar(view, 's', t.eventTimeMs, units, t.size);
      applyToBar(view, 'm', t.eventTimeMs, units, t.size);
    }
    result.applied.push({ symbol: t.symbol, state: { ...s } });
  }
  for (const view of touched) {
    if (view.state) {
      // Every message that changed anything of the symbol is covered from now on.
      view.state.ss = streamSeq;
      view.dirty.state = true;
    }
    evictWatermarks(view, ctx.maxProducersPerSymbol);
  }
  return result;
}

function applyToQuote(
  view: SymbolView,
  t: Tick,
  units: number,
  day: string,
  instrument: Instrument,
  streamSeq: number,
  nowMs: number,
): QuoteState {
  let s = view.state;
  if (!s) {
    // First trade ever: previous close is the universe's reference price
    // (or this trade's price for a symbol without one).
    const reference = priceUnits(instrument.referencePrice, instrument) ?? units;
    s = {
      ss: streamSeq,
      seq: 0,
      day,
      last: units,
      bid: 0,
      ask: 0,
      open: units,
      high: units,
      low: units,
      prevClose: reference,
      volume: 0,
      trades: 0,
      lastSize: 0,
      eventTimeMs: t.eventTimeMs,
      maxEventTimeMs: 0,
      appliedTimeMs: nowMs,
    };
    view.state = s;
  } else if (day > s.day) {
    // Session rollover: yesterday's last trade is today's previous close.
    s.prevClose = s.last;
    s.day = day;
    s.open = units;
    s.high = units;
    s.low = units;
    s.volume = 0;
    s.trades = 0;
  } else {
    if (units > s.high) s.high = units;
    if (units < s.low) s.low = units;
  }
  s.volume += t.size;
  s.trades += 1;
  s.last = units;
  s.lastSize = t.size;
  if (t.bid !== undefined) s.bid = priceUnits(t.bid, instrument)!;
  if (t.ask !== undefined) s.ask = priceUnits(t.ask, instrument)!;
  s.eventTimeMs = t.eventTimeMs;
  s.seq += 1;
  s.ss = streamSeq;
  s.appliedTimeMs = nowMs;
  view.dirty.state = true;
  return s;
}

function applyToBar(
  view: SymbolView,
  interval: Interval,
  eventTimeMs: number,
  units: number,
  size: number,
): void {
  const start = alignDown(eventTimeMs, INTERVAL_MS[interval]);
  const bars = view.bars[interval];
  const b = bars.get(start);
  if (!b) {
    bars.set(start, { start, open: units, high: units, low: units, close: units, volume: size, trades: 1 });
  } else {
    if (units > b.high) b.high = units;
    if (units < b.low) b.low = units;
    b.close = units;
    b.volume += size;
    b.trades += 1;
  }
  view.dirty.bars[interval].add(start);
}

function evictWatermarks(view: SymbolView, max: number): void {
  if (view.watermarks.size <= max) return;
  // Oldest by the stream seq that last carried the producer; ties by id, so
  // every replica and every rebuild evicts the same entries.
  const byAge = [...view.watermarks.entries()].sort(
    (a, b) => a[1].ss - b[1].ss || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
  );
  for (const [producer] of byAge.slice(0, view.watermarks.size - max)) {
    view.watermarks.delete(producer);
    view.dirty.wmSet.delete(producer);
    view.dirty.wmDel.add(producer);
  }
}

export function alignDown(timeMs: number, size: number): number {
  return timeMs - (((timeMs % size) + size) % size);
}

/** dayOf for a time zone, memoised per minute (every zone offset is whole minutes). */
export function makeDayOf(timeZone: string): (eventTimeMs: number) => string {
  let lastMinute = Number.NaN;
  let lastDay = '';
  return (eventTimeMs) => {
    const minute = Math.floor(eventTimeMs / 60_000);
    if (minute !== lastMinute) {
      lastDay = localTime(minute * 60_000, timeZone).date;
      lastMinute = minute;
    }
    return lastDay;
  };
}
