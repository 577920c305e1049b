import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamQuotesResponse_Kind as Kind, type StreamQuotesResponse } from '@tickmesh/kit/proto';
import type { Quote } from '@tickmesh/kit/proto';
import { createLogger } from '@tickmesh/kit';
import { waitUntil } from '@tickmesh/harness';
import { QuoteMirror, type QuoteUpdate } from '../src/quote-mirror.js';
import { UpstreamFeed, type UpstreamFeedOptions, type UpstreamSource } from '../src/upstream-feed.js';
import { quote } from './support/quotes.js';

class FakeStream {
  cancelled = false;
  constructor(private readonly h: { message(m: StreamQuotesResponse): void; end(reason: string): void }) {}
  send(
    kind: Kind,
    quotes: Quote[] = [],
    epoch = quotes[0]?.epoch ?? 1,
    heartbeatIntervalMs = 1000,
    snapshotComplete = false,
  ): void {
    if (!this.cancelled)
      this.h.message({
        kind,
        quotes,
        epoch,
        heartbeatIntervalMs,
        serverTimeMs: Date.now(),
        snapshotComplete,
      });
  }
  /** A snapshot, completed by the next message (as a server's heartbeat or update would). */
  snapshot(quotes: Quote[], epoch = quotes[0]?.epoch ?? 1): void {
    this.send(Kind.KIND_SNAPSHOT, quotes, epoch);
    this.send(Kind.KIND_HEARTBEAT, [], epoch);
  }
  end(reason = 'UNAVAILABLE'): void {
    this.h.end(reason);
  }
}

class FakeSource implements UpstreamSource {
  streams: FakeStream[] = [];
  leaveReady: (() => void) | undefined;
  open(handlers: { message(m: StreamQuotesResponse): void; end(reason: string): void }) {
    const s = new FakeStream(handlers);
    this.streams.push(s);
    return { cancel: () => (s.cancelled = true) };
  }
  watchConnectivity(cb: () => void) {
    this.leaveReady = cb;
    return () => (this.leaveReady = undefined);
  }
  get last(): FakeStream {
    return this.streams[this.streams.length - 1]!;
  }
}

function setup(opts: Partial<UpstreamFeedOptions> = {}) {
  const source = new FakeSource();
  const mirror = new QuoteMirror(100);
  const events: string[] = [];
  const updates: QuoteUpdate[] = [];
  const feed = new UpstreamFeed(
    source,
    mirror,
    {
      onUpdates: (u) => {
        updates.push(...u);
        events.push(`updates:${u.map((x) => `${x.symbol}${x.seq}${x.conflated ? '*' : ''}`).join(',')}`);
      },
      onResync: (r) => events.push(`resync:${r}`),
      onDown: () => events.push('down'),
    },
    {
      connectTimeoutMs: 2000,
      heartbeatTimeoutFactor: 3,
      defaultHeartbeatMs: 1000,
      rotateIntervalMs: 0,
      overlapMaxMs: 2000,
      backoffInitialMs: 1,
      backoffMaxMs: 5,
      logger: createLogger('feed-test', 'silent'),
      random: () => 0,
      ...opts,
    },
  );
  return { source, mirror, feed, events, updates };
}

void test('first snapshot makes the feed live and re-snapshots clients; updates follow, repeats dropped', () => {
  const { source, feed, events, mirror } = setup();
  feed.start();
  assert.equal(feed.isLive, false);
  const s = source.last;
  s.send(Kind.KIND_HEARTBEAT);
  s.snapshot([quote('A', 3), quote('B', 1)]);
  assert.equal(feed.isLive, true);
  s.send(Kind.KIND_UPDATE, [quote('A', 4)]);
  s.send(Kind.KIND_UPDATE, [quote('A', 4), quote('A', 3), quote('B', 2)]);
  assert.deepEqual(events, ['resync:upstream', 'updates:A4', 'updates:B2']);
  assert.equal(mirror.get('A')?.seq, 4);
  feed.stop();
});

void test('a break tells clients at once, reconnects with backoff and re-snapshots', async () => {
  const { source, feed, events } = setup();
  feed.start();
  source.last.snapshot([quote('A', 1)]);
  source.last.end('UNAVAILABLE: connection reset');
  assert.equal(feed.isLive, false);
  assert.deepEqual(events, ['resync:upstream', 'down']);
  await waitUntil(() => source.streams.length === 2, { timeoutMs: 2000, intervalMs: 25, what: 'reconnect' });
  source.last.end('UNAVAILABLE: refused'); // still down: no second notice, another attempt
  await waitUntil(() => source.streams.length === 3, {
    timeoutMs: 2000,
    intervalMs: 25,
    what: 'second reconnect',
  });
  source.last.snapshot([quote('A', 7)]);
  assert.deepEqual(events, ['resync:upstream', 'down', 'resync:upstream']);
  assert.equal(feed.isLive, true);
  feed.stop();
});

void test('RESET then snapshot, or a quote of a new epoch, re-snapshots with reason epoch', () => {
  const { source, feed, events, mirror } = setup();
  feed.start();
  const s = source.last;
  s.snapshot([quote('A', 10)]);
  s.send(Kind.KIND_RESET, [], 2);
  s.send(Kind.KIND_UPDATE, [quote('A', 11)]); // between RESET and snapshot: ignored
  s.snapshot([quote('A', 1, { epoch: 2 })], 2);
  assert.deepEqual(events, ['resync:upstream', 'resync:epoch']);
  assert.equal(mirror.epoch, 2);
  // Now a new epoch without RESET: a fresh stream is opened for its snapshot.
  s.send(Kind.KIND_UPDATE, [quote('A', 1, { epoch: 3 })], 3);
  assert.equal(source.streams.length, 2);
  assert.equal(events.length, 2, 'nothing sent to clients from the mismatching stream');
  source.last.snapshot([quote('A', 2, { epoch: 3 })], 3);
  assert.deepEqual(events, ['resync:upstream', 'resync:epoch', 'resync:epoch']);
  assert.equal(s.cancelled, true, 'the old stream is cancelled');
  feed.stop();
});

void test('make-before-break: the new stream takes over once the old one caught up; no gap, no repeat', () => {
  const { source, feed, events, updates } = setup();
  feed.start();
  const old = source.last;
  old.snapshot([quote('A', 1), quote('B', 1)]);
  source.leaveReady!(); // GOAWAY seen: replace the stream
  assert.equal(source.streams.length, 2);
  const neu = source.last;
  old.send(Kind.KIND_UPDATE, [quote('A', 2)]);
  neu.snapshot([quote('A', 3), quote('B', 1)]); // the new stream is ahead for A
  neu.send(Kind.KIND_UPDATE, [quote('A', 4)]); // buffered until the switch
  old.send(Kind.KIND_UPDATE, [quote('A', 3)]); // old catches up -> switch, replay
  assert.equal(old.cancelled, true);
  old.send(Kind.KIND_UPDATE, [quote('A', 4)]); // cancelled: ignored anyway
  neu.send(Kind.KIND_UPDATE, [quote('A', 5), quote('B', 2)]);
  assert.deepEqual(
    updates.map((u) => `${u.symbol}${u.seq}${u.conflated ? '*' : ''}`),
    ['A2', 'A3', 'A4', 'A5', 'B2'],
  );
  assert.ok(!events.includes('down') && events.filter((e) => e.startsWith('resync')).length === 1);
  assert.equal(feed.isLive, true);
  feed.stop();
});

void test('the old stream ending before the new snapshot does not alarm clients if the new one comes soon', () => {
  const { source, feed, events, updates } = setup({ switchGraceMs: 1000 });
  feed.start();
  const old = source.last;
  old.snapshot([quote('A', 1)]);
  feed.rotate('interval');
  const neu = source.last;
  old.end('UNAVAILABLE: GOAWAY grace over');
  neu.snapshot([quote('A', 3)]);
  assert.deepEqual(events, ['resync:upstream', 'updates:A3*']);
  assert.equal(updates[0]!.conflated, true, 'the skipped seq is not silent');
  feed.stop();
});

void test('a replacement that never delivers: clients are told, and the feed reconnects', async () => {
  const { source, feed, events } = setup({ switchGraceMs: 50, connectTimeoutMs: 200 });
  feed.start();
  const old = source.last;
  old.snapshot([quote('A', 1)]);
  feed.rotate('interval');
  old.end('UNAVAILABLE');
  await waitUntil(() => events.includes('down'), { timeoutMs: 2000, intervalMs: 25, what: 'down notice' });
  await waitUntil(() => source.streams.length >= 3, {
    timeoutMs: 3000,
    intervalMs: 25,
    what: 'reconnect after the connect timeout',
  });
  source.last.snapshot([quote('A', 2)]);
  assert.deepEqual(events, ['resync:upstream', 'down', 'resync:upstream']);
  feed.stop();
});

void test('a silent stream (no heartbeat for 3 intervals) is treated as broken', async () => {
  const { source, feed, events } = setup({ defaultHeartbeatMs: 100 });
  feed.start();
  source.last.send(Kind.KIND_SNAPSHOT, [quote('A', 1)], 1, 60); // advertises 60 ms heartbeats
  await waitUntil(() => events.includes('down'), {
    timeoutMs: 3000,
    intervalMs: 25,
    what: 'silence detected',
  });
  assert.equal(source.streams[0]!.cancelled, true);
  feed.stop();
});

void test('periodic rotation replaces the stream without telling clients', async () => {
  const { source, feed, events } = setup({ rotateIntervalMs: 50 });
  feed.start();
  source.last.snapshot([quote('A', 1)]);
  await waitUntil(() => source.streams.length === 2, { timeoutMs: 2000, intervalMs: 25, what: 'rotation' });
  source.last.snapshot([quote('A', 1)]); // nothing newer: switch at once
  assert.equal(source.streams[0]!.cancelled, true);
  assert.deepEqual(events, ['resync:upstream']);
  feed.stop();
});

void test('a snapshot split over several messages is assembled before clients are re-snapshotted', async () => {
  const { source, feed, events, mirror } = setup({ snapshotSettleMs: 30 });
  feed.start();
  const s = source.last;
  s.send(Kind.KIND_SNAPSHOT, [quote('A', 1), quote('B', 1)]);
  s.send(Kind.KIND_SNAPSHOT, [quote('C', 1)]);
  assert.deepEqual(events, [], 'not before the snapshot is complete');
  s.send(Kind.KIND_UPDATE, [quote('C', 2)]);
  assert.deepEqual(events, ['resync:upstream', 'updates:C2']);
  assert.equal(mirror.size, 3);
  // After a RESET, with nothing following the snapshot parts: complete after the settle time.
  s.send(Kind.KIND_RESET, [], 2);
  s.send(Kind.KIND_SNAPSHOT, [quote('A', 1, { epoch: 2 })], 2);
  s.send(Kind.KIND_SNAPSHOT, [quote('B', 1, { epoch: 2 })], 2);
  await waitUntil(() => events.length === 3, { timeoutMs: 2000, intervalMs: 25, what: 'settled snapshot' });
  assert.equal(events[2], 'resync:epoch');
  assert.deepEqual([mirror.epoch, mirror.size], [2, 2]);
  feed.stop();
});

void test('a snapshot whose last part is marked complete is applied at once, without waiting to settle', () => {
  const { source, feed, events, mirror } = setup({ snapshotSettleMs: 60_000 });
  feed.start();
  const s = source.last;
  s.send(Kind.KIND_SNAPSHOT, [quote('A', 1), quote('B', 1)]);
  assert.deepEqual(events, [], 'a part not marked complete waits for the rest');
  s.send(Kind.KIND_SNAPSHOT, [quote('C', 1)], 1, 1000, true);
  assert.deepEqual(events, ['resync:upstream'], 'complete on the marked part, synchronously');
  assert.equal(mirror.size, 3);
  assert.equal(feed.isLive, true);
  feed.stop();
});
