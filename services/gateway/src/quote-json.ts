// The JSON form of a quote on the WebSocket (docs/websocket-protocol.md).
// Serialized once when the quote arrives from upstream; every frame that
// carries it splices the same string in (and the same encoded Quote for the
// binary encoding, proto-codec.ts).
import type { Quote } from '@tickmesh/kit/proto';

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

/** Quote.conflated = true: the tag of field 18, wire type varint ((18 << 3) | 0 = 144 as a varint), then 1. */
const CONFLATED_TRUE = Uint8Array.of(0x90, 0x01, 0x01);

/**
 * An encoded market.v1 Quote marked conflated: field 18 (bool) appended. In
 * protobuf the last occurrence of a scalar field wins, so appending sets it
 * without re-encoding the quote.
 */
export function conflatedProto(proto: Uint8Array): Uint8Array {
  const out = new Uint8Array(proto.length + CONFLATED_TRUE.length);
  out.set(proto, 0);
  out.set(CONFLATED_TRUE, proto.length);
  return out;
}
