import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { lagProbeIntervalMs } from '../src/lag-probe-pacing.js';

void test('lag-probe-pacing: the floor until the budget is reached, then clients/budget seconds', () => {
  assert.equal(lagProbeIntervalMs(1000, 0, 1000), 1000);
  assert.equal(lagProbeIntervalMs(1000, 1000, 1000), 1000);
  assert.equal(lagProbeIntervalMs(1000, 5000, 1000), 5000);
  assert.equal(lagProbeIntervalMs(100, 4, 5), 800);
  assert.equal(lagProbeIntervalMs(1000, 5000, 0), 1000, 'no budget: the floor alone');
  assert.equal(lagProbeIntervalMs(0, 5000, 1000), 0, 'probes with data off stay off');
});

void test('lag-probe-pacing: all clients together never exceed the budget, and no client is probed more often than the floor', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 600_000 }),
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.integer({ min: 1, max: 1_000_000 }),
      (floor, clients, budget) => {
        const ms = lagProbeIntervalMs(floor, clients, budget);
        assert.ok(ms >= floor);
        assert.ok((clients * 1000) / ms <= budget * (1 + 1e-9));
        // Not wider than it has to be.
        assert.ok(ms === floor || Math.abs((clients * 1000) / ms - budget) < 1e-6 * budget);
      },
    ),
  );
});
