// The simulator's walk stays inside the day's price band: over many steps,
// across day changes (the new reference is the previous day's last price, or
// the price-cache's), and with a reference far from the walk.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadUniverse, toUnits } from '@tickmesh/kit';
import type { Tick } from '@tickmesh/kit/proto';
import { FeedSimulator } from '../src/feed-simulator.js';
import { instrumentBand } from '../src/price-band.js';
import { SeqAllocator } from '../src/producer-ids.js';
import { ReferencePrices } from '../src/reference-prices.js';
import { TickGenerator } from '../src/tick-generator.js';

const bist = loadUniverse('bist30');

function inside(symbol: string, price: number, reference: number): boolean {
  const i = bist.bySymbol.get(symbol)!;
  const l = instrumentBand(i, reference)!;
  const u = toUnits(price, i.decimals);
  return u >= l.lowerUnits && u <= l.upperUnits;
}

describe('the simulated walk and the price band', () => {
  it('stays inside the band over many steps and day changes, the reference being the previous close', () => {
    // Steps of up to 1% reach the ±10% limits within a simulated day of this many ticks.
    const g = new TickGenerator({
      instruments: bist.instruments,
      seed: 7,
      minIntervalMs: 1,
      maxIntervalMs: 2,
    });
    const close = new Map(bist.instruments.map((i) => [i.symbol, i.referencePrice]));
    let atLimit = 0;
    let moved = 0;
    for (let day = 1; day <= 6; day++) {
      const date = `2025-01-0${day}`;
      const reference = new Map(close);
      for (let n = 0; n < 30_000; n++) {
        const t = g.confine(g.next(), date);
        const ref = reference.get(t.symbol)!;
        assert.ok(
          inside(t.symbol, t.price, ref),
          `${date} ${t.symbol} ${t.price} outside the band of ${ref}`,
        );
        if (t.bid !== undefined) assert.ok(inside(t.symbol, t.bid, ref) && t.bid <= t.price, `bid ${t.bid}`);
        if (t.ask !== undefined) assert.ok(inside(t.symbol, t.ask, ref) && t.ask >= t.price, `ask ${t.ask}`);
        const l = instrumentBand(bist.bySymbol.get(t.symbol)!, ref)!;
        const u = toUnits(t.price, bist.bySymbol.get(t.symbol)!.decimals);
        if (u === l.upperUnits || u === l.lowerUnits) atLimit++;
        close.set(t.symbol, t.price);
      }
      for (const i of bist.instruments) if (close.get(i.symbol) !== reference.get(i.symbol)) moved++;
      assert.equal(g.bandOf('THYAO')!.day, date);
    }
    // Without a band the walk does leave it; here it meets the limits and turns back.
    assert.ok(atLimit > 0, 'the walk reached a limit at least once');
    assert.ok(moved > 0);
  });

  it("moves into a reference's band at once when the price-cache's reference is far from the walk", () => {
    const g = new TickGenerator({
      instruments: [bist.bySymbol.get('THYAO')!],
      seed: 1,
      minIntervalMs: 1,
      maxIntervalMs: 1,
    });
    g.setReference('THYAO', '2025-01-06', 400);
    for (let n = 0; n < 2000; n++) {
      const t = g.confine(g.next(), '2025-01-06');
      assert.ok(inside('THYAO', t.price, 400), `${t.price}`);
    }
    // An older day's reference never replaces the current one.
    g.setReference('THYAO', '2025-01-05', 100);
    assert.equal(g.bandOf('THYAO')!.limits.referenceUnits, 40000);
  });

  it('is unchanged without a day (no band), as before', () => {
    const a = new TickGenerator({
      instruments: bist.instruments,
      seed: 3,
      minIntervalMs: 50,
      maxIntervalMs: 500,
    });
    const b = new TickGenerator({
      instruments: bist.instruments,
      seed: 3,
      minIntervalMs: 50,
      maxIntervalMs: 500,
    });
    for (let n = 0; n < 1000; n++) assert.deepEqual(a.next(), b.next());
  });

  it('the feed simulator sends only in-band ticks, following the price-cache reference and the day', async () => {
    const thyao = bist.bySymbol.get('THYAO')!;
    // 2025-01-06 23:50 in Istanbul; 100 ms per tick crosses midnight halfway.
    const clock = { now: Date.parse('2025-01-06T20:50:00Z') };
    let lookups = 0;
    const references = new ReferencePrices({
      lookup: async () => {
        lookups++;
        return { sessionDate: '2025-01-06', last: 301, prevClose: 300 };
      },
      timeZone: 'Europe/Istanbul',
      lookupTimeoutMs: 100,
      recheckMs: 1000,
      now: () => clock.now,
    });
    const sent: Tick[] = [];
    const sim = new FeedSimulator({
      generator: new TickGenerator({ instruments: [thyao], seed: 5, minIntervalMs: 1, maxIntervalMs: 1 }),
      publisher: {
        trySubmit: (t: Tick) => {
          sent.push({ ...t });
          clock.now += 100;
          return true;
        },
        waitForSpace: async () => undefined,
      },
      producerId: 'sim',
      seq: new SeqAllocator(),
      now: () => clock.now,
      timeZone: 'Europe/Istanbul',
      instruments: bist.bySymbol,
      references,
    });
    sim.start();
    while (sent.length < 12_000) await new Promise((r) => setTimeout(r, 5));
    await sim.stop();
    assert.ok(lookups >= 1);
    const midnight = Date.parse('2025-01-06T21:00:00Z');
    const before = sent.filter((t) => t.eventTimeMs < midnight);
    const afterMidnight = sent.filter((t) => t.eventTimeMs >= midnight);
    assert.ok(before.length > 100 && afterMidnight.length > 100);
    // Day 1: the market file's 285.5 until the price-cache answers, then its previous close 300.
    for (const t of before) {
      assert.ok(inside('THYAO', t.price, 285.5) || inside('THYAO', t.price, 300), `${t.price}`);
    }
    for (const t of before.slice(-100)) assert.ok(inside('THYAO', t.price, 300), `${t.price}`);
    // Day 2: until the price-cache answers, the simulator's own previous close; then the price-cache's
    // reference, here its last (301: a fake that never rolls its day).
    const ownClose = before.at(-1)!.price;
    for (const t of afterMidnight) {
      assert.ok(inside('THYAO', t.price, ownClose) || inside('THYAO', t.price, 301), `${t.price}`);
    }
    for (const t of afterMidnight.slice(-100)) assert.ok(inside('THYAO', t.price, 301), `${t.price}`);
  });
});
