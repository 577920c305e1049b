// Daily price bands: the limits on the tick grid, the market file's rule, the
// reference cache (against a fake PriceService lookup), and the check in the
// validation path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  UnavailableError,
  defaultInstrument,
  loadUniverse,
  parseUniverse,
  type Instrument,
} from '@tickmesh/kit';
import type { Tick } from '@tickmesh/kit/proto';
import { bandLimits, instrumentBand, outsideBand, reflectIntoBand } from '../src/price-band.js';
import { ReferencePrices, type QuoteView } from '../src/reference-prices.js';
import { REJECT_REASONS, bandProblem, validateTick, type ValidationRules } from '../src/tick-validation.js';

const bist = loadUniverse('bist30');
const THYAO = bist.bySymbol.get('THYAO')!; // 285.5, tick 0.25
const AKBNK = bist.bySymbol.get('AKBNK')!; // 60.5, tick 0.05

describe('band limits', () => {
  it('are the reference ± percent when that lies on the grid', () => {
    assert.deepEqual(instrumentBand(AKBNK, 60.5), {
      referenceUnits: 6050,
      lowerUnits: 5445,
      upperUnits: 6655,
    });
  });

  it('round inward onto the tick grid: upper down, lower up', () => {
    // 285.5 ± 10% = 314.05 / 256.95; the grid is 0.25.
    const l = instrumentBand(THYAO, 285.5)!;
    assert.equal(l.upperUnits, 31400);
    assert.equal(l.lowerUnits, 25700);
    // Exact integer arithmetic with fractional percents, never float noise.
    assert.deepEqual(bandLimits(1000, 1, { percent: 7.5 }), {
      referenceUnits: 1000,
      lowerUnits: 925,
      upperUnits: 1075,
    });
    assert.deepEqual(bandLimits(999, 10, { percent: 10 }), {
      referenceUnits: 999,
      lowerUnits: 900,
      upperUnits: 1090,
    });
  });

  it('keep the lower limit at one tick at least, and the reference on the grid', () => {
    assert.equal(bandLimits(1, 1, { percent: 100 }).lowerUnits, 1);
    // A reference off the grid is rounded to the nearest tick first (the base price).
    assert.equal(instrumentBand(THYAO, 285.6)!.referenceUnits, 28550);
  });

  it('say why a price is outside', () => {
    const l = instrumentBand(THYAO, 285.5)!;
    assert.equal(outsideBand(314, THYAO, l), undefined);
    assert.equal(outsideBand(257, THYAO, l), undefined);
    assert.match(outsideBand(314.25, THYAO, l)!, /314\.25 is outside today's price band \[257, 314\]/);
    assert.match(outsideBand(28550, THYAO, l)!, /previous close 285\.5 ± 10%/);
    assert.ok(outsideBand(256.75, THYAO, l));
  });

  it('reflect a walk back inside', () => {
    const l = { referenceUnits: 100, lowerUnits: 90, upperUnits: 110 };
    assert.equal(reflectIntoBand(113, l), 107);
    assert.equal(reflectIntoBand(85, l), 95);
    assert.equal(reflectIntoBand(200, l), 90); // further than the band is wide: clamped
    assert.equal(reflectIntoBand(100, l), 100);
  });
});

describe('the market file', () => {
  const base = {
    market: 'X',
    name: 'X',
    currency: 'TRY',
    session: { timeZone: 'Europe/Istanbul', open: '10:00', close: '18:00', days: [1] },
    instruments: [
      { symbol: 'A', name: 'A', referencePrice: 10, tickSize: 0.01 },
      { symbol: 'B', name: 'B', referencePrice: 10, tickSize: 0.01, priceBand: { percent: 20 } },
      { symbol: 'C', name: 'C', referencePrice: 10, tickSize: 0.01, priceBand: null },
    ],
  };

  it('gives BIST30 a ±10% band on every instrument', () => {
    assert.deepEqual(bist.priceBand, { percent: 10 });
    assert.ok(bist.instruments.every((i) => i.priceBand?.percent === 10));
  });

  it('applies the market rule, lets an instrument override it or have none', () => {
    const u = parseUniverse({ ...base, priceBand: { percent: 10 } });
    assert.deepEqual(u.bySymbol.get('A')!.priceBand, { percent: 10 });
    assert.deepEqual(u.bySymbol.get('B')!.priceBand, { percent: 20 });
    assert.equal(u.bySymbol.get('C')!.priceBand, undefined);
  });

  it('has no band without a rule, nor for instruments outside it (open mode)', () => {
    const u = parseUniverse(base);
    assert.equal(u.priceBand, undefined);
    assert.equal(u.bySymbol.get('A')!.priceBand, undefined);
    assert.equal(defaultInstrument('ZZZ').priceBand, undefined);
  });

  it('refuses a bad rule with the path named', () => {
    assert.throws(() => parseUniverse({ ...base, priceBand: { percent: 0 } }), /priceBand\.percent/);
    assert.throws(() => parseUniverse({ ...base, priceBand: { percent: 10.125 } }), /two decimals/);
    assert.throws(() => parseUniverse({ ...base, priceBand: { percent: 150 } }), /priceBand\.percent/);
  });
});

/** A fake PriceService: quotes by symbol, calls counted, failures on demand. */
function fakeLookup() {
  const quotes = new Map<string, QuoteView>();
  const state = { calls: 0, fail: false, deadlines: [] as number[], delayMs: 0 };
  const lookup = async (symbol: string, deadlineMs: number) => {
    state.calls++;
    state.deadlines.push(deadlineMs);
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    if (state.fail) throw new Error('connect ECONNREFUSED');
    return quotes.get(symbol);
  };
  return { quotes, state, lookup };
}

// 2025-01-06 12:00 in Istanbul (UTC+3) is 09:00 UTC.
const DAY1_NOON = Date.parse('2025-01-06T09:00:00Z');
const DAY2_NOON = DAY1_NOON + 86_400_000;

function references(fake: ReturnType<typeof fakeLookup>, clock: { now: number }, maxEntries?: number) {
  return new ReferencePrices({
    lookup: fake.lookup,
    timeZone: 'Europe/Istanbul',
    lookupTimeoutMs: 250,
    recheckMs: 1000,
    now: () => clock.now,
    maxEntries,
  });
}

async function limitsOf(r: ReferencePrices, i: Instrument) {
  return await r.limits(i);
}

describe('reference prices', () => {
  it('use the prev_close of a quote of today, for the whole day, with a deadline on the lookup', async () => {
    const fake = fakeLookup();
    fake.quotes.set('THYAO', { sessionDate: '2025-01-06', last: 300, prevClose: 290 });
    const clock = { now: DAY1_NOON };
    const r = references(fake, clock);
    assert.equal((await limitsOf(r, THYAO)).referenceUnits, 29000);
    clock.now += 8 * 3_600_000; // 20:00, same day
    const again = r.limits(THYAO);
    assert.ok(!(again instanceof Promise), 'a final reference is answered from the cache');
    assert.equal(fake.state.calls, 1);
    assert.deepEqual(fake.state.deadlines, [250]);
    assert.equal(r.peek('THYAO')!.source, 'prev_close');
  });

  it("use yesterday's last for a quote of an earlier day, and read it again after recheckMs", async () => {
    const fake = fakeLookup();
    fake.quotes.set('THYAO', { sessionDate: '2025-01-05', last: 300, prevClose: 290 });
    const clock = { now: DAY1_NOON };
    const r = references(fake, clock);
    assert.equal((await limitsOf(r, THYAO)).referenceUnits, 30000);
    clock.now += 500;
    assert.ok(!(r.limits(THYAO) instanceof Promise));
    // Yesterday's last tick arrives late, then today's first tick rolls the day.
    fake.quotes.set('THYAO', { sessionDate: '2025-01-06', last: 302, prevClose: 301 });
    clock.now += 600;
    assert.equal((await limitsOf(r, THYAO)).referenceUnits, 30100);
    assert.equal(fake.state.calls, 2);
    assert.equal(r.peek('THYAO')!.final, true);
  });

  it("use the market file's reference price when the price-cache has no quote", async () => {
    const fake = fakeLookup();
    const r = references(fake, { now: DAY1_NOON });
    const l = await limitsOf(r, THYAO);
    assert.equal(l.referenceUnits, 28550);
    assert.equal(r.peek('THYAO')!.source, 'reference_price');
    assert.equal(r.peek('THYAO')!.final, false);
  });

  it('follow the day: a final reference of yesterday is read again today', async () => {
    const fake = fakeLookup();
    fake.quotes.set('THYAO', { sessionDate: '2025-01-06', last: 300, prevClose: 290 });
    const clock = { now: DAY1_NOON };
    const r = references(fake, clock);
    await limitsOf(r, THYAO);
    clock.now = DAY2_NOON;
    assert.equal((await limitsOf(r, THYAO)).referenceUnits, 30000, "today's reference is yesterday's last");
    assert.equal(fake.state.calls, 2);
    // Just after midnight in Istanbul (21:00 UTC) is already the next day.
    const late = { now: Date.parse('2025-01-06T21:00:30Z') };
    const r2 = references(fake, late);
    await limitsOf(r2, THYAO);
    assert.equal(r2.peek('THYAO')!.day, '2025-01-07');
  });

  it('ask once per symbol however many ticks wait (single flight)', async () => {
    const fake = fakeLookup();
    fake.state.delayMs = 20;
    fake.quotes.set('THYAO', { sessionDate: '2025-01-06', last: 300, prevClose: 290 });
    const r = references(fake, { now: DAY1_NOON });
    const all = await Promise.all(Array.from({ length: 50 }, () => limitsOf(r, THYAO)));
    assert.equal(fake.state.calls, 1);
    assert.ok(all.every((l) => l.referenceUnits === 29000));
  });

  it('refuse with UNAVAILABLE when the price-cache cannot answer and nothing of today is cached', async () => {
    const fake = fakeLookup();
    fake.state.fail = true;
    const clock = { now: DAY1_NOON };
    const r = references(fake, clock);
    await assert.rejects(limitsOf(r, THYAO), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /THYAO cannot be checked: the price-cache did not answer/);
      return true;
    });
    // A provisional reference read earlier today stays in use while the price-cache is away.
    fake.state.fail = false;
    await limitsOf(r, THYAO);
    fake.state.fail = true;
    clock.now += 5000;
    assert.equal((await limitsOf(r, THYAO)).referenceUnits, 28550);
    // Not tomorrow, though.
    clock.now = DAY2_NOON;
    await assert.rejects(limitsOf(r, THYAO), UnavailableError);
  });

  it('keep at most maxEntries symbols', async () => {
    const fake = fakeLookup();
    const r = references(fake, { now: DAY1_NOON }, 3);
    for (const i of bist.instruments.slice(0, 10)) await limitsOf(r, i);
    assert.deepEqual(
      bist.instruments
        .slice(0, 10)
        .filter((i) => r.peek(i.symbol))
        .map((i) => i.symbol),
      bist.instruments.slice(7, 10).map((i) => i.symbol),
    );
  });
});

describe('the band check in validation', () => {
  const fake = fakeLookup();
  fake.quotes.set('THYAO', { sessionDate: '2025-01-06', last: 300, prevClose: 285.5 });
  const rules: ValidationRules = {
    universe: bist,
    openMode: true,
    maxFutureMs: 60_000,
    now: () => DAY1_NOON,
    priceBands: references(fake, { now: DAY1_NOON }),
  };
  const tick = (over: Partial<Tick>): Tick => ({
    symbol: 'THYAO',
    price: 290,
    size: 1,
    producerId: 'p',
    producerSeq: 1,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
    ...over,
  });
  const check = async (t: Tick) => {
    const v = validateTick(t, rules);
    assert.ok(v.ok);
    return await bandProblem(v.tick, v.instrument, rules);
  };

  it('counts price_outside_band as a reject reason', () => {
    assert.ok((REJECT_REASONS as readonly string[]).includes('price_outside_band'));
  });

  it('refuses a price at 100x, naming tick.price', async () => {
    const p = await check(tick({ price: 28550 }));
    assert.equal(p?.field, 'tick.price');
    assert.equal(p?.reason, 'price_outside_band');
  });

  it('accepts the limits themselves and refuses one tick beyond', async () => {
    assert.equal(await check(tick({ price: 314 })), undefined);
    assert.equal(await check(tick({ price: 257 })), undefined);
    assert.equal((await check(tick({ price: 314.25 })))?.field, 'tick.price');
    assert.equal((await check(tick({ price: 256.75 })))?.field, 'tick.price');
  });

  it('applies the same band to bid and ask', async () => {
    assert.equal((await check(tick({ bid: 250, ask: 291 })))?.field, 'tick.bid');
    assert.equal((await check(tick({ bid: 289, ask: 400 })))?.field, 'tick.ask');
    assert.equal(await check(tick({ bid: 289.75, ask: 290.25 })), undefined);
  });

  it('leaves instruments without a band alone (open mode)', () => {
    const v = validateTick(tick({ symbol: 'NEWCO', price: 1e6 }), rules);
    assert.ok(v.ok);
    assert.equal(bandProblem(v.tick, v.instrument, rules), undefined);
  });
});
