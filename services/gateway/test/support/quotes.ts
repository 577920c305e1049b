// Quote builders for unit tests.
import type { Quote } from '../../../common/src/gen/tickmesh/market/v1/market.js';

export function quote(symbol: string, seq: number, fields: Partial<Quote> = {}): Quote {
  return {
    symbol,
    last: 100 + seq / 100,
    bid: 99.9,
    ask: 100.1,
    open: 100,
    high: 101,
    low: 99,
    prevClose: 100,
    volume: seq * 10,
    change: 0,
    changePct: 0,
    eventTimeMs: Date.now(),
    seq,
    epoch: 1,
    lastSize: 10,
    sessionDate: '2025-01-02',
    appliedTimeMs: Date.now(),
    conflated: false,
    trades: seq,
    ...fields,
  };
}
