import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateTargets, formatFigure, formatGoal, TARGETS, type ScenarioResult } from './targets.js';

const ok = (id: string, metrics: Record<string, number>): ScenarioResult => ({
  id,
  title: id,
  status: 'ok',
  durationMs: 1,
  metrics,
});

void describe('targets', () => {
  void it('covers every performance goal', () => {
    assert.deepEqual(
      TARGETS.map((t) => t.id),
      [
        'getquote-rps',
        'getquote-p99',
        'streamquotes-rate',
        'ingest-rate',
        'ingest-loss',
        'seed-1000-p99',
        'seed-1000-delivered',
        'seed-5000-p99',
        'seed-5000-delivered',
        'fanout-frames',
      ],
    );
  });

  void it('passes and fails on the thresholds, inclusive', () => {
    const results = evaluateTargets([
      ok('ghz-GetQuote', {
        rpsRatio: 0.9,
        p99Ratio: 1.51,
        rps: 900,
        baselineRps: 1000,
        p99Ms: 15.1,
        baselineP99Ms: 10,
      }),
      ok('stream-StreamQuotes', { quotesPerSecond: 69_999 }),
      ok('e2e-ingest', { ticksPerSecond: 25_000, lossOrDuplicates: 0, ticksAcked: 10, ticksApplied: 10 }),
      ok('ws-seed-1000', { p99Ms: 50, deliveredShare: 0.9989 }),
      ok('ws-seed-5000', { p99Ms: 150, deliveredShare: 1 }),
      ok('ws-fanout', { framesRatio: 0.81 }),
    ]);
    const byId = Object.fromEntries(results.map((r) => [r.id, r.pass]));
    assert.deepEqual(byId, {
      'getquote-rps': true,
      'getquote-p99': false,
      'streamquotes-rate': false,
      'ingest-rate': true,
      'ingest-loss': true,
      'seed-1000-p99': true,
      'seed-1000-delivered': false,
      'seed-5000-p99': true,
      'seed-5000-delivered': true,
      'fanout-frames': true,
    });
    assert.equal(results.find((r) => r.id === 'getquote-p99')!.shown, '1.51x bare');
    const rps = results.find((r) => r.id === 'getquote-rps')!;
    assert.equal(rps.shown, '90% of bare');
    assert.equal(rps.context, '900 vs bare 1,000 rps');
  });

  void it('any loss or duplicate fails the ingest check', () => {
    const [loss] = evaluateTargets([ok('e2e-ingest', { lossOrDuplicates: 1 })], {
      targets: TARGETS.filter((t) => t.id === 'ingest-loss'),
    });
    assert.equal(loss!.pass, false);
  });

  void it('a skipped, failed or missing scenario is not measured, never a pass', () => {
    const results = evaluateTargets([
      {
        id: 'ghz-GetQuote',
        title: 'x',
        status: 'failed',
        error: 'boom',
        durationMs: 1,
        metrics: { rpsRatio: 1 },
      },
      { id: 'ws-seed-1000', title: 'x', status: 'skipped', durationMs: 0, metrics: {} },
      ok('ws-fanout', { framesPerSecond: 5 }),
    ]);
    for (const r of results) {
      assert.equal(r.pass, null, r.id);
      assert.equal(r.figure, null, r.id);
      assert.match(r.shown, /^not measured/, r.id);
    }
    assert.match(results[0]!.shown, /failed: boom/);
  });

  void it('marks quick-run verdicts as indicative', () => {
    const [r] = evaluateTargets([ok('ws-fanout', { framesRatio: 1 })], {
      quick: true,
      targets: TARGETS.filter((t) => t.id === 'fanout-frames'),
    });
    assert.equal(r!.indicative, true);
  });

  void it('formats figures and goals for people', () => {
    assert.equal(formatFigure('rate', 71234.4), '71,234/s');
    assert.equal(formatFigure('share', 0.99912), '99.912%');
    assert.equal(formatFigure('ms', 12.345), '12.3 ms');
    assert.equal(formatFigure('ratio', 0.934), '93% of bare');
    assert.equal(formatFigure('ratio', 1.234, '<='), '1.23x bare');
    assert.equal(formatGoal(TARGETS.find((t) => t.id === 'getquote-p99')!), '<= 1.5x bare');
    assert.equal(formatGoal(TARGETS.find((t) => t.id === 'seed-1000-delivered')!), '>= 99.9%');
    assert.equal(formatGoal(TARGETS.find((t) => t.id === 'streamquotes-rate')!), '>= 70,000/s');
  });
});
