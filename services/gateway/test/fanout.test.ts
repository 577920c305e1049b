import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { Fanout, OutFrame, type ClientTransport, type FanoutMetrics } from '../src/fanout.js';
import { QuoteMirror, type QuoteUpdate } from '../src/quote-mirror.js';
import { appliedUpdates, quote } from './support/quotes.js';

class FakeTransport implements ClientTransport {
  frames: OutFrame[] = [];
  bufferedAmount = 0;
  readLagMs = 0;
  isOpen = true;
  closedWith: { code: number; reason: string } | undefined;
  send(frame: OutFrame): void {
    this.frames.push(frame);
  }
  close(code: number, reason: string): void {
    this.isOpen = false;
    this.closedWith = { code, reason };
  }
  messages(): Array<Record<string, unknown>> {
    return this.frames.map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>);
  }
  take(): Array<Record<string, unknown>> {
    const m = this.messages();
    this.frames = [];
    return m;
  }
}

function counters() {
  const c = { frames: 0, quotes: 0, conflated: 0, slow: [] as string[], flushes: 0 };
  const metrics: FanoutMetrics = {
    sent: (f, q) => {
      c.frames += f;
      c.quotes += q;
    },
    conflated: (n) => (c.conflated += n),
    slowClientClosed: (r) => c.slow.push(r),
    flushed: () => c.flushes++,
    tickToSend: () => undefined,
  };
  return { c, metrics };
}

function setup(opts: Partial<ConstructorParameters<typeof Fanout>[1]> = {}) {
  const mirror = new QuoteMirror(1000);
  mirror.replaceAll(
    ['A', 'B', 'C'].map((s) => quote(s, 1)),
    1,
  );
  const { c, metrics } = counters();
  let now = 1_000_000;
  const fanout = new Fanout(mirror, {
    highWaterBytes: 1000,
    maxBufferBytes: 10_000,
    slowClientTimeoutMs: 5000,
    maxReadLagMs: 1000,
    windowFactor: 1,
    maxWindowMs: 25,
    maxPending: 10_000,
    metrics,
    now: () => now,
    ...opts,
  });
  const tick = (symbol: string): QuoteUpdate =>
    appliedUpdates(mirror, quote(symbol, mirror.get(symbol)!.seq + 1))[0]!;
  return { mirror, fanout, c, tick, advance: (ms: number) => (now += ms) };
}

void test('clients with the same subscription share one frame object per flush', () => {
  const { fanout, tick, c } = setup();
  const t1 = new FakeTransport();
  const t2 = new FakeTransport();
  const t3 = new FakeTransport();
  const c1 = fanout.addClient(t1);
  const c2 = fanout.addClient(t2);
  const c3 = fanout.addClient(t3);
  fanout.subscribe(c1, ['B', 'A'], false);
  fanout.subscribe(c2, ['A', 'B'], false);
  fanout.subscribe(c3, ['C'], false);
  assert.equal(fanout.groupCount, 2);
  for (const t of [t1, t2, t3]) assert.equal(t.take()[0]!.type, 'snapshot');
  fanout.publish([tick('A'), tick('C'), tick('B')]);
  fanout.flushNow();
  assert.equal(t1.frames.length, 1);
  assert.strictEqual(t1.frames[0], t2.frames[0], 'the very same bytes go to both');
  assert.deepEqual(
    (t1.messages()[0]!.quotes as Array<{ symbol: string }>).map((q) => q.symbol),
    ['A', 'B'],
  );
  assert.deepEqual(
    (t3.messages()[0]!.quotes as Array<{ symbol: string }>).map((q) => q.symbol),
    ['C'],
  );
  assert.equal(c.frames, 3);
  assert.equal(c.quotes, 5);
});

void test('"*" gets everything; every update of a batch is delivered in order, none merged', () => {
  const { fanout, tick } = setup();
  const t = new FakeTransport();
  const cl = fanout.addClient(t);
  fanout.subscribe(cl, [], true);
  const snap = t.take()[0]!;
  assert.equal((snap.quotes as unknown[]).length, 3);
  const updates: QuoteUpdate[] = [];
  for (let i = 0; i < 50; i++) updates.push(tick(i % 2 ? 'A' : 'B'));
  fanout.publish(updates.slice(0, 20));
  fanout.publish(updates.slice(20));
  fanout.flushNow();
  const frames = t.take();
  assert.equal(frames.length, 1, 'one frame for the whole batch');
  const got = (frames[0]!.quotes as Array<{ symbol: string; seq: number }>).map((q) => `${q.symbol}${q.seq}`);
  assert.deepEqual(
    got,
    updates.map((u) => `${u.symbol}${u.seq}`),
  );
});

void test('a snapshot is followed only by newer updates (pending older ones are not re-sent)', () => {
  const { fanout, tick } = setup();
  const old = new FakeTransport();
  const o = fanout.addClient(old);
  fanout.subscribe(o, ['A'], false);
  const u2 = tick('A'); // pending, not yet flushed
  fanout.publish([u2]);
  const late = new FakeTransport();
  const l = fanout.addClient(late);
  fanout.subscribe(l, ['A'], false); // snapshot has A@2
  const snap = late.take()[0]!;
  assert.equal((snap.quotes as Array<{ seq: number }>)[0]!.seq, 2);
  const u3 = tick('A');
  fanout.publish([u3]);
  fanout.flushNow();
  assert.deepEqual(
    (late.take()[0]!.quotes as Array<{ seq: number }>).map((q) => q.seq),
    [3],
  );
  assert.deepEqual(
    (old.take().slice(1)[0]!.quotes as Array<{ seq: number }>).map((q) => q.seq),
    [2, 3],
  );
});

for (const widenedFirst of [false, true]) {
  void test(`a widened subscription filters what its snapshot covered without changing its group's shared frame (${widenedFirst ? 'served first' : 'served second'})`, () => {
    const { fanout, tick } = setup();
    const steady = new FakeTransport();
    const widened = new FakeTransport();
    // Clients are served in the order they were added.
    const first = fanout.addClient(widenedFirst ? widened : steady);
    const second = fanout.addClient(widenedFirst ? steady : widened);
    const [w, s] = widenedFirst ? [first, second] : [second, first];
    fanout.subscribe(s, ['A', 'B'], false);
    fanout.subscribe(w, ['A'], false);
    fanout.flushNow();
    steady.take();
    widened.take();
    fanout.publish([tick('B')]); // B@2, logged
    fanout.subscribe(w, ['B'], false); // now in the {A,B} group, its snapshot has B@2
    assert.equal((widened.take()[0]!.quotes as Array<{ seq: number }>)[0]!.seq, 2);
    fanout.publish([tick('A')]); // A@2
    fanout.flushNow();
    const seqs = (t: FakeTransport) =>
      t
        .take()
        .flatMap((m) =>
          (m.quotes as Array<{ symbol: string; seq: number }>).map((q) => `${q.symbol}@${q.seq}`),
        );
    assert.deepEqual(seqs(steady), ['B@2', 'A@2'], 'the steady member gets both');
    assert.deepEqual(seqs(widened), ['A@2'], 'B@2 came in its snapshot');
  });
}

void test('unsubscribe stops updates; unknown symbols are listed as missing', () => {
  const { fanout, tick } = setup();
  const t = new FakeTransport();
  const cl = fanout.addClient(t);
  fanout.subscribe(cl, ['A', 'ZZZ'], false);
  assert.deepEqual(t.take()[0]!.missing, ['ZZZ']);
  fanout.unsubscribe(cl, ['A'], false);
  fanout.publish([tick('A')]);
  fanout.flushNow();
  assert.equal(t.frames.length, 0);
  fanout.unsubscribe(cl, ['ZZZ'], false);
  assert.equal(fanout.groupCount, 0);
});

void test('a client behind its high-water mark gets conflated updates, then a catch-up frame', () => {
  const { fanout, tick, c } = setup();
  const slow = new FakeTransport();
  const fast = new FakeTransport();
  const s = fanout.addClient(slow);
  const f = fanout.addClient(fast);
  fanout.subscribe(s, [], true);
  fanout.subscribe(f, [], true);
  slow.take();
  fast.take();
  slow.bufferedAmount = 5000; // above 1000
  for (let i = 0; i < 5; i++) {
    fanout.publish([tick('A'), tick('B')]);
    fanout.flushNow();
  }
  assert.equal(fast.take().length, 5, 'the fast client is not held back');
  assert.equal(slow.frames.length, 0);
  assert.equal(fanout.laggingCount, 1);
  assert.equal(c.conflated, 8, '4 of the 5 updates of A and of B were replaced');
  slow.bufferedAmount = 100; // drained below half the mark
  fanout.sweep();
  const [catchUp] = slow.take();
  const qs = catchUp!.quotes as Array<{ symbol: string; seq: number; conflated?: boolean }>;
  assert.deepEqual(
    qs.map((q) => [q.symbol, q.seq, q.conflated]),
    [
      ['A', 6, true],
      ['B', 6, true],
    ],
  );
  assert.equal(fanout.laggingCount, 0);
  fanout.publish([tick('C')]);
  fanout.flushNow();
  assert.equal((slow.take()[0]!.quotes as unknown[]).length, 1, 'back to normal frames');
});

void test('a client reading too far behind (kernel buffers full, user space empty) is conflated until its probe is answered', () => {
  const { fanout, tick, c, advance } = setup();
  const lagging = new FakeTransport();
  const fast = new FakeTransport();
  const l = fanout.addClient(lagging);
  fanout.subscribe(l, ['A', 'B'], false);
  fanout.subscribe(fanout.addClient(fast), ['A', 'B'], false);
  lagging.take();
  fast.take();
  lagging.readLagMs = 900; // behind, but within the 1000 ms bound: frames still flow
  fanout.publish([tick('A')]);
  fanout.flushNow();
  assert.equal(lagging.take().length, 1);
  fast.take();
  lagging.readLagMs = 1500; // past the bound; bufferedAmount stays 0
  for (let i = 0; i < 3; i++) {
    fanout.publish([tick('A'), tick('B')]);
    fanout.flushNow();
  }
  assert.equal(fast.take().length, 3, 'the other client is not held back');
  assert.equal(lagging.frames.length, 0, 'nothing more is piled onto a client that reads behind');
  assert.equal(fanout.laggingCount, 1);
  assert.equal(c.conflated, 4);
  lagging.readLagMs = 600; // the probe is still unanswered and older than half the bound
  fanout.sweep();
  assert.equal(lagging.frames.length, 0, 'no catch-up until the lag falls below half the bound');
  lagging.readLagMs = 0; // pong arrived
  fanout.sweep();
  const [catchUp] = lagging.take();
  assert.deepEqual(
    (catchUp!.quotes as Array<{ symbol: string; seq: number; conflated?: boolean }>).map((q) => [
      q.symbol,
      q.seq,
      q.conflated,
    ]),
    [
      ['A', 5, true],
      ['B', 4, true],
    ],
  );
  // A client that never answers is closed after the slow-client timeout.
  lagging.readLagMs = 5000;
  fanout.publish([tick('A')]);
  fanout.flushNow();
  advance(5001);
  fanout.sweep();
  assert.deepEqual(lagging.closedWith, { code: 4008, reason: 'too slow' });
  assert.deepEqual(c.slow, ['timeout']);
});

void test('read-lag conflation is off with maxReadLagMs 0', () => {
  const { fanout, tick } = setup({ maxReadLagMs: 0 });
  const t = new FakeTransport();
  fanout.subscribe(fanout.addClient(t), ['A'], false);
  t.take();
  t.readLagMs = 60_000;
  fanout.publish([tick('A')]);
  fanout.flushNow();
  assert.equal(t.take().length, 1);
});

void test('a client that stays behind is closed with 4008; one past the hard cap at once', () => {
  const { fanout, tick, c, advance } = setup();
  const slow = new FakeTransport();
  const s = fanout.addClient(slow);
  fanout.subscribe(s, ['A'], false);
  slow.bufferedAmount = 5000;
  fanout.publish([tick('A')]);
  fanout.flushNow();
  advance(4000);
  fanout.sweep();
  assert.equal(slow.closedWith, undefined, 'still within the slow-client timeout');
  advance(2000);
  fanout.sweep();
  assert.deepEqual(slow.closedWith, { code: 4008, reason: 'too slow' });
  assert.deepEqual(c.slow, ['timeout']);

  const huge = new FakeTransport();
  const h = fanout.addClient(huge);
  fanout.subscribe(h, ['B'], false);
  huge.bufferedAmount = 20_000;
  fanout.publish([tick('B')]);
  fanout.flushNow();
  assert.equal(huge.closedWith?.code, 4008);
  assert.deepEqual(c.slow, ['timeout', 'buffer']);
  assert.equal(fanout.clientCount, 0);
});

void test('resync: pending updates dropped, resnapshot + snapshot to every subscribed client, owed to a slow one', () => {
  const { fanout, tick, mirror } = setup();
  const a = new FakeTransport();
  const b = new FakeTransport();
  const idle = new FakeTransport();
  const slow = new FakeTransport();
  const ca = fanout.addClient(a);
  const cb = fanout.addClient(b);
  fanout.addClient(idle);
  const cs = fanout.addClient(slow);
  fanout.subscribe(ca, ['A'], false);
  fanout.subscribe(cb, [], true);
  fanout.subscribe(cs, ['A'], false);
  for (const t of [a, b, slow]) t.take();
  slow.bufferedAmount = 5000;
  fanout.publish([tick('A')]);
  fanout.flushNow();
  fanout.publish([tick('A')]);
  mirror.replaceAll([quote('A', 1, { epoch: 2 })], 2);
  fanout.resync('epoch');
  fanout.flushNow();
  const ma = a.take();
  assert.deepEqual(
    ma.map((m) => m.type),
    ['quotes', 'resnapshot', 'snapshot'],
  );
  assert.equal(ma[1]!.reason, 'epoch');
  assert.equal(ma[1]!.epoch, 2);
  assert.deepEqual(
    (ma[2]!.quotes as Array<{ epoch: number }>).map((q) => q.epoch),
    [2],
  );
  assert.deepEqual(
    b
      .take()
      .slice(-2)
      .map((m) => m.type),
    ['resnapshot', 'snapshot'],
  );
  assert.equal(idle.frames.length, 0, 'no subscription, nothing to re-snapshot');
  assert.equal(slow.frames.length, 0);
  slow.bufferedAmount = 0;
  fanout.sweep();
  assert.deepEqual(
    slow.take().map((m) => m.type),
    ['resnapshot', 'snapshot'],
  );
});

void test('heartbeats go only to idle clients; broadcasts only to subscribed ones', () => {
  const { fanout, advance } = setup();
  const a = new FakeTransport();
  const b = new FakeTransport();
  const ca = fanout.addClient(a);
  fanout.addClient(b);
  advance(1000);
  fanout.subscribe(ca, ['A'], false); // a just got its snapshot
  a.take();
  assert.equal(fanout.heartbeat(500), 1);
  assert.equal(b.take()[0]!.type, 'heartbeat');
  assert.equal(a.frames.length, 0);
  fanout.broadcast('{"type":"notice","code":"upstream_down"}');
  assert.equal(a.take()[0]!.type, 'notice');
  assert.equal(b.frames.length, 0);
});

void test('updates are flushed on their own (no flushNow) at once when idle', async () => {
  const { fanout, tick } = setup();
  const t = new FakeTransport();
  const cl = fanout.addClient(t);
  fanout.subscribe(cl, ['A'], false);
  t.take();
  fanout.publish([tick('A')]);
  assert.equal(t.frames.length, 0, 'not synchronously');
  await new Promise((r) => setImmediate(r));
  await sleep(5);
  assert.equal(t.frames.length, 1);
  fanout.stop();
});

void test('the pending queue is bounded: reaching it flushes at once', () => {
  const { fanout, tick } = setup({ maxPending: 3 });
  const t = new FakeTransport();
  const cl = fanout.addClient(t);
  fanout.subscribe(cl, ['A'], false);
  t.take();
  fanout.publish([tick('A'), tick('A')]);
  assert.equal(fanout.pendingCount, 2);
  fanout.publish([tick('A')]);
  assert.equal(fanout.pendingCount, 0);
  assert.equal(t.frames.length, 1);
  fanout.stop();
});

void test('the batching window follows the CPU time of a flush, not its wall time', () => {
  let cpuMs = 0;
  const { fanout, tick } = setup({ cpuClock: () => cpuMs });
  const slow = new FakeTransport();
  // A send that takes 10 ms on the clock but only 1 ms of CPU, as when the
  // process is preempted mid-flush on a shared machine.
  slow.send = (frame) => {
    slow.frames.push(frame);
    const until = performance.now() + 10;
    while (performance.now() < until) {
      /* descheduled */
    }
    cpuMs += 1;
  };
  fanout.subscribe(fanout.addClient(slow), ['A'], false);
  fanout.publish([tick('A')]);
  fanout.flushNow();
  assert.ok(fanout.windowMs >= 0.99 && fanout.windowMs <= 1.01, `window ${fanout.windowMs} ms, want ~1`);
  fanout.stop();
});

void test('with factor 0 the next flush is not delayed and the CPU clock is never read', () => {
  let reads = 0;
  const { fanout, tick } = setup({
    windowFactor: 0,
    cpuClock: () => {
      reads++;
      return 0;
    },
  });
  const t = new FakeTransport();
  fanout.subscribe(fanout.addClient(t), ['A'], false);
  t.take();
  fanout.publish([tick('A')]);
  fanout.flushNow();
  fanout.publish([tick('A')]);
  fanout.flushNow();
  assert.equal(t.frames.length, 2);
  assert.equal(fanout.windowMs, 0);
  assert.equal(reads, 0);
  fanout.stop();
});

/** One turn of the event loop: a pass in progress serves one more slice. */
const turn = () => new Promise<void>((r) => setImmediate(r));

const seqsOf = (t: FakeTransport) =>
  t.take().map((m) => (m.quotes as Array<{ symbol: string; seq: number }>).map((q) => `${q.symbol}${q.seq}`));

void test('an update that arrives halfway through a pass reaches the clients not yet served in that same pass', async () => {
  const { fanout, tick } = setup({ windowFactor: 0, sliceClients: 1 });
  const ts = [new FakeTransport(), new FakeTransport(), new FakeTransport()];
  for (const t of ts) fanout.subscribe(fanout.addClient(t), [], true);
  for (const t of ts) t.take();
  fanout.publish([tick('A')]); // A2
  await turn(); // the pass starts: client 0 is served
  assert.deepEqual(seqsOf(ts[0]!), [['A2']]);
  assert.equal(ts[1]!.frames.length, 0, 'not yet served');
  fanout.publish([tick('B')]); // B2 arrives mid-pass
  await turn();
  await turn();
  await turn();
  assert.deepEqual(seqsOf(ts[1]!), [['A2', 'B2']], 'served after B2 arrived: both in one frame');
  assert.deepEqual(seqsOf(ts[2]!), [['A2', 'B2']]);
  assert.equal(ts[0]!.frames.length, 0, 'client 0 gets B2 in the next pass');
  for (let i = 0; i < 5; i++) await turn();
  assert.deepEqual(seqsOf(ts[0]!), [['B2']]);
  assert.equal(ts[1]!.frames.length + ts[2]!.frames.length, 0, 'nothing sent twice');
  assert.equal(fanout.pendingCount, 0, 'the log is emptied once every client is past it');
  fanout.stop();
});

void test('members of a group served in the same slice share one frame', async () => {
  const { fanout, tick } = setup({ windowFactor: 0, sliceClients: 2 });
  const ts = [new FakeTransport(), new FakeTransport(), new FakeTransport(), new FakeTransport()];
  for (const t of ts) fanout.subscribe(fanout.addClient(t), ['A'], false);
  for (const t of ts) t.take();
  fanout.publish([tick('A')]);
  for (let i = 0; i < 4; i++) await turn();
  assert.strictEqual(ts[0]!.frames[0], ts[1]!.frames[0]);
  assert.strictEqual(ts[2]!.frames[0], ts[3]!.frames[0]);
  fanout.stop();
});

void test('whatever the interleaving of updates, slices, subscriptions, slow spells and resyncs, each client sees each symbol in order, gap-free unless marked conflated (property)', async () => {
  const symbols = ['A', 'B', 'C'];
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('tick' as const),
      symbol: fc.constantFrom(...symbols),
      n: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({ kind: fc.constant('turn' as const) }),
    fc.record({
      kind: fc.constant('subscribe' as const),
      client: fc.integer({ min: 0, max: 4 }),
      symbols: fc.subarray(symbols, { minLength: 1 }),
      all: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant('unsubscribe' as const),
      client: fc.integer({ min: 0, max: 4 }),
      symbol: fc.constantFrom(...symbols),
    }),
    fc.record({
      kind: fc.constant('slow' as const),
      client: fc.integer({ min: 0, max: 4 }),
      on: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('resync' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { maxLength: 60 }),
      fc.integer({ min: 1, max: 3 }),
      async (ops, sliceClients) => {
        const { fanout, mirror } = setup({ windowFactor: 0, sliceClients });
        let epoch = 1;
        const tick = (symbol: string) =>
          appliedUpdates(mirror, quote(symbol, mirror.get(symbol)!.seq + 1, { epoch }))[0]!;
        const ts = Array.from({ length: 5 }, () => new FakeTransport());
        const cs = ts.map((t) => fanout.addClient(t));
        /** Per client and symbol: the last seq it saw, from a snapshot or an update. */
        const seen = ts.map(() => new Map<string, number>());
        const check = (i: number) => {
          for (const m of ts[i]!.take()) {
            // A resnapshot restarts every symbol from the snapshot that follows.
            if (m.type === 'resnapshot') seen[i]!.clear();
            const quotes =
              (m.quotes as Array<{ symbol: string; seq: number; conflated?: boolean }> | undefined) ?? [];
            for (const q of quotes) {
              const last = seen[i]!.get(q.symbol);
              if (m.type === 'snapshot') {
                assert.ok(last === undefined || q.seq >= last, `client ${i} ${q.symbol}: snapshot went back`);
              } else {
                assert.ok(cs[i]!.covers(q.symbol), `client ${i} got ${q.symbol} unasked`);
                assert.ok(last !== undefined, `client ${i} ${q.symbol}: an update before any snapshot`);
                if (q.conflated)
                  assert.ok(q.seq > last, `client ${i} ${q.symbol}: ${last} then ${q.seq} (conflated)`);
                else assert.equal(q.seq, last + 1, `client ${i} ${q.symbol}: ${last} then ${q.seq}`);
              }
              seen[i]!.set(q.symbol, q.seq);
            }
          }
        };
        for (const o of ops) {
          if (o.kind === 'tick') fanout.publish(Array.from({ length: o.n }, () => tick(o.symbol)));
          else if (o.kind === 'turn') await turn();
          else if (o.kind === 'subscribe') fanout.subscribe(cs[o.client]!, o.symbols, o.all);
          else if (o.kind === 'slow') {
            ts[o.client]!.bufferedAmount = o.on ? 5000 : 0; // above / below the 1,000-byte mark
            if (!o.on) fanout.sweep();
          } else if (o.kind === 'resync') {
            epoch++;
            mirror.replaceAll(
              symbols.map((sym) => quote(sym, 1, { epoch })),
              epoch,
            );
            fanout.resync('epoch');
          } else {
            fanout.unsubscribe(cs[o.client]!, [o.symbol], false);
            // A later subscription starts from its snapshot.
            if (!cs[o.client]!.covers(o.symbol)) seen[o.client]!.delete(o.symbol);
          }
          ts.forEach((_, i) => check(i));
        }
        for (const t of ts) t.bufferedAmount = 0;
        fanout.sweep();
        fanout.flushNow();
        ts.forEach((_, i) => check(i));
        // After the flush every client holds the latest seq of each symbol it covers.
        cs.forEach((c, i) => {
          for (const s of symbols)
            if (c.covers(s)) assert.equal(seen[i]!.get(s), mirror.get(s)!.seq, `client ${i} ${s} up to date`);
        });
        fanout.stop();
      },
    ),
    { numRuns: 300 },
  );
});

void test('a client owed a resnapshot is not sent, after it, the logged updates its snapshot covers', () => {
  const { fanout, mirror } = setup();
  const slow = new FakeTransport();
  const s = fanout.addClient(slow);
  fanout.subscribe(s, ['A'], false);
  slow.take();
  slow.bufferedAmount = 5000;
  const tick = (seq: number, epoch: number) => appliedUpdates(mirror, quote('A', seq, { epoch }))[0]!;
  fanout.publish([tick(2, 1)]);
  fanout.flushNow(); // deferred: behind
  mirror.replaceAll([quote('A', 1, { epoch: 2 })], 2);
  fanout.resync('epoch'); // owed, since it is behind
  fanout.publish([tick(2, 2), tick(3, 2)]); // logged, not yet served to it
  slow.bufferedAmount = 0;
  fanout.sweep(); // drained: resnapshot + snapshot (A@3)
  fanout.flushNow();
  const got = slow
    .take()
    .map((m) => [m.type, (m.quotes as Array<{ seq: number }> | undefined)?.map((q) => q.seq)]);
  assert.deepEqual(got, [
    ['resnapshot', undefined],
    ['snapshot', [3]],
  ]);
});

void test('a fan-out stopped and used again neither loses nor repeats updates', async () => {
  const { fanout, tick } = setup({ windowFactor: 0, sliceClients: 1 });
  const ts = [new FakeTransport(), new FakeTransport()];
  for (const t of ts) fanout.subscribe(fanout.addClient(t), ['A'], false);
  for (const t of ts) t.take();
  fanout.publish([tick('A')]); // A2
  await turn(); // client 0 served
  fanout.stop();
  fanout.publish([tick('A')]); // A3
  fanout.flushNow();
  assert.deepEqual(seqsOf(ts[0]!), [['A2'], ['A3']]);
  assert.deepEqual(seqsOf(ts[1]!), [['A3']], 'A2 was dropped by stop(); A3 arrives, not a stale frame');
  fanout.stop();
});
