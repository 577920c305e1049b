import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { mergeDelivery, SeqTable, summarizeDelivery, type SeqCutoff, type Tally } from './delivery.js';

/** One symbol's seqs: slot 0 of a SeqTable, for the tests that follow a single symbol. */
class SeqTracker {
  private readonly table: SeqTable;

  constructor(measuring = false) {
    this.table = new SeqTable(measuring);
  }

  get duplicates(): number {
    return this.table.duplicates;
  }

  get outOfOrder(): number {
    return this.table.outOfOrder;
  }

  startMeasuring(): void {
    this.table.startMeasuring();
  }

  quote(epoch: number, seq: number): void {
    this.table.quote(0, epoch, seq);
  }

  snapshot(epoch: number, seq: number): void {
    this.table.snapshot(0, epoch, seq);
  }

  /** Expected and received seqs up to the cut-off, closed epochs included. */
  tally(cutoff?: SeqCutoff): Tally {
    return this.table.tally(() => cutoff);
  }
}

void describe('SeqTable, one symbol', () => {
  void it('counts every seq after the one held when measuring started', () => {
    const t = new SeqTracker();
    t.snapshot(1, 10);
    t.quote(1, 11);
    t.startMeasuring();
    for (let s = 12; s <= 20; s++) t.quote(1, s);
    assert.deepEqual(t.tally({ epoch: 1, seq: 20 }), { expected: 9, received: 9 });
  });

  void it('counts a seq skipped by conflation as missing', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 100);
    t.quote(1, 101);
    t.quote(1, 105); // conflated: 102..104 never arrived
    t.quote(1, 106);
    assert.deepEqual(t.tally({ epoch: 1, seq: 106 }), { expected: 6, received: 3 });
  });

  void it('counts seqs after the last one received, up to the cut-off, as missing', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 0);
    for (let s = 1; s <= 8; s++) t.quote(1, s);
    assert.deepEqual(t.tally({ epoch: 1, seq: 10 }), { expected: 10, received: 8 });
    // Without an authoritative cut-off the highest seq seen is used.
    assert.deepEqual(t.tally(), { expected: 8, received: 8 });
  });

  void it('ignores seqs above the cut-off (they arrived after the window)', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 0);
    for (let s = 1; s <= 12; s++) t.quote(1, s);
    assert.deepEqual(t.tally({ epoch: 1, seq: 10 }), { expected: 10, received: 10 });
  });

  void it('counts a duplicate once and an out-of-order seq where it belongs', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 0);
    for (const s of [1, 2, 4, 3, 3, 6, 5, 8]) t.quote(1, s);
    assert.equal(t.duplicates, 1);
    assert.equal(t.outOfOrder, 2);
    assert.deepEqual(t.tally({ epoch: 1, seq: 8 }), { expected: 8, received: 7 });
  });

  void it('starts from the first live quote when nothing was held before', () => {
    const t = new SeqTracker(true);
    t.quote(1, 50);
    t.quote(1, 51);
    t.quote(1, 53);
    assert.deepEqual(t.tally({ epoch: 1, seq: 53 }), { expected: 4, received: 3 });
  });

  void it('a snapshot inside the window does not hide what it skipped', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 10);
    t.quote(1, 11);
    t.snapshot(1, 15); // resnapshot after a break: 12..14 were lost
    t.quote(1, 16);
    assert.deepEqual(t.tally({ epoch: 1, seq: 16 }), { expected: 6, received: 3 });
  });

  void it('closes the old epoch at what it reached and restarts in the new one', () => {
    const t = new SeqTracker(true);
    t.snapshot(1, 0);
    t.quote(1, 1);
    t.quote(1, 3); // 2 missing in epoch 1
    t.snapshot(2, 40); // rebuilt: new epoch, new base
    t.quote(2, 41);
    t.quote(2, 42);
    assert.deepEqual(t.tally({ epoch: 2, seq: 43 }), { expected: 3 + 3, received: 2 + 2 });
    // A cut-off for another epoch falls back to the highest seq seen.
    assert.deepEqual(t.tally({ epoch: 1, seq: 99 }), { expected: 3 + 2, received: 2 + 2 });
  });

  void it('matches a brute-force count for any delivery order (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.integer({ min: -5, max: 80 }), { maxLength: 120 }),
        fc.integer({ min: 0, max: 90 }),
        (base, offsets, cut) => {
          const t = new SeqTracker(true);
          t.snapshot(7, base);
          const seen = new Set<number>();
          for (const o of offsets) {
            t.quote(7, base + o);
            if (o > 0) seen.add(base + o);
          }
          const cutoff = base + cut;
          const want = [...seen].filter((s) => s <= cutoff).length;
          assert.deepEqual(t.tally({ epoch: 7, seq: cutoff }), { expected: cut, received: want });
        },
      ),
    );
  });
});

/** The rules of delivery.ts written plainly (a Set of seqs per symbol), to check SeqTable against. */
class ReferenceCount {
  measuring = false;
  closed: Tally = { expected: 0, received: 0 };
  duplicates = 0;
  readonly slots = new Map<
    number,
    { epoch?: number; max: number; pre?: number; base?: number; got: Set<number> }
  >();

  startMeasuring(): void {
    if (this.measuring) return;
    this.measuring = true;
    for (const st of this.slots.values()) st.base = st.pre;
  }

  /** Returns whether the quote is the slot's latest state. */
  observe(slot: number, epoch: number, seq: number, snapshot: boolean): boolean {
    let st = this.slots.get(slot);
    if (!st) this.slots.set(slot, (st = { max: 0, got: new Set() }));
    const newest = st.epoch !== epoch || seq >= st.max;
    if (st.epoch !== undefined && st.epoch !== epoch) {
      const t = this.tally(slot, st.max);
      this.closed.expected += t.expected;
      this.closed.received += t.received;
      Object.assign(st, { max: 0, pre: undefined, base: undefined, got: new Set() });
    }
    st.epoch = epoch;
    st.max = Math.max(st.max, seq);
    if (!this.measuring) {
      st.pre = Math.max(st.pre ?? -Infinity, seq);
      return newest;
    }
    if (st.base === undefined) {
      st.base = snapshot ? seq : seq - 1;
      if (snapshot) return newest;
    }
    if (seq <= st.base) return newest;
    if (st.got.has(seq)) this.duplicates++;
    st.got.add(seq);
    return newest;
  }

  tally(slot: number, cutoff: number): Tally {
    const st = this.slots.get(slot);
    if (st?.base === undefined || cutoff <= st.base) return { expected: 0, received: 0 };
    const base = st.base;
    return { expected: cutoff - base, received: [...st.got].filter((s) => s > base && s <= cutoff).length };
  }
}

void describe('SeqTable (the seqs of all symbols of one client)', () => {
  void it('keeps each symbol apart and matches the plain rules for any interleaving (property)', () => {
    const event = fc.record({
      slot: fc.integer({ min: 0, max: 20 }),
      epoch: fc.integer({ min: 1, max: 2 }),
      seq: fc.integer({ min: 0, max: 40 }),
      snapshot: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 200 }),
        fc.nat({ max: 200 }),
        fc.array(fc.record({ epoch: fc.integer({ min: 1, max: 2 }), seq: fc.integer({ min: 0, max: 45 }) }), {
          minLength: 21,
          maxLength: 21,
        }),
        (events, measureAt, cutoffs) => {
          const table = new SeqTable();
          const ref = new ReferenceCount();
          events.forEach((e, k) => {
            if (k === measureAt) {
              table.startMeasuring();
              ref.startMeasuring();
            }
            const got = e.snapshot
              ? table.snapshot(e.slot, e.epoch, e.seq)
              : table.quote(e.slot, e.epoch, e.seq);
            assert.equal(got, ref.observe(e.slot, e.epoch, e.seq, e.snapshot), 'latest state');
          });
          assert.deepEqual(table.closed, ref.closed);
          assert.equal(table.duplicates, ref.duplicates);
          assert.deepEqual(
            [...table.slots()],
            [...ref.slots.keys()].sort((a, b) => a - b),
          );
          for (const [slot, st] of ref.slots) {
            assert.equal(table.epochOf(slot), st.epoch);
            assert.equal(table.maxSeenOf(slot), st.max);
            const c = cutoffs[slot]!;
            // A cut-off of another epoch falls back to the highest seq seen.
            const want = ref.tally(slot, c.epoch === st.epoch ? c.seq : st.max);
            assert.deepEqual(table.tallyCurrent(slot, c), want, `slot ${slot}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

void describe('delivery summaries', () => {
  void it('sums clients and keeps the worst client', () => {
    const s = summarizeDelivery([
      { expected: 100, received: 100 },
      { expected: 100, received: 90 },
      { expected: 0, received: 0 },
    ]);
    assert.deepEqual(s, {
      expected: 200,
      received: 190,
      share: 0.95,
      worstClientShare: 0.9,
      clientsMeasured: 2,
    });
  });

  void it('reports 1 when nothing was expected', () => {
    assert.equal(summarizeDelivery([]).share, 1);
  });

  void it('merges worker summaries', () => {
    const a = summarizeDelivery([{ expected: 10, received: 10 }]);
    const b = summarizeDelivery([{ expected: 30, received: 27 }]);
    const m = mergeDelivery([a, b]);
    assert.equal(m.expected, 40);
    assert.equal(m.received, 37);
    assert.equal(m.share, 37 / 40);
    assert.equal(m.worstClientShare, 0.9);
    assert.equal(m.clientsMeasured, 2);
  });
});
