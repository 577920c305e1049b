// Incremental checkpoints of bars: what is sealed, kept and dropped, and,
// against the real reducer with late ticks and count-based retention, that a
// sealed bar never changes afterwards and that the segments plus the open
// bars always restore exactly the retained bars.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Tick } from '@tickmesh/kit/proto';
import { defaultInstrument, loadUniverse } from '@tickmesh/kit';
import { barStart, planSegments, type SegmentRef } from '../src/bar-segments.js';
import {
  applyMessage,
  clearDirty,
  finalBefore,
  makeDayOf,
  newView,
  type ReducerContext,
} from '../src/reducer.js';
import { encodeBar, type Interval } from '../src/state.js';

const universe = loadUniverse('bist30');
const LATE_MS = 5000;
const ctx: ReducerContext = {
  instrumentOf: (s) => universe.bySymbol.get(s) ?? defaultInstrument(s),
  dayOf: makeDayOf(universe.session.timeZone),
  lateTickBoundMs: LATE_MS,
  maxProducersPerSymbol: 3,
};
const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);

const bar = (start: number) => `${start}:100:101:99:100:5:1`;

describe('planSegments', () => {
  it('seals only whole groups of final bars and carries the rest', () => {
    const unsealed = [1000, 2000, 3000, 4000, 5000, 6000, 7000].map(bar);
    const plan = planSegments({
      sealed: [],
      unsealed,
      oldestRetained: 1000,
      finalBefore: 6000, // 1000..5000 are final
      segmentBars: 2,
    });
    assert.deepEqual(
      plan.seal.map((s) => s.ref),
      [
        [1000, 2000],
        [3000, 4000],
      ],
    );
    assert.deepEqual(plan.seal[0]!.members, [bar(1000), bar(2000)]);
    assert.deepEqual(plan.open, [5000, 6000, 7000].map(bar), 'a final bar short of a group stays open');
    assert.deepEqual(plan.keep, [
      [1000, 2000],
      [3000, 4000],
    ]);
    assert.deepEqual(plan.drop, []);
  });

  it('drops a listed segment once none of its bars is retained, and keeps a partly trimmed one', () => {
    const sealed: SegmentRef[] = [
      [1000, 2000],
      [3000, 4000],
      [5000, 6000],
    ];
    const plan = planSegments({
      sealed,
      unsealed: [7000, 8000].map(bar),
      oldestRetained: 4000,
      finalBefore: 7000,
      segmentBars: 2,
    });
    assert.deepEqual(plan.drop, [[1000, 2000]]);
    assert.deepEqual(plan.keep, [
      [3000, 4000],
      [5000, 6000],
    ]);
    assert.deepEqual(plan.seal, []);
    assert.deepEqual(plan.open, [7000, 8000].map(bar));
  });

  it('drops every segment when no bar is retained', () => {
    const plan = planSegments({
      sealed: [[1000, 2000]],
      unsealed: [],
      oldestRetained: undefined,
      finalBefore: 9000,
      segmentBars: 2,
    });
    assert.deepEqual(plan.drop, [[1000, 2000]]);
    assert.deepEqual(plan.keep, []);
  });

  it('finalBefore follows the reducer: nothing is final before a bar-touching tick', () => {
    assert.equal(finalBefore(0, LATE_MS, 's'), Number.NEGATIVE_INFINITY);
    assert.equal(finalBefore(T0 + 12_345, LATE_MS, 's'), T0 + 7000);
    assert.equal(finalBefore(T0 + 12_345, LATE_MS, 'm'), T0);
    assert.equal(barStart(bar(T0)), T0);
  });
});

describe('sealed segments against the reducer', () => {
  it('a sealed bar never changes, and segments + open bars restore exactly the retained bars', () => {
    const step = fc.record({
      // Event-time moves, late ticks included (up to 9 s back, beyond the 5 s bound).
      deltas: fc.array(fc.integer({ min: -9000, max: 4000 }), { minLength: 1, maxLength: 6 }),
      round: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 5, maxLength: 60 }),
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 8, max: 40 }),
        (steps, segmentBars, retention) => {
          const view = newView('THYAO');
          const redis: Record<Interval, Map<number, string>> = { s: new Map(), m: new Map() };
          const segments = new Map<string, string[]>();
          const listed: Record<Interval, SegmentRef[]> = { s: [], m: [] };
          const open: Record<Interval, string[]> = { s: [], m: [] };
          let t = T0;
          let seq = 0;
          let ss = 0;
          for (const st of steps) {
            const ticks: Tick[] = st.deltas.map((d) => {
              t = Math.max(T0, t + d * 20); // minute bars need time to move too
              seq++;
              return {
                symbol: 'THYAO',
                price: 286,
                size: 1 + (seq % 7),
                producerId: 'p',
                producerSeq: seq,
                eventTimeMs: t,
                bid: undefined,
                ask: undefined,
              };
            });
            applyMessage(new Map([['THYAO', view]]), ticks, ++ss, ctx, t);
            for (const i of ['s', 'm'] as const) {
              for (const start of view.dirty.bars[i])
                redis[i].set(start, encodeBar(view.bars[i].get(start)!));
              // Count-based retention, newest first, as the write script trims.
              const starts = [...redis[i].keys()].sort((a, b) => a - b);
              for (const old of starts.slice(0, Math.max(0, starts.length - retention))) redis[i].delete(old);
              // Finality: every retained bar of a listed segment is still what was sealed.
              for (const ref of listed[i]) {
                for (const member of segments.get(`${i}.${ref[0]}`)!) {
                  const now = redis[i].get(barStart(member));
                  if (now !== undefined)
                    assert.equal(now, member, `sealed ${i} bar ${barStart(member)} changed`);
                }
              }
            }
            clearDirty(view);
            if (!st.round) continue;
            for (const i of ['s', 'm'] as const) {
              const through = listed[i].at(-1)?.[1];
              const retained = [...redis[i].entries()].sort((a, b) => a[0] - b[0]);
              const plan = planSegments({
                sealed: listed[i],
                unsealed: retained.filter(([s]) => through === undefined || s > through).map(([, m]) => m),
                oldestRetained: retained[0]?.[0],
                finalBefore: finalBefore(view.state?.maxEventTimeMs ?? 0, LATE_MS, i),
                segmentBars,
              });
              for (const s of plan.seal) segments.set(`${i}.${s.ref[0]}`, s.members);
              listed[i] = plan.keep;
              open[i] = plan.open;
              for (const ref of plan.drop) segments.delete(`${i}.${ref[0]}`);
              // Restore: segments then open bars, trimmed to the retention like the write script.
              const restored = [...listed[i].flatMap((ref) => segments.get(`${i}.${ref[0]}`)!), ...open[i]];
              const trimmed = restored.slice(Math.max(0, restored.length - retention));
              assert.deepEqual(
                trimmed,
                retained.map(([, m]) => m),
                `${i}: restore equals the retained bars`,
              );
              assert.ok(
                segments.size <= 2 * (Math.ceil(retention / segmentBars) + 1),
                'segments stay bounded',
              );
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
