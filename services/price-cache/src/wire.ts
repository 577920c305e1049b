// StreamQuotesResponse encoded from quotes that are already protobuf bytes:
// an update is serialized once (by the replica that applied it) and every
// stream copies those bytes into its frames instead of encoding per
// recipient. The layout is exactly what ts-proto would write (tested).
import { GetQuoteResponse, PriceServiceService, StreamQuotesResponse_Kind } from '@tickmesh/kit/proto';

export interface QuoteBytes {
  bytes: Uint8Array;
  /** Earlier updates of the symbol were conflated into this one (sets Quote.conflated). */
  conflated: boolean;
}

export interface StreamFrame {
  kind: StreamQuotesResponse_Kind;
  quotes: QuoteBytes[];
  serverTimeMs: number;
  epoch: number;
  heartbeatIntervalMs: number;
  /** The last KIND_SNAPSHOT message of a snapshot. */
  snapshotComplete?: boolean;
}

// Quote field 18 (conflated), varint, value 1. Appended after the quote's
// bytes: protobuf takes the last value of a repeated scalar field.
const CONFLATED = Uint8Array.of(0x90, 0x01, 0x01);

function varintLength(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

export function encodeStreamFrame(f: StreamFrame): Buffer {
  let size = 0;
  if (f.kind !== 0) size += 1 + varintLength(f.kind);
  for (const q of f.quotes) {
    const len = q.bytes.length + (q.conflated ? CONFLATED.length : 0);
    size += 1 + varintLength(len) + len;
  }
  if (f.serverTimeMs !== 0) size += 1 + varintLength(f.serverTimeMs);
  if (f.epoch !== 0) size += 1 + varintLength(f.epoch);
  if (f.heartbeatIntervalMs !== 0) size += 1 + varintLength(f.heartbeatIntervalMs);
  if (f.snapshotComplete) size += 2;
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (f.kind !== 0) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, f.kind);
  }
  for (const q of f.quotes) {
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, q.bytes.length + (q.conflated ? CONFLATED.length : 0));
    buf.set(q.bytes, pos);
    pos += q.bytes.length;
    if (q.conflated) {
      buf.set(CONFLATED, pos);
      pos += CONFLATED.length;
    }
  }
  if (f.serverTimeMs !== 0) {
    buf[pos++] = 0x18;
    pos = writeVarint(buf, pos, f.serverTimeMs);
  }
  if (f.epoch !== 0) {
    buf[pos++] = 0x20;
    pos = writeVarint(buf, pos, f.epoch);
  }
  if (f.heartbeatIntervalMs !== 0) {
    buf[pos++] = 0x28;
    pos = writeVarint(buf, pos, f.heartbeatIntervalMs);
  }
  if (f.snapshotComplete) {
    buf[pos] = 0x30; // field 6, varint
    buf[pos + 1] = 1;
  }
  return buf;
}

/** What the fan-out needs of an encoded Quote, read without decoding it. */
export interface QuoteHead {
  symbol: string;
  seq: number;
  epoch: number;
}

/**
 * Reads symbol (1), seq (13) and epoch (14) of an encoded Quote by walking
 * its fields: every replica sees every update, and a full decode per update
 * would cost more than the rest of the fan-out. Throws on malformed bytes.
 */
export function scanQuote(b: Uint8Array): QuoteHead {
  let i = 0;
  let symbol = '';
  let seq = 0;
  let epoch = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= b.length) throw new Error('truncated varint');
      const byte = b[i++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (i < b.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0: {
        const v = varint();
        if (field === 13) seq = v;
        else if (field === 14) epoch = v;
        break;
      }
      case 1:
        i += 8;
        break;
      case 2: {
        const len = varint();
        if (i + len > b.length) throw new Error('truncated field');
        if (field === 1) symbol = String.fromCharCode(...b.subarray(i, i + len));
        i += len;
        break;
      }
      case 5:
        i += 4;
        break;
      default:
        throw new Error(`wire type ${tag % 8}`);
    }
    if (i > b.length) throw new Error('truncated field');
  }
  return { symbol, seq, epoch };
}

/** A response that may carry its own encoding (sent as is). */
export const ENCODED = Symbol('encoded');
export type PreEncoded<T> = T & { [ENCODED]?: Buffer };

/** GetQuoteResponse bytes around an encoded Quote (field 1): built once per quote, not per call. */
export function encodeGetQuoteResponse(quoteBytes: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(1 + varintLength(quoteBytes.length) + quoteBytes.length);
  buf[0] = 0x0a;
  const pos = writeVarint(buf, 1, quoteBytes.length);
  buf.set(quoteBytes, pos);
  return buf;
}

/**
 * The PriceService definition whose StreamQuotes responses are StreamFrames
 * and whose GetQuote responses may come pre-encoded.
 */
export const priceServiceDefinition = {
  ...PriceServiceService,
  getQuote: {
    ...PriceServiceService.getQuote,
    responseSerialize: (v: PreEncoded<GetQuoteResponse>): Buffer =>
      v[ENCODED] ?? Buffer.from(GetQuoteResponse.encode(v).finish()),
  },
  streamQuotes: {
    ...PriceServiceService.streamQuotes,
    responseSerialize: (frame: StreamFrame): Buffer => encodeStreamFrame(frame),
  },
};

export { StreamQuotesResponse_Kind };
