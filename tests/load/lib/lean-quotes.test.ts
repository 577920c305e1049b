// The counting client's lean StreamQuotesResponse decoder against the
// generated encoder: every field it reads comes out as written, every other
// field is stepped over whatever its value, and cut-off bytes are an error,
// never a wrong count.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeLeanStreamResponse } from '../grpc/lean-quotes.js';
import { cannedQuote } from '../baselines/canned.js';
import { StreamQuotesResponse, StreamQuotesResponse_Kind } from '@tickmesh/kit/proto';
import type { Quote } from '@tickmesh/kit/proto';

const int64 = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const uint64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const anyDouble = fc.double({ noNaN: true });

const quoteArb: fc.Arbitrary<Quote> = fc
  .record({
    symbol: fc.string({ maxLength: 12 }),
    last: anyDouble,
    bid: anyDouble,
    volume: int64,
    eventTimeMs: int64,
    seq: uint64,
    epoch: uint64,
    lastSize: int64,
    sessionDate: fc.string({ maxLength: 10 }),
    appliedTimeMs: int64,
    conflated: fc.boolean(),
    trades: int64,
  })
  .map((r) => ({ ...cannedQuote('X', 10), ...r }));

const responseArb = fc.record({
  kind: fc.constantFrom(
    ...Object.values(StreamQuotesResponse_Kind).filter(
      (v): v is StreamQuotesResponse_Kind => typeof v === 'number' && v >= 0,
    ),
  ),
  quotes: fc.array(quoteArb, { maxLength: 6 }),
  serverTimeMs: int64,
  epoch: uint64,
  heartbeatIntervalMs: fc.integer({ min: 0, max: 1_000_000 }),
  snapshotComplete: fc.boolean(),
});

void describe('lean StreamQuotesResponse decoder', () => {
  void it('reads what the generated encoder wrote, for any field values', () => {
    fc.assert(
      fc.property(responseArb, (r) => {
        const bytes = StreamQuotesResponse.encode(StreamQuotesResponse.fromPartial(r)).finish();
        const got = decodeLeanStreamResponse(bytes);
        assert.equal(got.kind, r.kind);
        assert.deepEqual(
          got.quotes,
          r.quotes.map((q) => ({
            symbol: q.symbol,
            eventTimeMs: q.eventTimeMs,
            seq: q.seq,
            epoch: q.epoch,
            conflated: q.conflated,
          })),
        );
      }),
    );
  });

  void it('rejects cut-off bytes instead of miscounting them', () => {
    fc.assert(
      fc.property(
        responseArb.filter((r) => r.quotes.length > 0),
        fc.nat(),
        (r, cut) => {
          const bytes = StreamQuotesResponse.encode(StreamQuotesResponse.fromPartial(r)).finish();
          const n = cut % bytes.length; // strictly shorter
          let decoded: ReturnType<typeof decodeLeanStreamResponse> | undefined;
          try {
            decoded = decodeLeanStreamResponse(bytes.subarray(0, n));
          } catch (err) {
            assert.ok(err instanceof RangeError, String(err));
            return;
          }
          // A cut exactly between two top-level fields is a shorter valid message: never more quotes.
          assert.ok(decoded.quotes.length <= r.quotes.length);
        },
      ),
    );
  });
});
