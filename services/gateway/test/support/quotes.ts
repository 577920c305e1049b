// Quote builders for unit tests.
import assert from 'node:assert/strict';
import type { Quote } from '@tickmesh/kit/proto';
import type { QuoteMirror, QuoteUpdate } from '../../src/quote-mirror.js';

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

/** Applies the quotes to the mirror, as the gateway does, and returns their updates; each must apply. */
export function appliedUpdates(mirror: QuoteMirror, ...quotes: Quote[]): QuoteUpdate[] {
  return quotes.map((q) => {
    const r = mirror.apply(q);
    assert.equal(r.kind, 'applied', `${q.symbol} seq ${q.seq} applies`);
    return (r as { update: QuoteUpdate }).update;
  });
}
