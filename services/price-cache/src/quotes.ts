// The boundary from integer minor units to wire doubles: every price leaves
// as the double nearest to its decimal (fromUnits), so clients never see
// 123.45000000001; change % is rounded to two decimals.
import { BarInterval, type Bar, type Quote } from '@tickmesh/kit/proto';
import { round } from '@tickmesh/kit';
import type { BarState, Interval, QuoteState } from './state.js';

const POW10 = Array.from({ length: 16 }, (_, d) => 10 ** d);

/**
 * Minor units -> the double nearest to the decimal, as decimal.ts fromUnits
 * but without toFixed (it runs seven times per applied tick). Exact: units
 * (< 2^53) and 10^d (d <= 15) are exact doubles and IEEE division rounds
 * the true quotient to the nearest double, which is the double nearest to
 * the decimal itself (tested against fromUnits).
 */
export function unitsToPrice(units: number, decimals: number): number {
  return units / POW10[decimals]!;
}

const fromUnits = unitsToPrice;

export function toQuote(symbol: string, s: QuoteState, decimals: number, epoch: number): Quote {
  const change = s.last - s.prevClose;
  return {
    symbol,
    last: fromUnits(s.last, decimals),
    bid: fromUnits(s.bid, decimals),
    ask: fromUnits(s.ask, decimals),
    open: fromUnits(s.open, decimals),
    high: fromUnits(s.high, decimals),
    low: fromUnits(s.low, decimals),
    prevClose: fromUnits(s.prevClose, decimals),
    volume: s.volume,
    change: fromUnits(change, decimals),
    changePct: s.prevClose > 0 ? round((100 * change) / s.prevClose, 2) : 0,
    eventTimeMs: s.eventTimeMs,
    seq: s.seq,
    epoch,
    lastSize: s.lastSize,
    sessionDate: s.day,
    appliedTimeMs: s.appliedTimeMs,
    conflated: false,
    trades: s.trades,
  };
}

export const BAR_INTERVALS: Record<Interval, BarInterval> = {
  s: BarInterval.BAR_INTERVAL_SECOND,
  m: BarInterval.BAR_INTERVAL_MINUTE,
};

export function toBar(symbol: string, interval: Interval, b: BarState, decimals: number): Bar {
  return {
    symbol,
    interval: BAR_INTERVALS[interval],
    startTimeMs: b.start,
    open: fromUnits(b.open, decimals),
    high: fromUnits(b.high, decimals),
    low: fromUnits(b.low, decimals),
    close: fromUnits(b.close, decimals),
    volume: b.volume,
    trades: b.trades,
  };
}
