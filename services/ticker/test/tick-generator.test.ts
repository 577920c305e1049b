import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isOnTick, toUnits, loadUniverse, parseUniverse } from '@tickmesh/kit';
import { mulberry32 } from '../src/rng.js';
import { MAX_MOVE, TickGenerator, type SimulatedTick } from '../src/tick-generator.js';

const universe = loadUniverse('bist30');

function run(
  seed: number,
  n: number,
  over: Partial<ConstructorParameters<typeof TickGenerator>[0]> = {},
): SimulatedTick[] {
  const g = new TickGenerator({
    instruments: universe.instruments,
    seed,
    minIntervalMs: 50,
    maxIntervalMs: 500,
    ...over,
  });
  return Array.from({ length: n }, () => g.next());
}

describe('mulberry32', () => {
  it('is reproducible by seed and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b()),
    );
    assert.notDeepEqual(
      xs.slice(0, 10),
      Array.from({ length: 10 }, () => c()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });
});

describe('TickGenerator', () => {
  it('gives the same ticks for the same seed, in both modes', () => {
    assert.deepEqual(run(7, 2000), run(7, 2000));
    assert.deepEqual(run(7, 500, { ticksPerSecond: 5000 }), run(7, 500, { ticksPerSecond: 5000 }));
    assert.notDeepEqual(run(7, 50), run(8, 50));
  });

  it('moves each symbol at most 1% per tick, on its tick grid, never <= 0, bid < price < ask', () => {
    const last = new Map(universe.instruments.map((i) => [i.symbol, i.referencePrice]));
    for (const t of run(12345, 30_000)) {
      const inst = universe.bySymbol.get(t.symbol)!;
      const prev = last.get(t.symbol)!;
      assert.ok(t.price > 0, `${t.symbol} price ${t.price} <= 0`);
      assert.ok(
        Math.abs(t.price - prev) <= prev * MAX_MOVE + 1e-9,
        `${t.symbol} moved from ${prev} to ${t.price}`,
      );
      assert.ok(isOnTick(t.price, inst.decimals, inst.tickUnits), `${t.price} off tick ${inst.tickSize}`);
      // the double is the clean decimal (prints without float noise)
      assert.equal(
        t.price,
        Number((toUnits(t.price, inst.decimals) / 10 ** inst.decimals).toFixed(inst.decimals)),
      );
      assert.ok(
        t.bid === undefined ||
          (t.bid > 0 && t.bid < t.price && isOnTick(t.bid, inst.decimals, inst.tickUnits)),
      );
      assert.ok(t.ask !== undefined && t.ask > t.price && isOnTick(t.ask, inst.decimals, inst.tickUnits));
      assert.ok(Number.isInteger(t.size) && t.size >= 1 && t.size <= 1000);
      last.set(t.symbol, t.price);
    }
  });

  it('schedules each symbol at intervals within [min, max] and in due order', () => {
    const ticks = run(99, 10_000, { minIntervalMs: 50, maxIntervalMs: 500 });
    const lastDue = new Map<string, number>();
    let prevDue = -1;
    for (const t of ticks) {
      assert.ok(t.dueMs >= prevDue, 'due times never go back');
      prevDue = t.dueMs;
      const before = lastDue.get(t.symbol);
      if (before !== undefined) {
        const gap = t.dueMs - before;
        assert.ok(gap >= 50 && gap <= 500, `${t.symbol} gap ${gap}`);
      }
      lastDue.set(t.symbol, t.dueMs);
    }
    // 30 symbols at ~275 ms on average: about 109 ticks per second of schedule
    const perSecond = ticks.length / (prevDue / 1000);
    assert.ok(perSecond > 80 && perSecond < 150, `rate ${perSecond}`);
  });

  it('rate mode spaces ticks evenly at the total rate over all symbols', () => {
    const ticks = run(3, 3000, { ticksPerSecond: 1000 });
    assert.equal(ticks[1000]!.dueMs, 1000);
    assert.equal(new Set(ticks.map((t) => t.symbol)).size, 30);
  });

  it('stays within bounds for any seed and a coarse-tick instrument (property)', () => {
    const coarse = parseUniverse({
      market: 'T',
      name: 'test',
      currency: 'X',
      session: { timeZone: 'UTC', open: '00:00', close: '23:59', days: [1, 2, 3, 4, 5, 6, 7] },
      instruments: [
        { symbol: 'LOW', name: 'low', referencePrice: 1.0, tickSize: 0.01 },
        { symbol: 'ODD', name: 'odd', referencePrice: 3.75, tickSize: 0.25 },
      ],
    });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const g = new TickGenerator({
          instruments: coarse.instruments,
          seed,
          minIntervalMs: 1,
          maxIntervalMs: 3,
        });
        const last = new Map(coarse.instruments.map((i) => [i.symbol, i.referencePrice]));
        for (let k = 0; k < 500; k++) {
          const t = g.next();
          const prev = last.get(t.symbol)!;
          const inst = coarse.bySymbol.get(t.symbol)!;
          if (!(t.price > 0 && Math.abs(t.price - prev) <= prev * MAX_MOVE + 1e-9)) return false;
          if (!isOnTick(t.price, inst.decimals, inst.tickUnits)) return false;
          last.set(t.symbol, t.price);
        }
        return true;
      }),
      { numRuns: 50 },
    );
  });
});
