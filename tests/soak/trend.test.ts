// The soak run's verdicts must catch growth and let a flat series pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judge, parseDuration, secondHalf, slope, type Point } from './trend.js';

const series = (n: number, f: (x: number) => number): Point[] =>
  Array.from({ length: n }, (_, i) => ({ x: i / 6, y: f(i / 6) })); // a point every 10 s

test('slope is the least-squares fit', () => {
  assert.equal(
    slope([
      { x: 0, y: 1 },
      { x: 1, y: 3 },
      { x: 2, y: 5 },
    ]),
    2,
  );
  assert.ok(Math.abs(slope(series(60, (x) => 100 + 0.5 * x)) - 0.5) < 1e-9);
  assert.ok(
    Number.isNaN(
      slope([
        { x: 0, y: 1 },
        { x: 1, y: 2 },
      ]),
    ),
  );
});

test('a leak fails, a plateau after warm-up passes, noise within the bound passes', () => {
  let seed0 = 7;
  const jitter = () => ((seed0 = (seed0 * 16807) % 2147483647) / 2147483647 - 0.5) * 4;
  const leak = series(60, (x) => 150 + 2 * x + jitter()); // 2 MB/min under +-2 MB noise
  const warmThenFlat = series(60, (x) => (x < 3 ? 100 + 20 * x : 160)); // grows, then levels off
  let seed = 1;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 4;
  const noisyFlat = series(60, () => 160 + noise());
  const [a, b, c] = judge([
    { name: 'leak', points: leak, maxSlopePerMin: 1 },
    { name: 'warm-up', points: warmThenFlat, maxSlopePerMin: 1 },
    { name: 'noise', points: noisyFlat, maxSlopePerMin: 1 },
  ]);
  assert.equal(a!.ok, false, `leak slope ${a!.slopePerMin} +- ${a!.stderrPerMin}`);
  assert.ok(Math.abs(a!.slopePerMin - 2) < 0.3);
  assert.equal(b!.ok, true);
  assert.equal(c!.ok, true, `noise slope ${c!.slopePerMin}`);
  assert.equal(judge([{ name: 'empty', points: [], maxSlopePerMin: 1 }])[0]!.ok, false);
  // A short run's GC sawtooth: a large apparent slope, but too uncertain to call a leak.
  const sawtooth = series(18, (x) => 130 + ((x * 6) % 6) * 3);
  const [d] = judge([{ name: 'sawtooth', points: sawtooth, maxSlopePerMin: 1 }]);
  assert.equal(d!.ok, true, `sawtooth slope ${d!.slopePerMin} +- ${d!.stderrPerMin}`);
});

test('second half and durations', () => {
  assert.deepEqual(
    secondHalf(series(7, (x) => x)).map((p) => p.y),
    series(7, (x) => x)
      .slice(3)
      .map((p) => p.y),
  );
  assert.equal(parseDuration('90s', 1), 90_000);
  assert.equal(parseDuration('10m', 1), 600_000);
  assert.equal(parseDuration(undefined, 5), 5);
  assert.equal(parseDuration('1500', 1), 1500);
  assert.throws(() => parseDuration('ten minutes', 1));
});
