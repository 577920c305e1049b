// The JSON form of a quote on the WebSocket (docs/websocket-protocol.md).
// Serialized once when the quote arrives from upstream; every frame that
// carries it splices the same string in.
import type { Quote } from '../../common/src/gen/tickmesh/market/v1/market.js';

/**
 * Fields in a fixed order. Prices arrive rounded to the tick size (doubles
 * nearest to the decimal), so JSON.stringify prints them as the decimal.
 */
export function quoteJson(q: Quote): string {
  return JSON.stringify({
    symbol: q.symbol,
    seq: q.seq,
    epoch: q.epoch,
    last: q.last,
    bid: q.bid,
    ask: q.ask,
    open: q.open,
    high: q.high,
    low: q.low,
    prevClose: q.prevClose,
    volume: q.volume,
    change: q.change,
    changePct: q.changePct,
    lastSize: q.lastSize,
    ts: q.eventTimeMs,
  });
}

/** The same quote marked `"conflated":true` (earlier updates of its symbol were skipped). */
export function conflatedJson(json: string): string {
  return `${json.slice(0, -1)},"conflated":true}`;
}
