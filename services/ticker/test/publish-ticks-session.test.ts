// The PublishTicks protocol without a network: a real TickPublisher over a
// publish function the test controls, a sink that records what the server
// would send, and a request stream the test feeds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PublishTicksRequest, PublishTicksResponse, Tick } from '@tickmesh/kit/proto';
import {
  UnavailableError,
  MalformedMessage,
  type StreamSink,
  loadUniverse,
  decodeBatch,
} from '@tickmesh/kit';
import { waitUntil } from '@tickmesh/harness';
import { PublishTicksSession, type SessionOptions } from '../src/publish-ticks-session.js';
import { TickPublisher, type StoreResult } from '../src/tick-publisher.js';

const universe = loadUniverse('bist30');

/** A request stream the test writes into; counts how many messages the server pulled. */
class Feed implements AsyncIterable<PublishTicksRequest | MalformedMessage> {
  private items: Array<PublishTicksRequest | MalformedMessage> = [];
  private ended = false;
  private wake: (() => void) | undefined;
  pulled = 0;
  push(...m: Array<PublishTicksRequest | MalformedMessage>) {
    this.items.push(...m);
    this.wake?.();
  }
  end() {
    this.ended = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      if (this.items.length > 0) {
        this.pulled++;
        yield this.items.shift()!;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

function sink() {
  const out: PublishTicksResponse[] = [];
  const abort = new AbortController();
  const s: StreamSink<PublishTicksResponse> & { out: PublishTicksResponse[]; abort: AbortController } = {
    out,
    abort,
    signal: abort.signal,
    write: (m) => {
      out.push(m);
      return true;
    },
    drained: () => Promise.resolve(),
  };
  return s;
}

function tick(seq: number, over: Partial<Tick> = {}): Tick {
  return {
    symbol: 'THYAO',
    price: 285.5,
    size: 10,
    producerId: 'prod-1',
    producerSeq: seq,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
    ...over,
  };
}

function setup(
  over: Partial<SessionOptions> = {},
  publish?: (s: string, d: Uint8Array, id: string) => Promise<StoreResult>,
) {
  const stored: Tick[] = [];
  let seq = 0;
  const publisher = new TickPublisher({
    partitions: 8,
    maxBatchTicks: 100,
    queueTicks: 1000,
    retryMinMs: 1,
    retryMaxMs: 10,
    publish:
      publish ??
      (async (_s, data) => {
        stored.push(...decodeBatch(data));
        return { streamSeq: ++seq, duplicate: false };
      }),
  });
  const opts: SessionOptions = {
    publisher,
    rules: { universe, openMode: false, maxFutureMs: 60_000 },
    isAvailable: () => true,
    maxInFlight: 1000,
    ackIntervalMs: 1,
    unavailableAfterMs: 10_000,
    watchdogIntervalMs: 10,
    ...over,
  };
  return { publisher, stored, opts };
}

const acks = (out: PublishTicksResponse[]) => out.filter((m) => m.ack).map((m) => m.ack!.storedThroughSeq);
const rejections = (out: PublishTicksResponse[]) => out.filter((m) => m.rejection).map((m) => m.rejection!);

describe('PublishTicksSession', () => {
  it('stores exactly the good ticks of a mixed stream, rejects the rest by seq and field, and acks through the end', async () => {
    const { publisher, stored, opts } = setup();
    const s = sink();
    const feed = new Feed();
    feed.push(
      { tick: tick(1), ticks: [] },
      { tick: undefined, ticks: [tick(2, { price: -1 }), tick(3), tick(4, { symbol: 'NOPE' })] },
      { tick: tick(5, { size: -1 }), ticks: [tick(6, { bid: 286, ask: 285 }), tick(7)] },
      { tick: tick(7), ticks: [] }, // repeated seq on the same stream
      { tick: tick(8, { producerId: 'someone-else' }), ticks: [] },
      new MalformedMessage('bad wire bytes'),
      { tick: undefined, ticks: [] },
      { tick: tick(9, { eventTimeMs: Date.now() + 3_600_000 }), ticks: [] },
    );
    feed.end();
    await new PublishTicksSession(opts, s).run(feed);
    assert.deepEqual(
      stored.map((t) => t.producerSeq),
      [1, 3, 7],
    );
    const r = rejections(s.out);
    assert.deepEqual(
      r.map((x) => [x.producerSeq, x.field]),
      [
        [2, 'tick.price'],
        [4, 'tick.symbol'],
        [5, 'tick.size'],
        [6, 'tick.bid'],
        [7, 'tick.producer_seq'],
        [8, 'tick.producer_id'],
        [0, 'request'],
        [0, 'tick'],
        [9, 'tick.event_time_ms'],
      ],
    );
    assert.match(r[4]!.reason, /not increasing/);
    assert.equal(acks(s.out).at(-1), 9, 'the last rejection is covered by the final ack');
    // each rejection is written before the first ack that covers it
    s.out.forEach((m, i) => {
      if (!m.rejection || m.rejection.producerSeq === 0) return;
      const firstCover = s.out.findIndex((x) => x.ack && x.ack.storedThroughSeq >= m.rejection!.producerSeq);
      assert.ok(firstCover > i, `rejection ${m.rejection.producerSeq} came after its ack`);
    });
    const lastAck = s.out.filter((m) => m.ack).at(-1)!.ack!;
    assert.equal(lastAck.producerId, 'prod-1');
    await publisher.close(100);
  });

  it('never acks past a tick that is not stored yet, and stops reading at its in-flight bound', async () => {
    const pending: Array<() => void> = [];
    let seq = 0;
    const { publisher, opts } = setup(
      { maxInFlight: 5 },
      () =>
        new Promise<StoreResult>((resolve) =>
          pending.push(() => resolve({ streamSeq: ++seq, duplicate: false })),
        ),
    );
    const s = sink();
    const feed = new Feed();
    for (let i = 1; i <= 20; i++) feed.push({ tick: tick(i), ticks: [] });
    feed.end();
    const run = new PublishTicksSession(opts, s).run(feed);
    await waitUntil(() => pending.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'first publish' });
    await sleep(50);
    assert.ok(feed.pulled <= 6, `read ${feed.pulled} messages with 5 allowed in flight`);
    assert.deepEqual(acks(s.out), [], 'nothing stored, nothing acked');
    while (acks(s.out).at(-1) !== 20) {
      pending.shift()?.();
      await sleep(5);
    }
    await run;
    const a = acks(s.out);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      a,
      'acks only grow',
    );
    await publisher.close(100);
  });

  it('refuses to start while NATS is unavailable, and ends with UNAVAILABLE when it stays down', async () => {
    let up = false;
    const { publisher, opts } = setup({ isAvailable: () => up, unavailableAfterMs: 100 });
    await assert.rejects(new PublishTicksSession(opts, sink()).run(new Feed()), UnavailableError);
    up = true;
    const feed = new Feed();
    const run = new PublishTicksSession(opts, sink()).run(feed);
    feed.push({ tick: tick(1), ticks: [] });
    await sleep(30);
    up = false;
    await assert.rejects(
      run,
      (err: unknown) => err instanceof UnavailableError && /unavailable/i.test(err.message),
    );
    await publisher.close(100);
  });

  it('ends with UNAVAILABLE when the ack is held back for too long while other ticks get stored', async () => {
    let seq = 0;
    const { publisher, opts } = setup({ unavailableAfterMs: 150 }, (_s, _d, msgId) =>
      // The batch holding seq 1 never completes; every other batch is stored at once.
      msgId.endsWith('/1/1')
        ? new Promise<StoreResult>(() => undefined)
        : Promise.resolve({ streamSeq: ++seq, duplicate: false }),
    );
    const stuck = 'THYAO';
    const other = universe.instruments
      .map((i) => i.symbol)
      .find((s) => publisher.partitionOf(s) !== publisher.partitionOf(stuck))!;
    const feed = new Feed();
    const out = sink();
    const run = new PublishTicksSession(opts, out).run(feed);
    feed.push({ tick: tick(1, { symbol: stuck }), ticks: [] });
    let n = 2;
    const timer = setInterval(() => feed.push({ tick: tick(n++, { symbol: other }), ticks: [] }), 10);
    try {
      await assert.rejects(
        run,
        (err: unknown) => err instanceof UnavailableError && /no tick acknowledged/.test(err.message),
      );
    } finally {
      clearInterval(timer);
    }
    assert.ok(seq > 5, `the other ticks were stored meanwhile (${seq} batches)`);
    assert.deepEqual(acks(out.out), [], 'nothing acknowledged past the held tick');
    await publisher.close(10);
  });

  it('ends with UNAVAILABLE when nothing gets stored for too long', async () => {
    const { publisher, opts } = setup(
      { unavailableAfterMs: 100 },
      () => new Promise<StoreResult>(() => undefined),
    );
    const feed = new Feed();
    const run = new PublishTicksSession(opts, sink()).run(feed);
    feed.push({ tick: tick(1), ticks: [] });
    await assert.rejects(
      run,
      (err: unknown) => err instanceof UnavailableError && /no tick acknowledged/.test(err.message),
    );
    await publisher.close(10);
  });
});
