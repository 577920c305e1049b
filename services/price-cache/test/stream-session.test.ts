// StreamQuotes without a network: the frame encoding, the snapshot-then-
// updates order, conflation under backpressure, the rate cap, heartbeats,
// RESET, and the slow-client bounds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import {
  Quote,
  GetQuoteResponse,
  StreamQuotesResponse,
  StreamQuotesResponse_Kind as Kind,
} from '@tickmesh/kit/proto';
import { waitUntil } from '@tickmesh/harness';
import { MirrorEntry } from '../src/mirror.js';
import { QuoteStreamSession, type StreamSessionOptions } from '../src/quote-stream.js';
import { encodeGetQuoteResponse, encodeStreamFrame, scanQuote, type StreamFrame } from '../src/wire.js';
import fc from 'fast-check';

function quote(symbol: string, seq: number, epoch = 7): Quote {
  return Quote.fromPartial({
    symbol,
    seq,
    epoch,
    last: 100 + seq / 100,
    eventTimeMs: 1_700_000_000_000 + seq,
    volume: seq * 10,
  });
}
const entry = (q: Quote): MirrorEntry =>
  new MirrorEntry(q.symbol, q.seq, q.epoch, Quote.encode(q).finish(), q);

describe('encodeStreamFrame', () => {
  for (const [kind, snapshotComplete] of [
    [Kind.KIND_UPDATE, false],
    [Kind.KIND_SNAPSHOT, false],
    [Kind.KIND_SNAPSHOT, true],
  ] as const) {
    it(`writes what ts-proto writes, from pre-encoded quotes (${Kind[kind]}, complete ${snapshotComplete})`, () => {
      const qs = [quote('THYAO', 1), quote('GARAN', 99)];
      const frame: StreamFrame = {
        kind,
        quotes: qs.map((q) => ({ bytes: Quote.encode(q).finish(), conflated: false })),
        serverTimeMs: 1_732_240_000_123,
        epoch: 1_732_240_000_000,
        heartbeatIntervalMs: 5000,
        snapshotComplete,
      };
      const ours = encodeStreamFrame(frame);
      const theirs = StreamQuotesResponse.encode({ ...frame, snapshotComplete, quotes: qs }).finish();
      assert.deepEqual(new Uint8Array(ours), theirs);
      const decoded = StreamQuotesResponse.decode(ours);
      assert.deepEqual(decoded.quotes, qs);
      assert.equal(decoded.snapshotComplete, snapshotComplete);
    });
  }

  it('marks conflated quotes without re-encoding them', () => {
    const q = quote('THYAO', 5);
    const decoded = StreamQuotesResponse.decode(
      encodeStreamFrame({
        kind: Kind.KIND_UPDATE,
        quotes: [{ bytes: Quote.encode(q).finish(), conflated: true }],
        serverTimeMs: 1,
        epoch: 7,
        heartbeatIntervalMs: 1,
      }),
    );
    assert.deepEqual(decoded.quotes[0], { ...q, conflated: true });
  });

  it('encodes an empty heartbeat', () => {
    const d = StreamQuotesResponse.decode(
      encodeStreamFrame({
        kind: Kind.KIND_HEARTBEAT,
        quotes: [],
        serverTimeMs: 5,
        epoch: 0,
        heartbeatIntervalMs: 100,
      }),
    );
    assert.equal(d.kind, Kind.KIND_HEARTBEAT);
    assert.equal(d.heartbeatIntervalMs, 100);
  });
});

/**
 * Stands in for the kit and grpc-js: pulls the session's frames as the kit
 * does, records them, and can refuse (backpressure) until drained.
 */
class FakeStream {
  frames: StreamQuotesResponse[] = [];
  accept = true;
  private drainWaiters: Array<() => void> = [];
  readonly controller = new AbortController();
  get signal() {
    return this.controller.signal;
  }
  /** Settles when the call ends: rejects with what the session failed it with. */
  run(session: QuoteStreamSession): Promise<void> {
    let fail: (err: unknown) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    const ctx = {
      signal: this.signal,
      fail: (err: unknown) => {
        fail(err);
        this.controller.abort();
      },
    };
    const pump = async () => {
      for await (const f of session.frames(ctx)) {
        if (this.signal.aborted) return;
        this.frames.push(StreamQuotesResponse.decode(encodeStreamFrame(f)));
        if (!this.accept) {
          await new Promise<void>((r) => {
            this.drainWaiters.push(r);
            this.signal.addEventListener('abort', () => r(), { once: true });
          });
        }
        if (this.signal.aborted) return;
      }
    };
    return Promise.race([pump(), failed]);
  }
  drain(): void {
    this.accept = true;
    for (const w of this.drainWaiters.splice(0)) w();
  }
}

const base: StreamSessionOptions = {
  symbols: 'all',
  heartbeatMs: 60_000,
  slowTimeoutMs: 60_000,
  maxPending: 100,
  maxQuotesPerMessage: 100,
  minIntervalMs: 0,
};

function offer(s: QuoteStreamSession, q: Quote) {
  s.offer(q.symbol, q.seq, q.epoch, Quote.encode(q).finish());
}

describe('QuoteStreamSession', () => {
  it('sends the snapshot first, then updates, dropping what the snapshot covers', async () => {
    const s = new QuoteStreamSession({ ...base, symbols: new Set(['THYAO', 'GARAN']) });
    const sink = new FakeStream();
    s.start(7, [entry(quote('THYAO', 3)), entry(quote('GARAN', 8)), entry(quote('AKBNK', 1))]);
    const run = sink.run(s);
    offer(s, quote('THYAO', 3)); // covered by the snapshot
    offer(s, quote('THYAO', 4));
    await waitUntil(() => sink.frames.length >= 2, { timeoutMs: 5000, intervalMs: 5, what: 'update' });
    assert.equal(sink.frames[0]!.kind, Kind.KIND_SNAPSHOT);
    assert.deepEqual(
      sink.frames[0]!.quotes.map((q) => `${q.symbol}@${q.seq}`),
      ['THYAO@3', 'GARAN@8'],
    );
    assert.equal(sink.frames[1]!.kind, Kind.KIND_UPDATE);
    assert.deepEqual(
      sink.frames[1]!.quotes.map((q) => `${q.symbol}@${q.seq}`),
      ['THYAO@4'],
    );
    assert.ok(
      sink.frames.every((f) => f.epoch === 7 && f.heartbeatIntervalMs === 60_000 && f.serverTimeMs > 0),
    );
    sink.controller.abort();
    await run;
  });

  it('conflates while the client is not draining: latest value wins, marked conflated', async () => {
    let conflated = 0;
    const s = new QuoteStreamSession({ ...base, onConflated: (n) => (conflated += n) });
    const sink = new FakeStream();
    s.start(7, []);
    sink.accept = false; // the first write (snapshot) fills the buffer
    const run = sink.run(s);
    await waitUntil(() => sink.frames.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'snapshot' });
    for (let seq = 1; seq <= 50; seq++) offer(s, quote('THYAO', seq));
    offer(s, quote('GARAN', 1));
    assert.equal(s.pendingCount, 2, 'one entry per symbol, however many updates');
    sink.drain();
    await waitUntil(() => sink.frames.length >= 2, {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'update after drain',
    });
    const update = sink.frames[1]!;
    assert.deepEqual(
      update.quotes.map((q) => [q.symbol, q.seq, q.conflated]),
      [
        ['THYAO', 50, true],
        ['GARAN', 1, false],
      ],
    );
    assert.equal(conflated, 49);
    sink.controller.abort();
    await run;
  });

  it('ends a client that stays undrained with RESOURCE_EXHAUSTED', async () => {
    const s = new QuoteStreamSession({ ...base, slowTimeoutMs: 100 });
    const sink = new FakeStream();
    sink.accept = false;
    s.start(7, []);
    await assert.rejects(sink.run(s), (err: { code?: number }) => err.code === status.RESOURCE_EXHAUSTED);
  });

  it('ends a client whose pending map outgrows its bound', async () => {
    const s = new QuoteStreamSession({ ...base, maxPending: 3 });
    const sink = new FakeStream();
    sink.accept = false;
    s.start(7, []);
    const run = sink.run(s);
    await waitUntil(() => sink.frames.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'snapshot' });
    for (const sym of ['A1', 'A2', 'A3', 'A4']) offer(s, quote(sym, 1));
    await assert.rejects(run, (err: { code?: number }) => err.code === status.RESOURCE_EXHAUSTED);
  });

  it('caps updates per symbol per second (conflating in between)', async () => {
    const s = new QuoteStreamSession({ ...base, minIntervalMs: 200 });
    const sink = new FakeStream();
    s.start(7, []);
    const run = sink.run(s);
    const started = Date.now();
    let seq = 0;
    while (Date.now() - started < 1000) {
      offer(s, quote('THYAO', ++seq));
      await sleep(5);
    }
    await sleep(250);
    const updates = sink.frames.filter((f) => f.kind === Kind.KIND_UPDATE).flatMap((f) => f.quotes);
    // ~5 per second allowed; generous bounds for a loaded machine.
    assert.ok(updates.length >= 3 && updates.length <= 8, `got ${updates.length} updates`);
    assert.equal(updates.at(-1)!.seq, seq, 'the latest value is delivered in the end');
    const seqs = updates.map((q) => q.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    sink.controller.abort();
    await run;
  });

  it('sends heartbeats when idle and RESET + snapshot on an epoch change', async () => {
    const s = new QuoteStreamSession({ ...base, heartbeatMs: 50 });
    const sink = new FakeStream();
    s.start(7, [entry(quote('THYAO', 3))]);
    const run = sink.run(s);
    await waitUntil(() => sink.frames.some((f) => f.kind === Kind.KIND_HEARTBEAT), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'heartbeat',
    });
    offer(s, quote('THYAO', 9, 7));
    s.reset(8, [entry(quote('THYAO', 2, 8))]);
    offer(s, quote('THYAO', 10, 7)); // old epoch: ignored
    offer(s, quote('THYAO', 3, 8));
    await waitUntil(() => sink.frames.some((f) => f.kind === Kind.KIND_UPDATE && f.epoch === 8), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'update after reset',
    });
    const kinds = sink.frames
      .filter((f) => f.kind !== Kind.KIND_HEARTBEAT)
      .map((f) => `${Kind[f.kind]}:${f.quotes.map((q) => q.seq).join(',')}`);
    assert.deepEqual(kinds.slice(-3), ['KIND_RESET:', 'KIND_SNAPSHOT:2', 'KIND_UPDATE:3']);
    sink.controller.abort();
    await run;
  });

  it('splits a large snapshot over several messages and marks only the last one complete', async () => {
    const s = new QuoteStreamSession({ ...base, maxQuotesPerMessage: 2 });
    const sink = new FakeStream();
    const symbols = ['A1', 'A2', 'A3', 'A4', 'A5'];
    s.start(
      7,
      symbols.map((sym) => entry(quote(sym, 1))),
    );
    const run = sink.run(s);
    await waitUntil(() => sink.frames.length >= 3, {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'three snapshot parts',
    });
    assert.deepEqual(
      sink.frames.slice(0, 3).map((f) => [Kind[f.kind], f.quotes.length, f.snapshotComplete]),
      [
        ['KIND_SNAPSHOT', 2, false],
        ['KIND_SNAPSHOT', 2, false],
        ['KIND_SNAPSHOT', 1, true],
      ],
    );
    sink.controller.abort();
    await run;
  });

  it('marks an empty snapshot complete too', async () => {
    const s = new QuoteStreamSession({ ...base, symbols: new Set(['NONE']) });
    const sink = new FakeStream();
    s.start(7, [entry(quote('THYAO', 3))]);
    const run = sink.run(s);
    await waitUntil(() => sink.frames.length >= 1, { timeoutMs: 5000, intervalMs: 5, what: 'snapshot' });
    assert.deepEqual(
      [sink.frames[0]!.kind, sink.frames[0]!.quotes.length, sink.frames[0]!.snapshotComplete],
      [Kind.KIND_SNAPSHOT, 0, true],
    );
    sink.controller.abort();
    await run;
  });
});

describe('encodeGetQuoteResponse', () => {
  it('is the GetQuoteResponse encoding of the quote', () => {
    const q = quote('THYAO', 77);
    assert.deepEqual(
      new Uint8Array(encodeGetQuoteResponse(Quote.encode(q).finish())),
      GetQuoteResponse.encode({ quote: q }).finish(),
    );
  });
});

describe('scanQuote', () => {
  it('reads symbol, seq and epoch exactly as a full decode does', () => {
    fc.assert(
      fc.property(
        fc.record({
          symbol: fc.stringMatching(/^[A-Z0-9][A-Z0-9_-]{0,15}$/),
          seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          epoch: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          last: fc.double({ noNaN: true }),
          volume: fc.integer({ min: 0, max: 2 ** 52 }),
          sessionDate: fc.string(),
          conflated: fc.boolean(),
        }),
        (r) => {
          const q = Quote.fromPartial(r);
          assert.deepEqual(scanQuote(Quote.encode(q).finish()), {
            symbol: q.symbol,
            seq: q.seq,
            epoch: q.epoch,
          });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('rejects malformed bytes', () => {
    for (const bad of [
      [0x0a, 0x05, 0x41],
      [0x68],
      [0x0f, 0x01],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]) {
      assert.throws(() => scanQuote(Uint8Array.from(bad)), Error, JSON.stringify(bad));
    }
  });
});
