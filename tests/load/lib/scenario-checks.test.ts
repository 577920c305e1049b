// The scenarios' own arithmetic: the ingest loss check, the applied rate,
// and the seed scenario's feed rate and cut-offs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Quote } from '@tickmesh/kit/proto';
import { cannedQuote } from '../baselines/canned.js';
import { appliedRate, checkApplied } from '../scenarios/ingest.js';
import { cutoffsOf, ticksBetween } from '../scenarios/websocket.js';

const q = (symbol: string, o: Partial<Quote>): Quote => ({ ...cannedQuote(symbol, 100), ...o });

void describe('ingest loss check', () => {
  const before = new Map([['A', { seq: 10, epoch: 1, volume: 1000, trades: 10, sessionDate: '2026-01-02' }]]);
  const acked = {
    A: { count: 5, volume: 50, lastPrice: 101.25, lastSeq: 99 },
    B: { count: 3, volume: 30, lastPrice: 7.5, lastSeq: 98 },
  };

  void it('passes when every acked tick was applied once', () => {
    const after = [
      q('A', { seq: 15, epoch: 1, volume: 1050, trades: 15, sessionDate: '2026-01-02', last: 101.25 }),
      q('B', { seq: 3, epoch: 1, volume: 30, trades: 3, sessionDate: '2026-01-02', last: 7.5 }),
    ];
    assert.deepEqual(
      checkApplied(before, after, acked).map((c) => [c.symbol, c.applied, c.problems]),
      [
        ['A', 5, []],
        ['B', 3, []],
      ],
    );
  });

  void it('names a lost tick, a doubled one, a wrong last price and a missing symbol', () => {
    const after = [
      q('A', { seq: 16, epoch: 1, volume: 1060, trades: 16, sessionDate: '2026-01-02', last: 101.2 }),
    ];
    const [a, b] = checkApplied(before, after, acked);
    assert.deepEqual(a!.problems, [
      'seq advanced by 6, 5 ticks acked',
      'volume advanced by 60, acked 50',
      'trades advanced by 6, acked 5',
      'last 101.2, last acked price 101.25',
    ]);
    assert.deepEqual(b!.problems, ['no quote, 3 ticks acked']);
  });

  void it('skips volume and trades across a trading-day boundary, keeps seq', () => {
    const after = [
      q('A', { seq: 15, epoch: 1, volume: 50, trades: 5, sessionDate: '2026-01-03', last: 101.25 }),
    ];
    assert.deepEqual(checkApplied(before, after, { A: acked.A })[0]!.problems, []);
  });

  void it('reports an epoch change', () => {
    const after = [
      q('A', { seq: 15, epoch: 2, volume: 1050, trades: 15, sessionDate: '2026-01-02', last: 101.25 }),
    ];
    assert.deepEqual(checkApplied(before, after, { A: acked.A })[0]!.problems, [
      'epoch changed 1 → 2 during the run',
    ]);
  });
});

void describe('applied rate', () => {
  void it('counts from just before the first ack over the sending time only', () => {
    const series = [
      { tMs: 0, acked: 0, applied: 0 },
      { tMs: 500, acked: 0, applied: 0 },
      { tMs: 1000, acked: 900, applied: 500 },
      { tMs: 1500, acked: 2000, applied: 1500 },
      { tMs: 2500, acked: 4000, applied: 3500 },
      { tMs: 3000, acked: 4000, applied: 4000 }, // drain after sending: not counted
    ];
    assert.equal(appliedRate(series, 2000), 3500 / 2);
    assert.equal(appliedRate([{ tMs: 0, acked: 0, applied: 0 }], 1000), 0);
  });
});

void describe('seed feed and cut-offs', () => {
  void it('counts ticks between two ListQuotes answers, leaving out a changed epoch', () => {
    const before = [q('A', { seq: 10, epoch: 1 }), q('B', { seq: 5, epoch: 1 })];
    const after = [q('A', { seq: 25, epoch: 1 }), q('B', { seq: 2, epoch: 2 }), q('C', { seq: 4, epoch: 1 })];
    assert.equal(ticksBetween(before, after), 15 + 4);
    assert.deepEqual(cutoffsOf(after), {
      A: { epoch: 1, seq: 25 },
      B: { epoch: 2, seq: 2 },
      C: { epoch: 1, seq: 4 },
    });
  });
});
