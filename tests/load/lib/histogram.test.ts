import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LatencyRecorder, newLatencyHistogram, summarize } from './histogram.js';

void describe('LatencyRecorder', () => {
  void it('gives the histogram that recording each value directly gives (property)', () => {
    const sample = fc.record({
      // Up to ~2.3 h: the fast buckets and, past 2^31 µs, the direct path.
      us: fc.oneof(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 1, max: 8_400_000_000 })),
      count: fc.integer({ min: 1, max: 50 }),
    });
    fc.assert(
      fc.property(fc.array(sample, { maxLength: 300 }), (samples) => {
        const direct = newLatencyHistogram();
        const recorder = new LatencyRecorder();
        for (const { us, count } of samples) {
          direct.recordValueWithCount(us, count);
          recorder.record(us, count);
        }
        const got = recorder.drained;
        assert.equal(got.totalCount, direct.totalCount);
        for (const p of [0.1, 1, 10, 50, 90, 99, 99.9, 99.99, 100])
          assert.equal(got.getValueAtPercentile(p), direct.getValueAtPercentile(p), `p${p}`);
        // hdr-histogram-js has getCountAtValue; its typings leave it out.
        const countAt = (h: object, us: number) =>
          (h as { getCountAtValue(v: number): number }).getCountAtValue(us);
        for (const { us } of samples) assert.equal(countAt(got, us), countAt(direct, us), `${us} µs`);
      }),
      { numRuns: 300 },
    );
  });

  void it('keeps what was drained and adds what came after; reset empties it', () => {
    const r = new LatencyRecorder();
    r.record(10_000, 2);
    assert.equal(summarize(r.drained).count, 2);
    r.record(20_000);
    const s = summarize(r.drained);
    assert.equal(s.count, 3);
    assert.equal(s.maxMs, 20);
    r.reset();
    assert.equal(r.drained.totalCount, 0);
  });
});
