// A lean decoder of StreamQuotesResponse for the counting client: it reads
// only what is counted (kind; each quote's symbol, event time, seq, epoch,
// conflated) and skips the rest, so the client is not the bottleneck it would
// be decoding every field of every quote. Field numbers are those of
// proto/tickmesh/price/v1/price.proto and market/v1/market.proto.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { PriceServiceService } from '../../../services/common/src/gen/tickmesh/price/v1/price.js';

export interface LeanQuote {
  symbol: string;
  eventTimeMs: number;
  seq: number;
  epoch: number;
  conflated: boolean;
}

export interface LeanStreamResponse {
  kind: number;
  quotes: LeanQuote[];
}

export function decodeLeanQuote(reader: BinaryReader, length: number): LeanQuote {
  const end = reader.pos + length;
  const q: LeanQuote = { symbol: '', eventTimeMs: 0, seq: 0, epoch: 0, conflated: false };
  while (reader.pos < end) {
    const [field, wt] = reader.tag();
    switch (field) {
      case 1:
        q.symbol = reader.string();
        break;
      case 12:
        q.eventTimeMs = Number(reader.int64());
        break;
      case 13:
        q.seq = Number(reader.uint64());
        break;
      case 14:
        q.epoch = Number(reader.uint64());
        break;
      case 18:
        q.conflated = reader.bool();
        break;
      default:
        reader.skip(wt);
    }
  }
  return q;
}

export function decodeLeanStreamResponse(bytes: Uint8Array): LeanStreamResponse {
  const reader = new BinaryReader(bytes);
  const out: LeanStreamResponse = { kind: 0, quotes: [] };
  while (reader.pos < reader.len) {
    const [field, wt] = reader.tag();
    if (field === 1 && wt === WireType.Varint) out.kind = reader.int32();
    else if (field === 2 && wt === WireType.LengthDelimited)
      out.quotes.push(decodeLeanQuote(reader, reader.uint32()));
    else reader.skip(wt);
  }
  return out;
}

/** PriceService's StreamQuotes with the lean response decoder (for makeGenericClientConstructor). */
export const leanStreamQuotesDefinition = {
  streamQuotes: {
    ...PriceServiceService.streamQuotes,
    responseDeserialize: (b: Buffer) => decodeLeanStreamResponse(b),
  },
};
