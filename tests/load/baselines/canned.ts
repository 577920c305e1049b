// Canned messages for the bare baselines, shaped like what the real services
// answer (a full Quote per symbol of the bist30 universe, a full Customer),
// so bare and real responses have about the same encoded size.
import type { Quote, Customer } from '@tickmesh/kit/proto';
import { loadUniverse } from '@tickmesh/kit';

export function cannedQuote(symbol: string, referencePrice: number, seq = 1, now = Date.now()): Quote {
  const last = Math.round(referencePrice * 1.0123 * 100) / 100;
  return {
    symbol,
    last,
    bid: Math.round((last - 0.05) * 100) / 100,
    ask: Math.round((last + 0.05) * 100) / 100,
    open: referencePrice,
    high: Math.round(last * 1.01 * 100) / 100,
    low: Math.round(referencePrice * 0.99 * 100) / 100,
    prevClose: referencePrice,
    volume: 1_234_567,
    change: Math.round((last - referencePrice) * 100) / 100,
    changePct: Math.round(((100 * (last - referencePrice)) / referencePrice) * 100) / 100,
    eventTimeMs: now,
    seq,
    epoch: 1,
    lastSize: 250,
    sessionDate: new Date(now).toISOString().slice(0, 10),
    appliedTimeMs: now,
    conflated: false,
    trades: 4321,
  };
}

/** One quote per instrument of the market (30 for bist30). */
export function cannedQuotes(market = 'bist30'): Quote[] {
  return loadUniverse(market).instruments.map((i) => cannedQuote(i.symbol, i.referencePrice));
}

export function cannedCustomer(id: string, now = Date.now()): Customer {
  return {
    id,
    firstName: 'Ada',
    lastName: 'Lovelace',
    email: 'ada.lovelace@example.com',
    createTimeMs: now,
    updateTimeMs: now,
  };
}
