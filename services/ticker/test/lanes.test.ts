// The lane check's logic (lanes.ts) over an in-memory stream: what is a
// duplicate, what is refused, what a stale cache costs, and the horizon.
// The same behaviour against a real nats-server: lanes.integration.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumerInfo } from '@nats-io/jetstream';
import type { Tick } from '@tickmesh/kit/proto';
import { laneSubject } from '@tickmesh/kit';
import { consumersTakeLanes } from '../src/lane-readiness.js';
import {
  LaneBook,
  TickRefusedError,
  type Horizon,
  type LaneReader,
  type StoredMessage,
} from '../src/lanes.js';

/** A stream in memory: messages in order, some removed from the front (retention). */
class MemoryStream implements LaneReader {
  messages: Array<{ subject: string; m: StoredMessage; timeMs: number }> = [];
  reads = 0;
  removedThrough = 0;

  append(subject: string, ticks: Tick[], timeMs = 1000): number {
    const streamSeq = this.messages.length + 1;
    this.messages.push({ subject, m: { streamSeq, ticks }, timeMs });
    return streamSeq;
  }

  private live() {
    return this.messages.filter((x) => x.m.streamSeq > this.removedThrough);
  }

  last(subject: string): Promise<StoredMessage | undefined> {
    this.reads++;
    return Promise.resolve(this.live().findLast((x) => x.subject === subject)?.m);
  }

  atOrAfter(subject: string, streamSeq: number): Promise<StoredMessage | undefined> {
    this.reads++;
    return Promise.resolve(this.live().find((x) => x.subject === subject && x.m.streamSeq >= streamSeq)?.m);
  }

  horizon(): Promise<Horizon> {
    this.reads++;
    const first = this.live()[0];
    if (this.removedThrough === 0) return Promise.resolve({ firstSeq: 1, removedBeforeMs: 0 });
    return Promise.resolve({
      firstSeq: this.removedThrough + 1,
      removedBeforeMs: first ? first.timeMs : this.messages.at(-1)!.timeMs,
    });
  }
}

function tick(seq: number, over: Partial<Tick> = {}): Tick {
  return {
    symbol: 'THYAO',
    price: 100 + seq / 100,
    size: seq,
    producerId: 'p.1',
    producerSeq: seq,
    eventTimeMs: 10_000 + seq,
    bid: undefined,
    ask: undefined,
    ...over,
  };
}

const P = 3;
const SUBJECT = laneSubject(P, 'p.1');

function book(stream: MemoryStream, maxLanes = 100): LaneBook {
  return new LaneBook(stream, { maxLanes, maxFutureMs: 60_000 });
}

/** Publishes as the publisher would after a plan: the ticks without a verdict. */
async function publish(b: LaneBook, s: MemoryStream, ticks: Tick[]) {
  const plan = await b.plan(P, ticks);
  const out = plan.verdicts.filter((v) => v === undefined).length;
  const toPublish = ticks.filter((_, i) => plan.verdicts[i] === undefined);
  if (toPublish.length > 0) {
    const current =
      s.messages.findLast((x) => x.subject === SUBJECT && x.m.streamSeq > s.removedThrough)?.m.streamSeq ?? 0;
    assert.equal(plan.expectedSubjectSeq, current, 'the plan expects the lane as the stream has it');
    const seq = s.append(SUBJECT, toPublish);
    b.stored(P, 'p.1', seq, toPublish);
  }
  return { plan, published: out };
}

describe('LaneBook', () => {
  it('encodes producer ids as one subject token', () => {
    assert.equal(SUBJECT, 'ticks.3.p%2E1');
  });

  it('passes increasing seqs, with no read after the lane is known', async () => {
    const s = new MemoryStream();
    const b = book(s);
    await publish(b, s, [tick(1), tick(2)]);
    const readsAfterFirst = s.reads;
    const { plan } = await publish(b, s, [tick(5), tick(9)]);
    assert.deepEqual(plan.verdicts, [undefined, undefined]);
    assert.equal(s.reads, readsAfterFirst, 'a known lane costs no read');
  });

  it('answers a resend of a stored tick as a duplicate, however it is batched', async () => {
    const s = new MemoryStream();
    const b = book(s);
    await publish(b, s, [tick(1), tick(3), tick(5)]);
    await publish(b, s, [tick(7), tick(9)]);
    const { plan, published } = await publish(b, s, [tick(3), tick(5), tick(7), tick(11)]);
    assert.deepEqual(plan.verdicts.slice(0, 3), [
      { kind: 'duplicate', streamSeq: 1 },
      { kind: 'duplicate', streamSeq: 1 },
      { kind: 'duplicate', streamSeq: 2 },
    ]);
    assert.equal(published, 1, 'only seq 11 is new');
  });

  it('refuses a seq below the last stored one that was never stored', async () => {
    const s = new MemoryStream();
    const b = book(s);
    await publish(b, s, [tick(1), tick(3), tick(5)]);
    await publish(b, s, [tick(10)]);
    for (const seq of [4, 7]) {
      const { plan } = await publish(b, s, [tick(seq)]);
      const v = plan.verdicts[0];
      assert.equal(v?.kind, 'refused', `seq ${seq}`);
      assert.ok(v.kind === 'refused' && v.error instanceof TickRefusedError);
      assert.equal(v.error.rejectReason, 'seq_not_increasing');
      assert.equal(v.error.field, 'tick.producer_seq');
    }
  });

  it('refuses a seq stored with other content (one seq names one tick)', async () => {
    const s = new MemoryStream();
    const b = book(s);
    await publish(b, s, [tick(1), tick(2)]);
    const { plan } = await publish(b, s, [tick(2, { price: 999 })]);
    assert.equal(plan.verdicts[0]?.kind, 'refused');
    const same = await publish(b, s, [tick(2, { eventTimeMs: 99_999 })]);
    assert.deepEqual(same.plan.verdicts, [{ kind: 'duplicate', streamSeq: 1 }], 'event time is not content');
  });

  it('finds old batches by searching the stream (beyond the remembered ranges)', async () => {
    const s = new MemoryStream();
    const b = book(s);
    for (let i = 1; i <= 40; i++) {
      s.append('ticks.3.other', [tick(i, { producerId: 'other' })]);
      await publish(b, s, [tick(2 * i)]);
    }
    const { plan } = await publish(b, s, [tick(6), tick(7), tick(60)]);
    const dup = plan.verdicts[0];
    assert.equal(dup?.kind, 'duplicate');
    assert.equal(s.messages[(dup as { streamSeq: number }).streamSeq - 1]!.m.ticks[0]!.producerSeq, 6);
    assert.equal(plan.verdicts[1]?.kind, 'refused');
    assert.equal(plan.verdicts[2]?.kind, 'duplicate');
  });

  it('a stale cache (another writer) is corrected by JetStream, then judged anew', async () => {
    const s = new MemoryStream();
    const mine = book(s);
    const theirs = book(s);
    await publish(mine, s, [tick(1)]);
    await publish(theirs, s, [tick(2), tick(3)]);
    // Mine still expects seq 1 of the stream: JetStream would refuse that write.
    const stale = await mine.plan(P, [tick(4)]);
    assert.equal(stale.expectedSubjectSeq, 1);
    mine.forget(P, 'p.1');
    const fresh = await mine.plan(P, [tick(3), tick(4)]);
    assert.equal(fresh.expectedSubjectSeq, 2);
    assert.deepEqual(fresh.verdicts, [{ kind: 'duplicate', streamSeq: 2 }, undefined]);
  });

  it('forgets the least recently used lanes, and a forgotten lane is read again, never misjudged', async () => {
    const s = new MemoryStream();
    const b = book(s, 2);
    for (const id of ['a', 'b', 'c']) {
      const t = tick(5, { producerId: id });
      const seq = s.append(laneSubject(P, id), [t]);
      await b.plan(P, [tick(6, { producerId: id })]);
      b.stored(P, id, seq, [t]);
    }
    assert.equal(b.size, 2);
    const { verdicts } = await b.plan(P, [tick(5, { producerId: 'a' })]);
    assert.deepEqual(verdicts, [{ kind: 'duplicate', streamSeq: 1 }]);
  });

  it('refuses what may have been stored before the stream horizon, accepts what cannot have been', async () => {
    const s = new MemoryStream();
    const b = book(s);
    s.append(SUBJECT, [tick(1, { eventTimeMs: 1_000 })], 1_000);
    s.append('ticks.3.other', [tick(1, { producerId: 'other' })], 500_000);
    s.removedThrough = 1; // retention took the lane's only message
    const { plan } = await publish(b, s, [
      tick(1, { eventTimeMs: 1_000 }),
      tick(2, { eventTimeMs: 1_000_000 }),
    ]);
    const first = plan.verdicts[0];
    assert.ok(first?.kind === 'refused' && first.error.rejectReason === 'event_time_too_old');
    assert.equal(first.error.field, 'tick.event_time_ms');
    assert.equal(plan.verdicts[1], undefined, 'an event time after horizon + max future is new');
    // Below the lane's oldest message still held, with nothing earlier in the stream: the same rule.
    const resend = await b.plan(P, [tick(1, { eventTimeMs: 1_000 })]);
    assert.ok(resend.verdicts[0]?.kind === 'refused');
    assert.equal(resend.verdicts[0].error.rejectReason, 'event_time_too_old');
  });
});

describe('consumersTakeLanes', () => {
  const consumer = (config: Record<string, unknown>) => ({ config }) as unknown as ConsumerInfo;
  it('waits for every durable consumer of a partition subject to take its lanes', () => {
    assert.equal(consumersTakeLanes([]), true);
    assert.equal(
      consumersTakeLanes([consumer({ durable_name: 'p0', filter_subject: 'ticks.0' })]),
      false,
      'a price-cache before lanes',
    );
    assert.equal(
      consumersTakeLanes([consumer({ durable_name: 'p0', filter_subjects: ['ticks.0', 'ticks.0.>'] })]),
      true,
    );
    assert.equal(
      consumersTakeLanes([
        consumer({ durable_name: 'p0', filter_subjects: ['ticks.0', 'ticks.0.>'] }),
        consumer({ durable_name: 'p1', filter_subject: 'ticks.1' }),
      ]),
      false,
    );
    assert.equal(
      consumersTakeLanes([
        consumer({ filter_subject: 'ticks.1' }),
        consumer({ durable_name: 'x', filter_subject: 'ticks.>' }),
      ]),
      true,
      'ephemeral consumers and whole-stream readers do not count',
    );
  });
});
