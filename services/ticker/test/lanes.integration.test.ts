// Per-producer order checked by the store: two ingest replicas on one
// nats-server, one producer's ticks spread over both by unary calls and
// streams, in and out of order, with resends. Every answer must be true of
// the stream: stored ticks are there once, refused ones never, duplicates
// were stored before, and each lane holds strictly increasing seqs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createClient, parseConfig } from '@tickmesh/kit';
import {
  IngestServiceClient,
  type PublishTickResponse,
  type PublishTicksResponse,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import { startNats, stopAll, waitUntil, type NatsTestServer } from '@tickmesh/harness';
import { ingestConfigSpec } from '../src/config.js';
import { startIngestApp, type IngestApp } from '../src/ingest-app.js';
import { INGEST_SERVICE_NAME } from '../src/ingest-service.js';
import { LaneReadiness } from '../src/lane-readiness.js';
import { readStream, ticksOf, type StoredBatch } from './support/stream-contents.js';

let nats: NatsTestServer;
let nc: NatsConnection;
const apps: IngestApp[] = [];
const clients: IngestServiceClient[] = [];

function config(natsUrl: string, replica: string) {
  return parseConfig(ingestConfigSpec, {
    LOG_LEVEL: 'silent',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    NATS_URL: natsUrl,
    NATS_CONNECT_TIMEOUT_MS: '10000',
    PUBLISH_TIMEOUT_MS: '2000',
    // The shortest duplicate window: lanes must not need it.
    TICKS_STREAM_DUPLICATE_WINDOW_MS: '1000',
    INGEST_UNARY_TIMEOUT_MS: '5000',
    INGEST_UNARY_PRODUCER_ID: `unary-${replica}`,
    SHUTDOWN_TIMEOUT_MS: '3000',
  });
}

function tick(producerId: string, seq: number, over: Partial<Tick> = {}): Tick {
  return {
    symbol: 'THYAO',
    price: 100 + (seq % 20) / 2,
    size: seq,
    producerId,
    producerSeq: seq,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
    ...over,
  };
}

type Answer = { ok: PublishTickResponse } | { err: grpc.ServiceError };

function publishTick(client: IngestServiceClient, t: Tick): Promise<Answer> {
  return new Promise((resolve) =>
    client.publishTick({ tick: t }, (err, res) => resolve(err ? { err } : { ok: res })),
  );
}

/** Sends `ticks` on one PublishTicks stream and collects rejections and the last ack. */
async function publishStream(
  client: IngestServiceClient,
  ticks: Tick[],
): Promise<{ rejected: number[]; ackedThrough: number; code: grpc.status }> {
  const call = client.publishTicks();
  const responses: PublishTicksResponse[] = [];
  call.on('data', (r: PublishTicksResponse) => responses.push(r));
  call.on('error', () => undefined);
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  for (let i = 0; i < ticks.length; i += 25) call.write({ tick: undefined, ticks: ticks.slice(i, i + 25) });
  call.end();
  const status = await ended;
  return {
    rejected: responses.filter((r) => r.rejection).map((r) => r.rejection!.producerSeq),
    ackedThrough: responses.filter((r) => r.ack).at(-1)?.ack?.storedThroughSeq ?? 0,
    code: status.code,
  };
}

/** Each lane's stored seqs strictly increase, and no seq is stored twice. */
function assertLanesIncrease(batches: StoredBatch[], producerId: string): void {
  let last = 0;
  for (const t of ticksOf(batches, producerId)) {
    assert.ok(t.producerSeq > last, `${producerId}: seq ${t.producerSeq} stored after ${last}`);
    last = t.producerSeq;
  }
}

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url, timeout: 5000 });
  for (const replica of ['a', 'b']) {
    const app = await startIngestApp(config(nats.url, replica), { handleSignals: false });
    apps.push(app);
    clients.push(
      createClient(IngestServiceClient, `127.0.0.1:${app.grpcPort}`, {
        unaryDeadlineMs: 10_000,
        service: INGEST_SERVICE_NAME,
      }),
    );
  }
});

after(async () => {
  for (const c of clients) c.close();
  for (const a of apps) await a.stop();
  await nc?.close();
  await stopAll();
});

describe('lanes: one producer order, checked by the store', () => {
  it('refuses a lower seq after a higher one on the same or another replica; a resend is a duplicate', async () => {
    const [a, b] = clients as [IngestServiceClient, IngestServiceClient];
    const p = 'order';
    const ten = await publishTick(a, tick(p, 10));
    assert.ok('ok' in ten && !ten.ok.duplicate, 'seq 10 stored');
    for (const [client, seq] of [
      [a, 5],
      [b, 7],
    ] as const) {
      const low = await publishTick(client, tick(p, seq));
      assert.ok('err' in low, `seq ${seq} after 10 must be refused`);
      assert.equal(low.err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(low.err.details, /tick\.producer_seq/);
      assert.match(low.err.details, /must be > 10/);
    }
    const again = await publishTick(b, tick(p, 10));
    assert.ok('ok' in again, 'a resend of seq 10 is answered');
    assert.equal(again.ok.duplicate, true);
    assert.equal(again.ok.streamSeq, ten.ok.streamSeq, 'the duplicate names the message that holds it');
    const changed = await publishTick(b, tick(p, 10, { price: 150 }));
    assert.ok(
      'err' in changed && changed.err.code === grpc.status.INVALID_ARGUMENT,
      'seq 10 with other content',
    );
    const stored = ticksOf(await readStream(nc, 'TICKS'), p).map((t) => t.producerSeq);
    assert.deepEqual(stored, [10]);
  });

  it('concurrent unary calls of one producer over two replicas: every answer is true of the stream', async () => {
    const p = 'concurrent';
    const symbols = ['THYAO', 'GARAN', 'AKBNK', 'ASELS'];
    // Seqs 1..300, shuffled, some sent twice, all at once, alternating replicas.
    const seqs = Array.from({ length: 300 }, (_, i) => i + 1);
    for (let i = seqs.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!];
    }
    const sends = [...seqs, ...seqs.filter((s) => s % 9 === 0)];
    const answers = await Promise.all(
      sends.map((seq, i) =>
        publishTick(clients[i % 2]!, tick(p, seq, { symbol: symbols[seq % symbols.length]! })),
      ),
    );
    const batches = await readStream(nc, 'TICKS');
    const stored = ticksOf(batches, p);
    const storedSeqs = new Set(stored.map((t) => t.producerSeq));
    assert.equal(storedSeqs.size, stored.length, 'no seq stored twice');
    for (const symbol of symbols)
      assertLanesIncrease(
        batches.map((b) => ({ ...b, ticks: b.ticks.filter((t) => t.symbol === symbol) })),
        p,
      );
    let fresh = 0;
    let refused = 0;
    answers.forEach((ans, i) => {
      const seq = sends[i]!;
      if ('ok' in ans) {
        assert.ok(storedSeqs.has(seq), `seq ${seq} answered stored but not in the stream`);
        if (!ans.ok.duplicate) fresh++;
      } else {
        assert.equal(ans.err.code, grpc.status.INVALID_ARGUMENT, `seq ${seq}: ${ans.err.details}`);
        refused++;
      }
    });
    assert.equal(fresh, stored.length, 'each stored tick was answered stored (not duplicate) once');
    for (const seq of seqs) {
      const mine = answers.filter((_, i) => sends[i] === seq);
      if (!storedSeqs.has(seq))
        assert.ok(
          mine.every((x) => 'err' in x),
          `seq ${seq} not stored: all refused`,
        );
    }
    assert.ok(refused > 0 && fresh > 0, `both outcomes happen (stored ${fresh}, refused ${refused})`);
  });

  it('a stream resent from an earlier point through the other replica: duplicates acked, nothing stored twice', async () => {
    const [a, b] = clients as [IngestServiceClient, IngestServiceClient];
    const p = 'resend-stream';
    const all = Array.from({ length: 150 }, (_, i) =>
      tick(p, 1000 + 2 * i, { symbol: i % 2 ? 'GARAN' : 'THYAO', eventTimeMs: Date.now() }),
    );
    const first = await publishStream(a, all.slice(0, 100));
    assert.equal(first.code, grpc.status.OK);
    assert.deepEqual(first.rejected, []);
    const second = await publishStream(b, all.slice(50));
    assert.equal(second.code, grpc.status.OK);
    assert.deepEqual(second.rejected, [], 'resent ticks are duplicates, not refusals');
    assert.equal(second.ackedThrough, all.at(-1)!.producerSeq);
    const stored = ticksOf(await readStream(nc, 'TICKS'), p).map((t) => t.producerSeq);
    assert.deepEqual(
      stored.sort((x, y) => x - y),
      all.map((t) => t.producerSeq),
    );
    // A tick between stored seqs (never sent) comes back as a rejection on the stream.
    const late = await publishStream(a, [tick(p, 1001)]);
    assert.deepEqual(late.rejected, [1001]);
  });
});

describe('lanes: dedupe state no caller can flush', () => {
  it("300 fresh producer ids on one symbol leave a real producer's resends deduplicated", async () => {
    const [a, b] = clients as [IngestServiceClient, IngestServiceClient];
    const real = 'real-producer';
    const first = await publishStream(a, [tick(real, 100), tick(real, 101)]);
    assert.equal(first.ackedThrough, 101);
    // Before lanes, the price-cache kept 256 watermarks per symbol: a flood like this evicted
    // the real producer's, and a re-batched resend (new message id) was stored and applied again.
    const flood = await Promise.all(
      Array.from({ length: 300 }, (_, i) => publishTick(clients[i % 2]!, tick(`flood-${i}`, 1))),
    );
    assert.ok(flood.every((x) => 'ok' in x));
    await sleep(1100); // past the duplicate window: only the lane recognises the resend
    const resend = await publishStream(b, [tick(real, 101), tick(real, 102)]);
    assert.deepEqual(resend.rejected, []);
    assert.equal(resend.ackedThrough, 102);
    const stored = ticksOf(await readStream(nc, 'TICKS'), real).map((t) => t.producerSeq);
    assert.deepEqual(stored, [100, 101, 102], 'the resent tick is stored once');
  });
});

describe('lanes wait for the readers', () => {
  it('a consumer of the pre-lane subject keeps lanes off until it takes lanes too', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add('TICKS', {
      durable_name: 'old-reader-p0',
      filter_subject: 'ticks.0',
      ack_policy: AckPolicy.Explicit,
    });
    const readiness = new LaneReadiness(jsm, 'TICKS', { recheckMs: 100 });
    try {
      await readiness.start();
      assert.equal(readiness.enabled, false);
      await jsm.consumers.update('TICKS', 'old-reader-p0', {
        filter_subject: '',
        filter_subjects: ['ticks.0', 'ticks.0.>'],
      });
      await waitUntil(() => readiness.enabled, { timeoutMs: 5000, what: 'lanes enabled' });
    } finally {
      readiness.stop();
      await jsm.consumers.delete('TICKS', 'old-reader-p0');
    }
  });
});
