// Fault test: one producer's unary calls spread concurrently over two ticker
// replicas (as round-robin load balancing does), in and out of order, with
// resends, on top of the usual load. Every answer must be true: what was
// answered stored is in the stream once and applied once (Redis equals the
// model folded from the stream), what was refused is nowhere, and a
// duplicate names a tick that was stored.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createClient, parseConfig } from '@tickmesh/kit';
import { IngestServiceClient, type PublishTickResponse, type Tick } from '@tickmesh/kit/proto';
import { ingestConfigSpec } from '../../services/ticker/src/config.js';
import { startIngestApp, type IngestApp } from '../../services/ticker/src/ingest-app.js';
import { INGEST_SERVICE_NAME } from '../../services/ticker/src/ingest-service.js';
import { FaultHarness } from './lib/harness.js';
import { readStream } from './lib/model.js';
import { rng } from './lib/producers.js';
import { faultLoad } from './lib/settings.js';

const h = new FaultHarness(faultLoad({ priceProxy: false }));
let second: IngestApp | undefined;
const clients: IngestServiceClient[] = [];

before(async () => {
  await h.start();
  second = await startIngestApp(
    parseConfig(ingestConfigSpec, {
      LOG_LEVEL: 'warn',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      NATS_URL: h.stack.nats.url,
      INGEST_UNARY_PRODUCER_ID: 'second-ticker',
    }),
    { handleSignals: false },
  );
  for (const address of [h.stack.svc('ticker').spec.grpcAddress!, `127.0.0.1:${second.grpcPort}`]) {
    clients.push(
      createClient(IngestServiceClient, address, { unaryDeadlineMs: 10_000, service: INGEST_SERVICE_NAME }),
    );
  }
});

after(async () => {
  for (const c of clients) c.close();
  await second?.stop();
  await h.stop();
});

type Answer = { ok: PublishTickResponse } | { err: grpc.ServiceError };

function publishTick(client: IngestServiceClient, tick: Tick): Promise<Answer> {
  return new Promise((resolve) =>
    client.publishTick({ tick }, (err, res) => resolve(err ? { err } : { ok: res })),
  );
}

test('one producer, unary calls over two ticker replicas concurrently: every answer is true', async (t) => {
  const producerId = 'fault-shared-unary';
  const instruments = h.universe.instruments.slice(0, 6);
  const random = rng(77);
  const sent = new Map<number, Tick>();
  let counter = 0;
  const answers: Array<{ seq: number; answer: Answer }> = [];
  const until = Date.now() + 8000;
  const worker = async () => {
    while (Date.now() < until) {
      const r = random();
      let seq: number;
      if (r < 0.1 && counter > 10)
        seq = 1 + Math.floor(random() * counter); // a resend
      else if (r < 0.15 && counter > 10)
        seq = counter - 3; // behind the others (a slow or retried call)
      else seq = ++counter;
      let tick = sent.get(seq);
      if (!tick) {
        const i = instruments[seq % instruments.length]!;
        tick = {
          symbol: i.symbol,
          price: i.referencePrice,
          size: 1 + (seq % 97),
          producerId,
          producerSeq: seq,
          eventTimeMs: Date.now(),
          bid: undefined,
          ask: undefined,
        };
        sent.set(seq, tick);
      }
      const client = clients[Math.floor(random() * clients.length)]!;
      answers.push({ seq, answer: await publishTick(client, tick) });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));

  const problems = await h.checkConsistency('two ticker replicas');
  const stored: number[] = [];
  await readStream(h.nc, 1, (_, ticks) => {
    for (const x of ticks) if (x.producerId === producerId) stored.push(x.producerSeq);
  });
  const inStream = new Set(stored);
  if (inStream.size !== stored.length) problems.push('a tick of the shared producer is stored twice');
  const counts = { stored: 0, duplicate: 0, refused: 0, unknown: 0 };
  const unknown = new Set<number>();
  for (const { seq, answer } of answers) {
    if ('ok' in answer) {
      counts[answer.ok.duplicate ? 'duplicate' : 'stored']++;
      if (!inStream.has(seq)) problems.push(`seq ${seq} was answered stored but is not in the stream`);
    } else if (answer.err.code === grpc.status.INVALID_ARGUMENT) {
      counts.refused++;
      if (inStream.has(seq)) problems.push(`seq ${seq} was refused but is in the stream`);
    } else if (
      answer.err.code === grpc.status.DEADLINE_EXCEEDED ||
      answer.err.code === grpc.status.UNAVAILABLE
    ) {
      // Neither an acknowledgement nor a refusal: the tick may or may not be stored.
      counts.unknown++;
      unknown.add(seq);
    } else {
      problems.push(`seq ${seq}: unexpected ${grpc.status[answer.err.code]} ${answer.err.details}`);
    }
  }
  for (const seq of inStream) {
    if (!unknown.has(seq) && !answers.some((a) => a.seq === seq && 'ok' in a.answer))
      problems.push(`seq ${seq} is in the stream but no call was told so`);
  }
  t.diagnostic(
    `${answers.length} calls: ${counts.stored} stored, ${counts.duplicate} duplicates, ${counts.refused} refused, ${counts.unknown} timed out; ${inStream.size} ticks of the producer in the stream`,
  );
  assert.deepEqual(problems, [], problems.join('\n'));
  assert.ok(counts.stored > 20 && counts.refused > 0 && counts.duplicate > 0, JSON.stringify(counts));
});
