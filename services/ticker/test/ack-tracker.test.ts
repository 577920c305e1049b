import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AckTracker } from '../src/ack-tracker.js';
import { BoundedDeque } from '../src/bounded-deque.js';

describe('BoundedDeque', () => {
  it('keeps FIFO order, refuses pushes when full and frees room on shift', () => {
    const q = new BoundedDeque<number>(3);
    assert.equal(q.push(1) && q.push(2) && q.push(3), true);
    assert.equal(q.push(4), false);
    assert.equal(q.full, true);
    assert.deepEqual(q.shift(2), [1, 2]);
    assert.equal(q.push(5), true);
    assert.deepEqual([q.at(0), q.at(1), q.at(2)], [3, 5, undefined]);
    assert.deepEqual(q.drain(), [3, 5]);
    assert.equal(q.length, 0);
  });

  it('stays correct across many compactions', () => {
    const q = new BoundedDeque<number>(5000);
    let next = 0;
    let expect = 0;
    for (let round = 0; round < 200; round++) {
      while (q.push(next)) next++;
      for (const v of q.shift(1 + (round % 4000))) assert.equal(v, expect++);
    }
  });
});

describe('AckTracker', () => {
  it('acks the completed prefix only, rejections included', () => {
    const t = new AckTracker(10);
    const a = t.track(10)!;
    t.trackDone(11); // rejected
    const c = t.track(12)!;
    assert.equal(t.advance(), undefined);
    c.done = true;
    assert.equal(t.advance(), undefined, '10 is still pending');
    a.done = true;
    assert.equal(t.advance(), 12);
    assert.equal(t.ackedThrough, 12);
    assert.equal(t.inFlight, 0);
  });

  it('lastMoveMs: set when tracking starts from empty and when the ack moves, not by later tracking', () => {
    let now = 100;
    const t = new AckTracker(10, 0, () => now);
    assert.equal(t.lastMoveMs, 100);
    now = 200;
    const a = t.track(1)!; // nothing was in flight: the wait starts now
    assert.equal(t.lastMoveMs, 200);
    now = 300;
    t.track(2);
    t.trackDone(3);
    assert.equal(t.lastMoveMs, 200, 'more ticks behind a waiting one do not reset the wait');
    now = 400;
    assert.equal(t.advance(), undefined);
    assert.equal(t.lastMoveMs, 200, 'an advance that did not move changes nothing');
    a.done = true;
    assert.equal(t.advance(), 1);
    assert.equal(t.lastMoveMs, 400);
  });

  it('is bounded', () => {
    const t = new AckTracker(2);
    assert.ok(t.track(1));
    assert.ok(t.track(2));
    assert.equal(t.track(3), undefined);
    assert.equal(t.full, true);
  });

  it('never acks past a pending seq, whatever the completion order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (rejectedFlags, order) => {
          const t = new AckTracker(100);
          const entries = rejectedFlags.map((rejected, i) =>
            rejected ? (t.trackDone(i + 1), undefined) : t.track(i + 1)!,
          );
          const pendingIdx = entries.flatMap((e, i) => (e ? [i] : []));
          const completionOrder = [...pendingIdx].sort((x, y) => (order[x] ?? x) - (order[y] ?? y));
          for (const i of completionOrder) {
            entries[i]!.done = true;
            t.advance();
            const firstPending = entries.findIndex((e) => e !== undefined && !e.done);
            const bound = firstPending === -1 ? entries.length : firstPending;
            if (t.ackedThrough !== bound) return false; // exactly the completed prefix
          }
          t.advance();
          return t.ackedThrough === entries.length;
        },
      ),
    );
  });
});
