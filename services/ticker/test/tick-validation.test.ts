import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Tick } from '@tickmesh/kit/proto';
import { loadUniverse } from '@tickmesh/kit';
import { validateTick, type ValidationRules } from '../src/tick-validation.js';

const NOW = 1_736_150_000_000;
const rules: ValidationRules = {
  universe: loadUniverse('bist30'),
  openMode: false,
  maxFutureMs: 60_000,
  now: () => NOW,
};

function tick(over: Partial<Tick> = {}): Tick {
  return {
    symbol: 'THYAO',
    price: 285.5,
    size: 100,
    producerId: 'p1',
    producerSeq: 1,
    eventTimeMs: NOW - 1000,
    bid: 285.25,
    ask: 285.75,
    ...over,
  };
}

function problemOf(t: Tick, r: ValidationRules = rules) {
  const res = validateTick(t, r);
  assert.equal(res.ok, false, `expected a rejection for ${JSON.stringify(t)}`);
  return res.ok ? undefined : res.problem;
}

describe('validateTick', () => {
  it('accepts a good tick and keeps its fields', () => {
    const res = validateTick(tick(), rules);
    assert.ok(res.ok);
    assert.deepEqual(res.tick, tick());
    assert.equal(res.instrument.symbol, 'THYAO');
  });

  it('normalizes float noise to the decimal and a zero event time to now', () => {
    const res = validateTick(
      tick({ price: 285.50000000001, bid: undefined, ask: undefined, eventTimeMs: 0 }),
      rules,
    );
    assert.ok(res.ok);
    assert.equal(res.tick.price, 285.5);
    assert.equal(res.tick.eventTimeMs, NOW);
    assert.equal(res.tick.bid, undefined);
  });

  const cases: Array<[string, Partial<Tick>, string, string]> = [
    ['empty symbol', { symbol: '' }, 'tick.symbol', 'symbol_invalid'],
    ['lower-case symbol', { symbol: 'thyao' }, 'tick.symbol', 'symbol_invalid'],
    ['symbol with a dot', { symbol: 'BRK.B' }, 'tick.symbol', 'symbol_invalid'],
    ['injection string', { symbol: "A'; DROP TABLE x;--" }, 'tick.symbol', 'symbol_invalid'],
    ['unknown symbol', { symbol: 'NOPE' }, 'tick.symbol', 'symbol_unknown'],
    ['NaN price', { price: NaN }, 'tick.price', 'price_invalid'],
    ['infinite price', { price: Infinity }, 'tick.price', 'price_invalid'],
    ['zero price', { price: 0 }, 'tick.price', 'price_invalid'],
    ['negative price', { price: -1 }, 'tick.price', 'price_invalid'],
    ['price off the tick grid', { price: 285.3 }, 'tick.price', 'price_off_tick'],
    ['huge price', { price: 1e300 }, 'tick.price', 'price_invalid'],
    ['negative size', { size: -5 }, 'tick.size', 'size_invalid'],
    ['fractional size', { size: 1.5 }, 'tick.size', 'size_invalid'],
    ['NaN bid', { bid: NaN }, 'tick.bid', 'bid_invalid'],
    ['zero bid', { bid: 0 }, 'tick.bid', 'bid_invalid'],
    ['bid off grid', { bid: 285.1 }, 'tick.bid', 'bid_invalid'],
    ['negative ask', { ask: -3 }, 'tick.ask', 'ask_invalid'],
    ['bid above ask', { bid: 286, ask: 285 }, 'tick.bid', 'bid_above_ask'],
    ['negative event time', { eventTimeMs: -1 }, 'tick.event_time_ms', 'event_time_invalid'],
    [
      'event time far in the future',
      { eventTimeMs: NOW + 61_000 },
      'tick.event_time_ms',
      'event_time_future',
    ],
  ];
  for (const [name, over, field, reason] of cases) {
    it(`rejects ${name} naming ${field}`, () => {
      const p = problemOf(tick(over));
      assert.equal(p?.field, field);
      assert.equal(p?.reason, reason);
      assert.ok(p && p.message.length > 0);
    });
  }

  it('accepts an event time just inside the future bound and bid == ask', () => {
    assert.ok(validateTick(tick({ eventTimeMs: NOW + 59_000, bid: 285.5, ask: 285.5 }), rules).ok);
  });

  it('open mode accepts unknown symbols on the default 0.0001 grid only', () => {
    const open = { ...rules, openMode: true };
    const ok = validateTick(tick({ symbol: 'EURUSD', price: 1.0842, bid: 1.0841, ask: 1.0843 }), open);
    assert.ok(ok.ok);
    assert.equal(ok.instrument.tickSize, 0.0001);
    assert.equal(
      problemOf(tick({ symbol: 'EURUSD', price: 1.08425, bid: undefined, ask: undefined }), open)?.reason,
      'price_off_tick',
    );
    assert.equal(problemOf(tick({ symbol: 'bad sym' }), open)?.reason, 'symbol_invalid');
  });
});
