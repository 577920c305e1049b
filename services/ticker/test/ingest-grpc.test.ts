// IngestService end to end: the real ingest app (gRPC server, health,
// reflection, publisher) on free ports against this file's own nats-server,
// called through real grpc-js clients, the producer client and grpcurl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { parseConfig, createClient, projectPath } from '@tickmesh/kit';
import {
  IngestServiceClient,
  type PublishTickResponse,
  type PublishTicksResponse,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import {
  healthClient,
  healthStatus,
  startNats,
  stopAll,
  waitForHealth,
  waitUntil,
  type NatsTestServer,
} from '@tickmesh/harness';
import { ingestConfigSpec } from '../src/config.js';
import { startIngestApp, type IngestApp } from '../src/ingest-app.js';
import { INGEST_SERVICE_NAME } from '../src/ingest-service.js';
import { ProducerClient } from '../src/producer-client.js';
import { orderViolation, readStream, ticksOf } from './support/stream-contents.js';

const run = promisify(execFile);
const grpcurl = projectPath('.tools', 'bin', 'grpcurl');

let nats: NatsTestServer;
let nc: NatsConnection;
let app: IngestApp;
let target: string;
let client: IngestServiceClient;
let health: grpc.Client;

function publishTick(tick: Tick): Promise<PublishTickResponse> {
  return new Promise((resolve, reject) =>
    client.publishTick({ tick }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

/** A complete Tick (the generated encoder wants every field); identity left for the ticker to assign. */
function tick(over: Partial<Tick> = {}): Tick {
  return {
    symbol: 'THYAO',
    price: 285.5,
    size: 100,
    producerId: '',
    producerSeq: 0,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
    ...over,
  };
}

async function storedMessages(): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info('TICKS')).state.messages;
}

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const config = parseConfig(ingestConfigSpec, {
    LOG_LEVEL: 'silent',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    NATS_URL: nats.url,
    NATS_CONNECT_TIMEOUT_MS: '10000',
    HEALTH_CHECK_INTERVAL_MS: '200',
    PUBLISH_TIMEOUT_MS: '1000',
    PUBLISH_RETRY_MAX_MS: '500',
    INGEST_UNARY_TIMEOUT_MS: '3000',
    INGEST_UNAVAILABLE_AFTER_MS: '2000',
    INGEST_UNARY_PRODUCER_ID: 'unary-test',
    SHUTDOWN_TIMEOUT_MS: '3000',
  });
  app = await startIngestApp(config, { handleSignals: false });
  target = `127.0.0.1:${app.grpcPort}`;
  client = createClient(IngestServiceClient, target, {
    unaryDeadlineMs: 10_000,
    service: INGEST_SERVICE_NAME,
  });
  health = healthClient(target);
  await waitForHealth(health, INGEST_SERVICE_NAME, 'SERVING');
});

after(async () => {
  client?.close();
  health?.close();
  await app?.stop();
  await nc?.close();
  await stopAll();
});

describe('IngestService', () => {
  it('serves health (both meanings) and reflection', async () => {
    assert.equal(await healthStatus(health, ''), 'SERVING');
    assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
    assert.equal(await healthStatus(health, INGEST_SERVICE_NAME), 'SERVING');
  });

  it('PublishTick stores a tick and answers with its identity and stream seq', async () => {
    const before = await storedMessages();
    const res = await publishTick(tick({ bid: 285.25, ask: 285.75 }));
    assert.equal(res.producerId, 'unary-test');
    assert.ok(res.producerSeq >= Date.now() * 1000 - 60_000_000, 'time-based seq');
    assert.ok(res.streamSeq > before);
    assert.equal(res.duplicate, false);
    const stored = ticksOf(await readStream(nc, 'TICKS'), 'unary-test').find(
      (t) => t.producerSeq === res.producerSeq,
    );
    assert.equal(stored?.price, 285.5);
    assert.ok(stored && stored.eventTimeMs > 0, 'event time filled in');
    // a producer's own identity is kept, and a retry of the same tick is reported as a duplicate
    const own = await publishTick(tick({ producerId: 'own', producerSeq: 7 }));
    assert.deepEqual([own.producerId, own.producerSeq, own.duplicate], ['own', 7, false]);
    const retry = await publishTick(tick({ producerId: 'own', producerSeq: 7 }));
    assert.deepEqual([retry.streamSeq, retry.duplicate], [own.streamSeq, true]);
  });

  const invalid: Array<[string, Tick | undefined, string]> = [
    ['no tick', undefined, 'tick'],
    ['bad symbol', tick({ symbol: 'th yao' }), 'tick.symbol'],
    ['unknown symbol', tick({ symbol: 'NOTBIST' }), 'tick.symbol'],
    ['zero price', tick({ price: 0 }), 'tick.price'],
    ['NaN price', tick({ price: NaN }), 'tick.price'],
    ['off-tick price', tick({ price: 285.6 }), 'tick.price'],
    ['negative size', tick({ size: -1 }), 'tick.size'],
    ['bid above ask', tick({ bid: 286, ask: 285 }), 'tick.bid'],
    ['event time in the future', tick({ eventTimeMs: Date.now() + 3_600_000 }), 'tick.event_time_ms'],
    ['seq without producer', tick({ producerSeq: 5 }), 'tick.producer_id'],
    ['producer without seq', tick({ producerId: 'p' }), 'tick.producer_seq'],
    ['producer id with a slash', tick({ producerId: 'a/b', producerSeq: 1 }), 'tick.producer_id'],
  ];
  for (const [name, t, field] of invalid) {
    it(`PublishTick refuses ${name} with INVALID_ARGUMENT naming ${field}, storing nothing`, async () => {
      const before = await storedMessages();
      await assert.rejects(
        new Promise((resolve, reject) =>
          client.publishTick({ tick: t }, (err, res) => (err ? reject(err) : resolve(res))),
        ),
        (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
          assert.ok(err.details.startsWith(`${field}: `), err.details);
          assert.deepEqual(err.metadata.get('tickmesh-field'), [field]);
          return true;
        },
      );
      assert.equal(await storedMessages(), before);
    });
  }

  it('PublishTicks stores exactly the good ticks of a mixed stream and rejects the rest by seq', async () => {
    const call = client.publishTicks();
    const responses: PublishTicksResponse[] = [];
    call.on('data', (r: PublishTicksResponse) => responses.push(r));
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    const p = 'mixed';
    const t = (seq: number, over: Partial<Tick> = {}) => tick({ producerId: p, producerSeq: seq, ...over });
    call.write({ tick: t(1), ticks: [] });
    call.write({
      tick: undefined,
      ticks: [t(2, { price: -5 }), t(3, { symbol: 'GARAN', price: 130 }), t(4, { symbol: 'X.Y' })],
    });
    call.write({
      tick: undefined,
      ticks: [t(5, { bid: 300, ask: 200 }), t(6), t(6), t(7, { size: -2 }), t(8)],
    });
    call.end();
    const status = await ended;
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(
      responses.filter((r) => r.rejection).map((r) => [r.rejection!.producerSeq, r.rejection!.field]),
      [
        [2, 'tick.price'],
        [4, 'tick.symbol'],
        [5, 'tick.bid'],
        [6, 'tick.producer_seq'],
        [7, 'tick.size'],
      ],
    );
    assert.equal(responses.filter((r) => r.ack).at(-1)?.ack?.storedThroughSeq, 8);
    const stored = ticksOf(await readStream(nc, 'TICKS'), p).map((x) => x.producerSeq);
    assert.deepEqual(
      stored.sort((a, b) => a - b),
      [1, 3, 6, 8],
    );
  });

  it('a producer whose stream breaks mid-flight resends from its last ack and every tick ends up stored', async () => {
    const producer = new ProducerClient({
      target,
      producerId: 'breaker',
      windowTicks: 300,
      maxTicksPerMessage: 40,
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
    });
    const symbols = ['THYAO', 'GARAN', 'AKBNK', 'ASELS', 'BIMAS'];
    const prices: Record<string, number> = { THYAO: 285.5, GARAN: 130, AKBNK: 60.5, ASELS: 135, BIMAS: 520 };
    const seqs: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const symbol = symbols[i % symbols.length]!;
      seqs.push(await producer.send({ symbol, price: prices[symbol]!, size: 1 + (i % 9) }));
      if (i % 700 === 350) producer.breakStream(); // cut with ticks in flight
    }
    await producer.flush(30_000);
    assert.ok(producer.stats.reconnects >= 4, `reconnects: ${producer.stats.reconnects}`);
    assert.ok(producer.stats.resent > 0, 'something was resent');
    assert.equal(producer.ackedThrough, seqs.at(-1));
    await producer.close();
    const batches = await readStream(nc, 'TICKS');
    const stored = new Set(ticksOf(batches, 'breaker').map((t) => t.producerSeq));
    assert.deepEqual(
      seqs.filter((s) => !stored.has(s)),
      [],
      'no tick lost',
    );
    assert.equal(orderViolation(batches), undefined);
  });

  it(
    'grpcurl lists and describes the service, publishes a tick by hand and gets a bad one refused',
    { skip: !existsSync(grpcurl) && 'grpcurl not installed (make tools)' },
    async () => {
      const { stdout: list } = await run(grpcurl, ['-plaintext', target, 'list']);
      assert.match(list, /^tickmesh\.ingest\.v1\.IngestService$/m);
      assert.match(list, /^grpc\.health\.v1\.Health$/m);
      // PublishTickRequest imports Tick from market.proto: reflection must resolve it.
      const { stdout: described } = await run(grpcurl, [
        '-plaintext',
        target,
        'describe',
        'tickmesh.ingest.v1.PublishTickRequest',
      ]);
      assert.match(described, /\.tickmesh\.market\.v1\.Tick tick = 1;/);
      const { stdout: ok } = await run(grpcurl, [
        '-plaintext',
        '-d',
        '{"tick":{"symbol":"GARAN","price":130.1,"size":5}}',
        target,
        'tickmesh.ingest.v1.IngestService/PublishTick',
      ]);
      const res = JSON.parse(ok) as { producerId: string; streamSeq: string };
      assert.equal(res.producerId, 'unary-test');
      assert.ok(Number(res.streamSeq) > 0);
      const bad = await run(grpcurl, [
        '-plaintext',
        '-d',
        '{"tick":{"symbol":"GARAN","price":-1,"size":5}}',
        target,
        'tickmesh.ingest.v1.IngestService/PublishTick',
      ]).then(
        () => assert.fail('a negative price was accepted'),
        (err: { stderr: string }) => err.stderr,
      );
      assert.match(bad, /Code: InvalidArgument/);
      assert.match(bad, /tick\.price: must be > 0/);
    },
  );

  it('exposes the ticker metrics', async () => {
    const res = await fetch(`http://127.0.0.1:${app.metrics!.port}/metrics`);
    const body = await res.text();
    for (const name of [
      'tickmesh_ticks_accepted_total',
      'tickmesh_publish_seconds_bucket',
      'tickmesh_publish_in_flight',
      'tickmesh_publish_queue_ticks',
    ]) {
      assert.match(body, new RegExp(`^${name}`, 'm'));
    }
    assert.match(body, /^tickmesh_ticks_rejected_total\{reason="price_invalid",service="ticker"\} [1-9]/m);
  });

  it('NATS down: NOT_SERVING (liveness SERVING), producers get UNAVAILABLE, no acknowledged tick lost; back: SERVING', async () => {
    const acked = new Set<number>();
    const sentSeqs: number[] = [];
    const broken: string[] = [];
    const producer = new ProducerClient({
      target,
      producerId: 'outage',
      windowTicks: 500,
      reconnectMinMs: 50,
      reconnectMaxMs: 500,
      onStream: (event, detail) => event === 'broken' && broken.push(detail ?? ''),
    });
    let stop = false;
    const sending = (async () => {
      for (let i = 0; !stop; i++) {
        sentSeqs.push(
          await producer.send({ symbol: i % 2 ? 'THYAO' : 'GARAN', price: i % 2 ? 285.5 : 130, size: 1 }),
        );
        for (const s of sentSeqs) if (s <= producer.ackedThrough) acked.add(s);
        if (i % 20 === 0) await sleep(2);
      }
    })();
    await waitUntil(() => producer.ackedThrough > 0 && acked.size > 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks acked before the outage',
    });

    await nats.stop();
    const ackedWhenStopped = producer.ackedThrough;
    await waitForHealth(health, INGEST_SERVICE_NAME, 'NOT_SERVING', 10_000);
    assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
    assert.equal(await healthStatus(health, ''), 'SERVING');
    await assert.rejects(
      publishTick(tick()),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
    );
    await waitUntil(() => broken.some((b) => b.startsWith('UNAVAILABLE')), {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: 'the stream to end with UNAVAILABLE',
    });
    // whatever was acked while NATS went down had been stored before it went down
    assert.ok(producer.ackedThrough >= ackedWhenStopped);

    await nats.start();
    await waitForHealth(health, INGEST_SERVICE_NAME, 'SERVING', 20_000);
    const resumedFrom = producer.ackedThrough;
    await waitUntil(() => producer.ackedThrough > resumedFrom + 100, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'acks after the restart',
    });
    stop = true;
    await sending;
    await producer.flush(30_000);
    for (const s of sentSeqs) if (s <= producer.ackedThrough) acked.add(s);
    await producer.close();

    const batches = await readStream(nc, 'TICKS');
    const stored = new Set(ticksOf(batches, 'outage').map((t) => t.producerSeq));
    const lost = [...acked].filter((s) => !stored.has(s));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged ticks are missing`);
    assert.equal(acked.size, sentSeqs.length, 'after the restart everything sent was acknowledged');
    assert.equal(orderViolation(batches), undefined);
  });
});
