// The pure apply step: quotes, day rollover, bars, dedupe, the redelivery
// guard, and that the result does not depend on redeliveries or on which
// replica (a fresh read of the stored form) applied a message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Tick } from '@tickmesh/kit/proto';
import { loadUniverse, fromUnits, defaultInstrument } from '@tickmesh/kit';
import { toQuote, unitsToPrice } from '../src/quotes.js';
import {
  applyMessage,
  makeDayOf,
  newView,
  pruneBars,
  symbolsOf,
  tickProblem,
  type ReducerContext,
  type SymbolView,
} from '../src/reducer.js';
import {
  decodeBar,
  decodeQuoteState,
  decodeWatermarks,
  encodeBar,
  encodeQuoteState,
  encodeWatermark,
  type QuoteState,
} from '../src/state.js';

const universe = loadUniverse('bist30');
const ctx: ReducerContext = {
  instrumentOf: (s) => universe.bySymbol.get(s) ?? defaultInstrument(s),
  dayOf: makeDayOf(universe.session.timeZone),
  lateTickBoundMs: 5000,
  maxProducersPerSymbol: 3,
};
// 2024-03-04 10:00:00 in Istanbul (UTC+3).
const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);

function tick(symbol: string, price: number, over: Partial<Tick> = {}): Tick {
  return {
    symbol,
    price,
    size: 10,
    producerId: 'p1',
    producerSeq: 1,
    eventTimeMs: T0,
    bid: undefined,
    ask: undefined,
    ...over,
  };
}

function views(...symbols: string[]): Map<string, SymbolView> {
  return new Map(symbols.map((s) => [s, newView(s)]));
}

describe('applyMessage: quotes', () => {
  it('builds open/high/low/last/volume/trades/change and rounds at the boundary', () => {
    const v = views('THYAO');
    const r = applyMessage(
      v,
      [
        tick('THYAO', 286, { producerSeq: 1, size: 100, bid: 285.75, ask: 286.25 }),
        tick('THYAO', 287.5, { producerSeq: 2, size: 50, eventTimeMs: T0 + 10 }),
        tick('THYAO', 285.25, { producerSeq: 3, size: 25, eventTimeMs: T0 + 20 }),
      ],
      7,
      ctx,
      T0 + 30,
    );
    assert.equal(r.applied.length, 3);
    const s = v.get('THYAO')!.state!;
    assert.deepEqual(
      {
        ss: s.ss,
        seq: s.seq,
        open: s.open,
        high: s.high,
        low: s.low,
        last: s.last,
        volume: s.volume,
        trades: s.trades,
        pc: s.prevClose,
      },
      { ss: 7, seq: 3, open: 28600, high: 28750, low: 28525, last: 28525, volume: 175, trades: 3, pc: 28550 },
    );
    assert.equal(s.bid, 28575, 'bid kept from the tick that carried it');
    const q = toQuote('THYAO', s, 2, 42);
    assert.equal(q.last, 285.25);
    assert.equal(q.prevClose, 285.5);
    assert.equal(q.change, -0.25);
    assert.equal(q.changePct, -0.09); // -0.25 / 285.5 = -0.0875...%
    assert.equal(q.high, 287.5);
    assert.equal(q.epoch, 42);
    assert.equal(q.sessionDate, '2024-03-04');
    // One quote per applied tick, seq +1 each.
    assert.deepEqual(
      r.applied.map((a) => a.state.seq),
      [1, 2, 3],
    );
  });

  it('never shows float noise: 0.1 steps stay exact decimals', () => {
    const v = views('GARAN');
    const prices = [130.1, 130.2, 130.3, 130.7, 130.3];
    applyMessage(
      v,
      prices.map((p, i) => tick('GARAN', p, { producerSeq: i + 1 })),
      1,
      ctx,
      T0,
    );
    const q = toQuote('GARAN', v.get('GARAN')!.state!, 1, 1);
    assert.equal(q.last, 130.3);
    assert.equal(String(q.change), '0.3');
    assert.equal(String(q.high), '130.7');
    assert.equal(q.changePct, 0.23);
  });

  it('snaps float noise to the tick grid', () => {
    const v = views('GARAN');
    applyMessage(v, [tick('GARAN', 0.1 + 0.2 + 130)], 1, ctx, T0);
    assert.equal(toQuote('GARAN', v.get('GARAN')!.state!, 1, 1).last, 130.3);
  });

  it('uses the first price as previous close for a symbol outside the universe', () => {
    const v = views('ZZZ9');
    applyMessage(v, [tick('ZZZ9', 12.3456), tick('ZZZ9', 12.5, { producerSeq: 2 })], 1, ctx, T0);
    const q = toQuote('ZZZ9', v.get('ZZZ9')!.state!, 4, 1);
    assert.equal(q.prevClose, 12.3456);
    assert.equal(q.change, 0.1544);
    assert.equal(q.changePct, 1.25);
  });

  it('rejects invalid ticks without touching anything else', () => {
    const bad: Tick[] = [
      tick('thyao', 286),
      tick('THYAO', Number.NaN),
      tick('THYAO', -1),
      tick('THYAO', 0),
      tick('THYAO', Number.POSITIVE_INFINITY),
      tick('THYAO', 286, { size: -1 }),
      tick('THYAO', 286, { size: 1.5 }),
      tick('THYAO', 286, { producerId: '' }),
      tick('THYAO', 286, { producerSeq: 0 }),
      tick('THYAO', 286, { eventTimeMs: 0 }),
      tick('THYAO', 286, { bid: Number.NaN }),
      tick('THYAO', 286, { ask: -3 }),
    ];
    for (const t of bad)
      assert.ok(tickProblem(t, ctx.instrumentOf(t.symbol)) !== undefined, JSON.stringify(t));
    const v = views(...symbolsOf(bad));
    const r = applyMessage(v, [...bad, tick('THYAO', 286, { producerSeq: 5 })], 3, ctx, T0);
    assert.equal(r.skipped.invalid, bad.length);
    assert.equal(r.applied.length, 1);
    assert.equal(v.get('THYAO')!.state!.seq, 1);
  });
});

describe('applyMessage: trading days', () => {
  it('rolls over at local midnight of the market: prev close = last of the previous day', () => {
    const lateEvening = Date.UTC(2024, 2, 4, 20, 59, 0); // 23:59 Istanbul
    const nextMorning = Date.UTC(2024, 2, 4, 21, 1, 0); // 00:01 Istanbul, next day
    const v = views('THYAO');
    applyMessage(
      v,
      [
        tick('THYAO', 290, { eventTimeMs: lateEvening, size: 7 }),
        tick('THYAO', 291, { eventTimeMs: lateEvening + 1, producerSeq: 2, size: 3 }),
      ],
      1,
      ctx,
      0,
    );
    const day1 = { ...v.get('THYAO')!.state! };
    assert.equal(day1.day, '2024-03-04');
    applyMessage(v, [tick('THYAO', 289, { eventTimeMs: nextMorning, producerSeq: 3, size: 5 })], 2, ctx, 0);
    const s = v.get('THYAO')!.state!;
    assert.equal(s.day, '2024-03-05');
    assert.equal(s.prevClose, 29100);
    assert.equal(s.open, 28900);
    assert.equal(s.high, 28900);
    assert.equal(s.low, 28900);
    assert.equal(s.volume, 5);
    assert.equal(s.trades, 1);
    assert.equal(s.seq, 3);
  });

  it('drops a tick of a past trading day after the rollover (seq unchanged)', () => {
    const v = views('THYAO');
    applyMessage(v, [tick('THYAO', 290, { eventTimeMs: T0 + 86_400_000 })], 1, ctx, 0);
    const r = applyMessage(v, [tick('THYAO', 280, { eventTimeMs: T0, producerSeq: 2 })], 2, ctx, 0);
    assert.equal(r.skipped.stale_day, 1);
    assert.equal(r.applied.length, 0);
    assert.equal(v.get('THYAO')!.state!.seq, 1);
    assert.equal(v.get('THYAO')!.state!.last, 29000);
    assert.equal(v.get('THYAO')!.watermarks.get('p1')!.seq, 2, 'the resend watermark still moves');
  });
});

describe('applyMessage: bars', () => {
  it('keys 1s and 1m bars by event time', () => {
    const v = views('GARAN');
    applyMessage(
      v,
      [
        tick('GARAN', 130, { eventTimeMs: T0 + 100, size: 1 }),
        tick('GARAN', 131, { eventTimeMs: T0 + 900, size: 2, producerSeq: 2 }),
        tick('GARAN', 129, { eventTimeMs: T0 + 1500, size: 3, producerSeq: 3 }),
        tick('GARAN', 132, { eventTimeMs: T0 + 61_000, size: 4, producerSeq: 4 }),
      ],
      1,
      ctx,
      0,
    );
    const b = v.get('GARAN')!.bars;
    assert.deepEqual([...b.s.keys()], [T0, T0 + 1000, T0 + 61_000]);
    assert.deepEqual(b.s.get(T0), {
      start: T0,
      open: 1300,
      high: 1310,
      low: 1300,
      close: 1310,
      volume: 3,
      trades: 2,
    });
    assert.deepEqual(b.m.get(T0), {
      start: T0,
      open: 1300,
      high: 1310,
      low: 1290,
      close: 1290,
      volume: 6,
      trades: 3,
    });
    assert.deepEqual(b.m.get(T0 + 60_000), {
      start: T0 + 60_000,
      open: 1320,
      high: 1320,
      low: 1320,
      close: 1320,
      volume: 4,
      trades: 1,
    });
  });

  it('a tick later than the bound updates the quote but not the bars', () => {
    const v = views('GARAN');
    applyMessage(v, [tick('GARAN', 130, { eventTimeMs: T0 + 10_000 })], 1, ctx, 0);
    const r = applyMessage(
      v,
      [
        tick('GARAN', 140, { eventTimeMs: T0 + 4_000, producerSeq: 2 }),
        tick('GARAN', 135, { eventTimeMs: T0 + 6_000, producerSeq: 3 }),
      ],
      2,
      ctx,
      0,
    );
    assert.equal(r.lateBars, 1);
    assert.equal(r.applied.length, 2);
    const s = v.get('GARAN')!;
    assert.equal(s.state!.last, 1350);
    assert.equal(s.state!.high, 1400, 'day high includes the late tick');
    assert.ok(!s.bars.s.has(T0 + 4_000), 'late tick made no bar');
    assert.ok(s.bars.s.has(T0 + 6_000), 'a tick within the bound did');
  });

  it('pruneBars keeps every bar a non-late tick can still change', () => {
    const v = views('GARAN');
    const ticks = Array.from({ length: 20 }, (_, i) =>
      tick('GARAN', 130, { eventTimeMs: T0 + i * 1000, producerSeq: i + 1 }),
    );
    applyMessage(v, ticks, 1, ctx, 0);
    v.get('GARAN')!.dirty.bars.s.clear();
    pruneBars(v.get('GARAN')!, 5000);
    assert.deepEqual(
      [...v.get('GARAN')!.bars.s.keys()],
      [14, 15, 16, 17, 18, 19].map((i) => T0 + i * 1000),
    );
  });
});

describe('applyMessage: once, exactly', () => {
  it('drops resent ticks (producer_seq <= watermark) however they are batched', () => {
    const v = views('THYAO');
    applyMessage(
      v,
      [tick('THYAO', 286, { producerSeq: 1 }), tick('THYAO', 287, { producerSeq: 2 })],
      1,
      ctx,
      0,
    );
    const r = applyMessage(
      v,
      [
        tick('THYAO', 287, { producerSeq: 2 }),
        tick('THYAO', 288, { producerSeq: 3 }),
        tick('THYAO', 286, { producerSeq: 1 }),
      ],
      2,
      ctx,
      0,
    );
    assert.equal(r.skipped.duplicate, 2);
    assert.equal(v.get('THYAO')!.state!.seq, 3);
    assert.equal(v.get('THYAO')!.state!.last, 28800);
  });

  it('a redelivered message (ss >= its stream seq) changes nothing', () => {
    const v = views('THYAO');
    applyMessage(v, [tick('THYAO', 286, { producerSeq: 1 })], 5, ctx, 0);
    const before = structuredClone(v.get('THYAO')!.state);
    const r = applyMessage(v, [tick('THYAO', 290, { producerSeq: 9, producerId: 'other' })], 5, ctx, 0);
    assert.equal(r.skipped.redelivered, 1);
    assert.deepEqual(v.get('THYAO')!.state, before);
    const older = applyMessage(v, [tick('THYAO', 290, { producerSeq: 9, producerId: 'other' })], 4, ctx, 0);
    assert.equal(older.skipped.redelivered, 1);
  });

  it('keeps at most maxProducersPerSymbol watermarks, dropping the longest unseen', () => {
    const v = views('THYAO');
    ['a', 'b', 'c'].forEach((p, i) =>
      applyMessage(v, [tick('THYAO', 286, { producerId: p })], i + 1, ctx, 0),
    );
    v.get('THYAO')!.dirty.wmDel.clear();
    applyMessage(v, [tick('THYAO', 286, { producerId: 'b', producerSeq: 2 })], 4, ctx, 0);
    applyMessage(v, [tick('THYAO', 286, { producerId: 'd' })], 5, ctx, 0);
    assert.deepEqual([...v.get('THYAO')!.watermarks.keys()].sort(), ['b', 'c', 'd']);
    assert.deepEqual([...v.get('THYAO')!.dirty.wmDel], ['a']);
  });
});

describe('unitsToPrice', () => {
  it('equals decimal.ts fromUnits (the double nearest to the decimal) for any units and decimals', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e14, max: 1e14 }), fc.integer({ min: 0, max: 10 }), (units, d) => {
        assert.equal(unitsToPrice(units, d), fromUnits(units, d));
      }),
      { numRuns: 20_000 },
    );
    assert.equal(unitsToPrice(12345, 2), 123.45);
    assert.equal(String(unitsToPrice(3, 1)), '0.3');
  });
});

describe('stored forms', () => {
  it('round-trip quote state, bars and watermarks', () => {
    const v = views('THYAO');
    applyMessage(v, [tick('THYAO', 286, { bid: 285.75, ask: 286 })], 9, ctx, 123);
    const s = v.get('THYAO')!.state!;
    const flat = encodeQuoteState(s);
    const hash: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    assert.deepEqual(decodeQuoteState(hash), s);
    assert.equal(decodeQuoteState({}), undefined);
    assert.throws(() => decodeQuoteState({ ...hash, st: hash.st!.replace(/^\d+/, 'x') }), /corrupt/);
    assert.throws(() => decodeQuoteState({ ss: '1', st: '1:2' }), /corrupt/);
    const bar = v.get('THYAO')!.bars.m.get(T0)!;
    assert.deepEqual(decodeBar(encodeBar(bar)), bar);
    assert.deepEqual(
      decodeWatermarks({ p1: encodeWatermark({ seq: 4, ss: 9 }) }),
      new Map([['p1', { seq: 4, ss: 9 }]]),
    );
  });
});

// ---------------------------------------------------------------- property

const SYMS = ['THYAO', 'GARAN', 'ZZZ1'];

/** The stored form a replica would read back (what Redis holds), bars limited to the late window. */
function reread(v: SymbolView): SymbolView {
  const state = v.state ? decodeQuoteState(toHash(encodeQuoteState(v.state))) : undefined;
  const copy = newView(
    v.symbol,
    state,
    decodeWatermarks(Object.fromEntries([...v.watermarks].map(([k, w]) => [k, encodeWatermark(w)]))),
    {
      s: new Map([...v.bars.s].map(([k, b]) => [k, decodeBar(encodeBar(b))])),
      m: new Map([...v.bars.m].map(([k, b]) => [k, decodeBar(encodeBar(b))])),
    },
  );
  pruneBars(copy, ctx.lateTickBoundMs);
  return copy;
}

function toHash(flat: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

/** Final state when everything is kept in memory: the reference. */
function reference(messages: Tick[][]): Map<string, { state?: QuoteState; bars: string[] }> {
  const v = views(...SYMS);
  messages.forEach((m, i) => applyMessage(v, m, i + 1, ctx, 0));
  return summary(v, new Map());
}

function summary(v: Map<string, SymbolView>, archive: Map<string, Map<string, string>>) {
  const out = new Map<string, { state?: QuoteState; bars: string[] }>();
  for (const [s, view] of v) {
    const bars = new Map(archive.get(s));
    for (const i of ['s', 'm'] as const)
      for (const b of view.bars[i].values()) bars.set(`${i}${b.start}`, encodeBar(b));
    out.set(s, { state: view.state, bars: [...bars.entries()].sort().map(([k, b]) => `${k}=${b}`) });
  }
  return out;
}

const tickArb = fc.record({
  symbol: fc.constantFrom(...SYMS),
  price: fc.integer({ min: 1, max: 400 }).map((n) => n * 0.25 + 100),
  size: fc.integer({ min: 0, max: 1000 }),
  producerId: fc.constantFrom('p1', 'p2', 'p3', 'p4'),
  producerSeq: fc.integer({ min: 1, max: 30 }),
  eventTimeMs: fc.integer({ min: 0, max: 2 * 86_400_000 }).map((d) => T0 + d),
  bid: fc.option(
    fc.integer({ min: 1, max: 400 }).map((n) => n * 0.25 + 100),
    { nil: undefined },
  ),
  ask: fc.constant(undefined),
});

describe('property: redeliveries and replicas do not change the result', () => {
  it('applying with random redeliveries through re-read stored state equals the in-memory reference', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(tickArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, redeliveries) => {
          const expected = reference(messages);
          // Each message applied on state re-read from its stored form (as another
          // replica would), bars beyond the window archived as Redis keeps them,
          // and earlier messages delivered again at random points.
          let v = views(...SYMS);
          const archive = new Map<string, Map<string, string>>();
          const keep = (view: SymbolView) => {
            const a = archive.get(view.symbol) ?? new Map<string, string>();
            for (const i of ['s', 'm'] as const)
              for (const b of view.bars[i].values()) a.set(`${i}${b.start}`, encodeBar(b));
            archive.set(view.symbol, a);
          };
          let r = 0;
          messages.forEach((m, i) => {
            applyMessage(v, m, i + 1, ctx, 0);
            for (const view of v.values()) keep(view);
            v = new Map([...v].map(([s, view]) => [s, reread(view)]));
            if (redeliveries.length > r && i > 0) {
              const again = redeliveries[r++]! % (i + 1);
              applyMessage(v, messages[again]!, again + 1, ctx, 0);
              for (const view of v.values()) keep(view);
            }
          });
          assert.deepEqual(summary(v, archive), expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
