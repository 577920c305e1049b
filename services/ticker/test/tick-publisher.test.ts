import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tick } from '@tickmesh/kit/proto';
import { UnavailableError, loadUniverse, decodeBatch, partitionOf } from '@tickmesh/kit';
import { TickPublisher, type StoreResult } from '../src/tick-publisher.js';

interface Call {
  subject: string;
  msgId: string;
  ticks: Tick[];
  resolve: (r: StoreResult) => void;
  reject: (e: Error) => void;
}

/** A publish function whose calls the test answers by hand. */
function controlled() {
  const calls: Call[] = [];
  let waiter: (() => void) | undefined;
  let streamSeq = 0;
  const publish = (subject: string, data: Uint8Array, msgId: string) =>
    new Promise<StoreResult>((resolve, reject) => {
      calls.push({ subject, msgId, ticks: decodeBatch(data), resolve, reject });
      waiter?.();
    });
  return {
    calls,
    publish,
    /** Waits until at least n calls were made. */
    async until(n: number): Promise<void> {
      const deadline = Date.now() + 5000;
      while (calls.length < n) {
        assert.ok(Date.now() < deadline, `expected ${n} publishes, saw ${calls.length}`);
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 20);
        });
      }
    },
    ack(i: number, duplicate = false) {
      calls[i]!.resolve({ streamSeq: ++streamSeq, duplicate });
    },
  };
}

function tick(symbol: string, seq: number, producerId = 'p'): Tick {
  return {
    symbol,
    price: 1,
    size: 1,
    producerId,
    producerSeq: seq,
    eventTimeMs: 1,
    bid: undefined,
    ask: undefined,
  };
}

const settle = () => new Promise((r) => setImmediate(r));

function publisher(
  publish: ReturnType<typeof controlled>['publish'],
  over: Partial<ConstructorParameters<typeof TickPublisher>[0]> = {},
) {
  return new TickPublisher({
    partitions: 4,
    maxBatchTicks: 3,
    queueTicks: 6,
    retryMinMs: 1,
    retryMaxMs: 5,
    publish,
    random: () => 0,
    ...over,
  });
}

// Two symbols in different partitions of 4, and one sharing A's partition.
const A = 'THYAO';
const B = ['GARAN', 'AKBNK', 'ASELS', 'BIMAS'].find((s) => partitionOf(s, 4) !== partitionOf(A, 4))!;
const A2 = loadUniverse('bist30')
  .instruments.map((i) => i.symbol)
  .find((s) => s !== A && partitionOf(s, 4) === partitionOf(A, 4))!;

describe('TickPublisher', () => {
  it('publishes one partition strictly one batch at a time, other partitions in parallel, with contract msg ids', async () => {
    const c = controlled();
    const p = publisher(c.publish);
    const results: Array<[number, StoreResult | undefined]> = [];
    p.trySubmit(tick(A, 1), (_e, r) => results.push([1, r]));
    p.trySubmit(tick(B, 6));
    await c.until(2);
    for (let s = 2; s <= 5; s++) p.trySubmit(tick(A, s), (_e, r) => results.push([s, r]));
    await settle();
    assert.equal(c.calls.length, 2, 'one in flight for A, one for B');
    const first = c.calls.find((k) => k.subject === `ticks.${partitionOf(A, 4)}`)!;
    assert.deepEqual(
      first.ticks.map((t) => t.producerSeq),
      [1],
    );
    assert.equal(first.msgId, `p/${partitionOf(A, 4)}/1/1`);
    c.ack(c.calls.indexOf(first));
    await c.until(3);
    // ticks 2..5 queued meanwhile: the next batch takes up to maxBatchTicks (3)
    assert.deepEqual(
      c.calls[2]!.ticks.map((t) => t.producerSeq),
      [2, 3, 4],
    );
    assert.equal(c.calls[2]!.msgId, `p/${partitionOf(A, 4)}/2/4`);
    c.ack(2);
    await c.until(4);
    c.ack(3);
    c.ack(c.calls.findIndex((k) => k.subject === `ticks.${partitionOf(B, 4)}`));
    await p.idle();
    assert.deepEqual(
      results.map(([s]) => s),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      results.map(([, r]) => r?.streamSeq),
      [1, 2, 2, 2, 3],
    );
    await p.close(100);
  });

  it('retries a failed head batch with the same id and ticks, never publishing a later one first', async () => {
    const c = controlled();
    const p = publisher(c.publish);
    const stored: number[] = [];
    for (let s = 1; s <= 3; s++) p.trySubmit(tick(A, s), (e) => !e && stored.push(s));
    await c.until(1);
    for (let s = 4; s <= 6; s++) p.trySubmit(tick(A, s), (e) => !e && stored.push(s));
    c.calls[0]!.reject(new Error('timeout'));
    await c.until(2);
    assert.equal(p.failing, true);
    c.calls[1]!.reject(new Error('no responders'));
    await c.until(3);
    for (const k of c.calls) {
      assert.equal(k.msgId, c.calls[0]!.msgId);
      assert.deepEqual(k.ticks, c.calls[0]!.ticks);
    }
    c.ack(2, true); // the lost-ack case: JetStream says duplicate
    await c.until(4);
    assert.equal(p.failing, false);
    assert.deepEqual(
      c.calls[3]!.ticks.map((t) => t.producerSeq),
      [4, 5, 6],
    );
    c.ack(3);
    await p.idle();
    assert.deepEqual(stored, [1, 2, 3, 4, 5, 6]);
    await p.close(100);
  });

  it('retryNow() retries a failing batch at once instead of after its backoff, and starts the backoff over', async () => {
    const c = controlled();
    // Backoff of a minute: without retryNow() the second attempt would not come during the test.
    const p = publisher(c.publish, { retryMinMs: 60_000, retryMaxMs: 60_000 });
    let stored = false;
    p.trySubmit(tick(A, 1), (e) => (stored = !e));
    await c.until(1);
    c.calls[0]!.reject(new Error('timeout'));
    await settle();
    await sleep(50);
    assert.equal(c.calls.length, 1, 'asleep in its backoff');
    const woke = Date.now();
    p.retryNow(); // NATS reconnected
    await c.until(2);
    assert.ok(Date.now() - woke < 1000, 'retried at once');
    assert.equal(c.calls[1]!.msgId, c.calls[0]!.msgId);
    c.ack(1);
    await p.idle();
    assert.equal(stored, true);
    p.retryNow(); // nothing asleep: harmless
    await p.close(100);
  });

  it('retryNow() does not wait for a publish sent before NATS came back: the same batch goes again at once', async () => {
    const c = controlled();
    const p = publisher(c.publish);
    let calls = 0;
    p.trySubmit(tick(A, 1), (e) => {
      assert.equal(e, undefined);
      calls++;
    });
    await c.until(1); // in flight, never answered (lost with the old server)
    p.retryNow();
    await c.until(2);
    assert.equal(c.calls[1]!.msgId, c.calls[0]!.msgId, 'same message id: JetStream dedupes if both land');
    c.ack(1);
    await p.idle();
    c.ack(0, true); // the first answer arriving late changes nothing
    await settle();
    assert.equal(calls, 1, 'the tick is reported stored once');
    await p.close(100);
  });

  it('cuts batches at a producer change or a non-increasing seq', async () => {
    const c = controlled();
    const p = publisher(c.publish, { maxBatchTicks: 10, queueTicks: 20 });
    p.trySubmit(tick(A, 1, 'x'));
    await c.until(1);
    // queued while 1 is in flight: x:2, x:3, y:1, y:2, x:2 (a resend on another stream), x:3
    for (const [seq, id] of [
      [2, 'x'],
      [3, 'x'],
      [1, 'y'],
      [2, 'y'],
      [2, 'x'],
      [3, 'x'],
    ] as const)
      p.trySubmit(tick(A2, seq, id));
    for (let i = 0; i < 3; i++) {
      c.ack(i);
      await c.until(i + 2);
    }
    c.ack(3);
    await p.idle();
    assert.deepEqual(
      c.calls.map((k) => k.msgId.replace(/\/\d+\//, '/P/')),
      ['x/P/1/1', 'x/P/2/3', 'y/P/1/2', 'x/P/2/3'],
    );
    await p.close(100);
  });

  it('pushes back when a partition queue is full and makes room as batches are stored', async () => {
    const c = controlled();
    const p = publisher(c.publish, { queueTicks: 4, maxBatchTicks: 2 });
    for (let s = 1; s <= 4; s++) assert.equal(p.trySubmit(tick(A, s)), true);
    assert.equal(p.trySubmit(tick(A, 5)), false, 'full: in-flight ticks count');
    assert.equal(p.trySubmit(tick(B, 5)), true, 'another partition still has room');
    assert.equal(p.queued, 5);
    let roomed = false;
    const wait = p.waitForSpace(A).then(() => (roomed = true));
    await c.until(2);
    await settle();
    assert.equal(roomed, false);
    c.ack(c.calls.findIndex((k) => k.subject === `ticks.${partitionOf(A, 4)}`));
    await wait;
    assert.equal(p.trySubmit(tick(A, 5)), true);
    // an aborted wait rejects and leaves nothing behind
    p.trySubmit(tick(A, 6));
    const ac = new AbortController();
    const aborted = p.waitForSpace(A, ac.signal);
    ac.abort();
    await assert.rejects(aborted);
    await p.close(20);
  });

  it('close() drains what it can, then fails the rest with UNAVAILABLE and refuses new ticks', async () => {
    const c = controlled();
    const p = publisher(c.publish);
    const errors: Array<Error | undefined> = [];
    p.trySubmit(tick(A, 1), (e) => errors.push(e));
    p.trySubmit(tick(A, 2), (e) => errors.push(e));
    await c.until(1);
    c.calls[0]!.reject(new Error('down'));
    await p.close(50);
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e instanceof UnavailableError));
    assert.throws(() => p.trySubmit(tick(A, 3)), UnavailableError);
    await assert.rejects(p.waitForSpace(A), UnavailableError);
  });
});
