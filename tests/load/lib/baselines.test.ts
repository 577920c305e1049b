// The harness measured against its own bare baselines: each load client
// must count exactly what the baseline sent (gap-free seqs, every tick
// acked), so a figure it reports about tickmesh can be trusted.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startBareGrpcServer, type BareGrpcServer } from '../baselines/bare-grpc-server.js';
import { quotesFrame, startBareWsServer, type BareWsServer } from '../baselines/bare-ws-server.js';
import { decodeLeanStreamResponse } from '../grpc/lean-quotes.js';
import { countStreamQuotes } from '../grpc/stream-counter.js';
import { runProducer } from '../grpc/tick-producer.js';
import { runWsLoad } from '../ws-loadgen/coordinator.js';
import { StreamQuotesResponse, StreamQuotesResponse_Kind } from '@tickmesh/kit/proto';
import { cannedQuote } from '../baselines/canned.js';
import { runGhz } from './ghz.js';

const GHZ = fileURLToPath(new URL('../../../.tools/bin/ghz', import.meta.url));
const CONFIGS = fileURLToPath(new URL('../ghz/', import.meta.url));

void describe('bare gRPC baseline and the gRPC load clients', () => {
  let bare: BareGrpcServer;
  before(async () => {
    bare = await startBareGrpcServer({ quotesPerMessage: 3 });
  });
  after(async () => {
    await bare.stop();
  });

  void it('the lean decoder reads what the generated encoder wrote', () => {
    const q = { ...cannedQuote('THYAO', 250.5, 77, 1_700_000_000_123), epoch: 9, conflated: true };
    const bytes = StreamQuotesResponse.encode({
      kind: StreamQuotesResponse_Kind.KIND_UPDATE,
      quotes: [q, { ...q, symbol: 'GARAN', conflated: false }],
      serverTimeMs: 5,
      epoch: 9,
      heartbeatIntervalMs: 100,
      snapshotComplete: true, // a field the lean decoder must skip
    }).finish();
    assert.deepEqual(decodeLeanStreamResponse(bytes), {
      kind: StreamQuotesResponse_Kind.KIND_UPDATE,
      quotes: [
        { symbol: 'THYAO', eventTimeMs: 1_700_000_000_123, seq: 77, epoch: 9, conflated: true },
        { symbol: 'GARAN', eventTimeMs: 1_700_000_000_123, seq: 77, epoch: 9, conflated: false },
      ],
    });
  });

  void it('the stream counter counts quotes and responses, with no gaps', async () => {
    const r = await countStreamQuotes({
      target: `127.0.0.1:${bare.port}`,
      streams: 4,
      all: true,
      warmupMs: 3000,
      durationMs: 700,
    });
    assert.equal(r.streamsReady, 4);
    assert.equal(r.streamsOpenAtEnd, 4);
    assert.ok(r.responses > 0, 'responses counted');
    assert.equal(r.quotes, r.responses * 3, 'three quotes per response');
    assert.equal(r.delivery.share, 1);
    assert.ok(r.delivery.expected > 0);
    assert.deepEqual(r.errors, {});
    assert.equal(r.delay.count, r.quotes);
  });

  void it('the producer gets every tick acked and accounts for it per symbol', async () => {
    const r = await runProducer({
      target: `127.0.0.1:${bare.port}`,
      producerId: 'test-producer',
      symbols: ['AAA', 'BBB', 'CCC'],
      batch: 50,
      window: 1000,
      rate: 0,
      durationMs: 500,
    });
    assert.ok(r.sent > 0);
    assert.equal(r.acked, r.sent);
    assert.equal(r.unacked, 0);
    assert.deepEqual(r.errors, {});
    const counts = Object.values(r.perSymbol).map((t) => t.count);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      r.sent,
    );
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, 'round-robin over symbols');
    assert.equal(Math.max(...Object.values(r.perSymbol).map((t) => t.lastSeq)), r.sent);
    for (const t of Object.values(r.perSymbol))
      assert.equal(Math.round(t.lastPrice * 10_000) / 10_000, t.lastPrice, 'on the 0.0001 grid');
  });

  void it('the producer honours its rate', async () => {
    const r = await runProducer({
      target: `127.0.0.1:${bare.port}`,
      producerId: 'slow',
      symbols: ['AAA'],
      batch: 10,
      window: 100,
      rate: 200,
      durationMs: 1000,
    });
    assert.ok(r.sent <= 200 + 40, `sent ${r.sent} at 200/s for 1 s`);
    assert.equal(r.acked, r.sent);
  });

  void it(
    'ghz runs the committed GetQuote config against it',
    { skip: !existsSync(GHZ) && 'ghz not installed (make tools)' },
    async () => {
      const s = await runGhz({
        ghzPath: GHZ,
        configPath: `${CONFIGS}get-quote.json`,
        target: `127.0.0.1:${bare.port}`,
        durationS: 1,
        concurrency: 4,
      });
      assert.ok(s.count > 0);
      assert.equal(s.errors, 0);
      assert.ok(s.rps > 0);
      assert.ok(s.p99Ms >= s.p50Ms);
    },
  );
});

void describe('bare ws baseline and the WebSocket load generator', () => {
  let bare: BareWsServer;
  before(async () => {
    bare = await startBareWsServer({ rate: 50, quotesPerFrame: 2, frameBytes: 700 });
  });
  after(async () => {
    await bare.stop();
  });

  void it('pads frames to the asked size', () => {
    const f = quotesFrame(['{"a":1}'], 100);
    assert.equal(f.length, 100);
    assert.deepEqual(JSON.parse(f).quotes, [{ a: 1 }]);
    assert.equal(quotesFrame(['{"a":1}'], 10), '{"type":"quotes","quotes":[{"a":1}]}');
  });

  void it('workers connect from several source addresses, count frames and every seq', async () => {
    const r = await runWsLoad({
      url: `ws://127.0.0.1:${bare.port}/ws`,
      clients: 12,
      workers: 2,
      maxPerIp: 5,
      warmupMs: 500,
      window: 1500,
      graceMs: 500,
    });
    assert.equal(r.connected, 12);
    assert.equal(r.subscribed, 12);
    assert.equal(r.sourceAddresses, 3);
    assert.deepEqual(bare.stats.sourceAddresses.sort(), ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    assert.equal(r.failedToConnect, 0);
    assert.equal(r.closedEarly, 0);
    assert.ok(r.framesPerSecond > 0);
    assert.equal(r.meanFrameBytes, 700);
    assert.equal(r.quotesPerFrame, 2);
    assert.equal(r.delivery.share, 1);
    assert.ok(r.delivery.expected > 0);
    assert.equal(r.delivery.clientsMeasured, 12);
    assert.ok(r.delay.count > 0);
    assert.equal(r.badFrames, 0);
    assert.deepEqual(r.closeCodes, {});
  });

  void it('a client whose handshake is refused tries again and is counted once it connects', async () => {
    const refusing = await startBareWsServer({ rate: 50, quotesPerFrame: 2, refuseHandshakes: 3 });
    try {
      const r = await runWsLoad({
        url: `ws://127.0.0.1:${refusing.port}/ws`,
        clients: 4,
        workers: 1,
        warmupMs: 300,
        window: 800,
        graceMs: 300,
      });
      assert.equal(r.handshakeFailures, 3, 'three refusals seen');
      assert.equal(r.failedToConnect, 0, 'every client connected on a later attempt');
      assert.equal(r.connected, 4);
      assert.equal(r.delivery.clientsMeasured, 4);
    } finally {
      await refusing.stop();
    }
  });

  void it('a client refused on every attempt is reported as failed to connect', async () => {
    const refusing = await startBareWsServer({ rate: 50, refuseHandshakes: 1_000 });
    try {
      const r = await runWsLoad({
        url: `ws://127.0.0.1:${refusing.port}/ws`,
        clients: 2,
        workers: 1,
        connectAttempts: 2,
        warmupMs: 100,
        window: 200,
        graceMs: 100,
      });
      assert.equal(r.connected, 0);
      assert.equal(r.failedToConnect, 2);
      assert.equal(r.handshakeFailures, 4, 'two attempts each');
    } finally {
      await refusing.stop();
    }
  });
});
