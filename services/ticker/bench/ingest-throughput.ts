// Ingest throughput benchmark: how many ticks per
// second one ticker process stores in JetStream, against a bare baseline
// measured in the same run on the same private nats-server.
//
//   node --import tsx services/ticker/bench/ingest-throughput.ts [--seconds 5] [--skip-e2e]
//
//  1. baseline:  one JetStream message per tick, plain client, 512 publishes in flight
//  2. publisher: the ticker's TickPublisher (one TickBatch per partition run,
//                one publish in flight per partition), fed as fast as its
//                backpressure allows
//  3. end to end: the producer client streaming to a separate ticker process
//                (gRPC PublishTicks) that publishes to JetStream
// Every figure counts only what the stream holds afterwards: messages for
// the baseline, decoded and deduplicated ticks for the other two.
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Tick } from '@tickmesh/kit/proto';
import { loadUniverse, projectPath } from '@tickmesh/kit';
import { freePort, healthClient, startNats, waitForHealth } from '@tickmesh/harness';
import { jetStreamPublishFn } from '../src/jetstream-publish.js';
import { ProducerClient } from '../src/producer-client.js';
import { TickGenerator } from '../src/tick-generator.js';
import { TickPublisher } from '../src/tick-publisher.js';
import { openLaneCheck } from '../src/tick-publishing.js';
import { ensureTicksStream, type TicksStreamSettings } from '../src/ticks-stream.js';
import { readStream } from '../test/support/stream-contents.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    partitions: { type: 'string', default: '8' },
    batch: { type: 'string', default: '500' },
    'skip-e2e': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(values.seconds);
const PARTITIONS = Number(values.partitions);
const BATCH = Number(values.batch);
const BASELINE_IN_FLIGHT = 512;

const universe = loadUniverse('bist30');
const settings = (name: string): TicksStreamSettings => ({
  name,
  replicas: 1,
  maxAgeMs: 3_600_000,
  maxBytes: -1,
  duplicateWindowMs: 120_000,
  maxMsgSize: 1 << 20,
});

function ticks(producerId: string) {
  const gen = new TickGenerator({
    instruments: universe.instruments,
    seed: 1,
    minIntervalMs: 1,
    maxIntervalMs: 1,
    ticksPerSecond: 1000,
  });
  let seq = 0;
  return (): Tick => {
    const t = gen.next();
    return {
      symbol: t.symbol,
      price: t.price,
      size: t.size,
      bid: t.bid,
      ask: t.ask,
      producerId,
      producerSeq: ++seq,
      eventTimeMs: Date.now(),
    };
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function baseline(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'BASELINE',
    subjects: ['baseline.>'],
    storage: StorageType.File,
    duplicate_window: 120e9,
  });
  const js = jetstream(nc, { timeout: 10_000 });
  const next = ticks('baseline');
  let inFlight = 0;
  let acked = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  while (performance.now() < until && failure === undefined) {
    while (inFlight >= BASELINE_IN_FLIGHT) await new Promise<void>((r) => (wake = r));
    const t = next();
    inFlight++;
    js.publish(`baseline.${t.symbol}`, Tick.encode(t).finish(), { msgID: `baseline/${t.producerSeq}` }).then(
      () => {
        acked++;
        inFlight--;
        wake?.();
      },
      (err: unknown) => {
        failure ??= err;
        inFlight--;
        wake?.();
      },
    );
  }
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  if (failure !== undefined) throw failure;
  const elapsed = (performance.now() - started) / 1000;
  const stored = (await jsm.streams.info('BASELINE')).state.messages;
  if (stored !== acked) throw new Error(`baseline: ${acked} acked but ${stored} stored`);
  return stored / elapsed;
}

async function verify(nc: NatsConnection, stream: string, producerId: string, expected: number) {
  const batches = await readStream(nc, stream);
  const seqs = new Set<number>();
  let count = 0;
  for (const b of batches)
    for (const t of b.ticks)
      if (t.producerId === producerId) {
        count++;
        seqs.add(t.producerSeq);
      }
  if (seqs.size !== expected)
    throw new Error(`${stream}: expected ${expected} distinct ticks, found ${seqs.size}`);
  return { messages: batches.length, ticks: count, distinct: seqs.size };
}

async function publisherRun(nc: NatsConnection): Promise<{ rate: number; detail: string }> {
  const jsm = await jetstreamManager(nc);
  await ensureTicksStream(jsm, settings('TICKS'));
  // As the ticker runs it: every batch judged against its lane and published with the lane check.
  const lanes = await openLaneCheck(jsm, 'TICKS', { maxFutureMs: 60_000 });
  const publisher = new TickPublisher({
    partitions: PARTITIONS,
    maxBatchTicks: BATCH,
    queueTicks: 10_000,
    retryMinMs: 100,
    retryMaxMs: 2000,
    publish: jetStreamPublishFn({
      js: jetstream(nc, { timeout: 10_000 }),
      stream: 'TICKS',
      timeoutMs: 10_000,
    }),
    lanes,
  });
  publisher.onClose(() => lanes.stop());
  const next = ticks('bench');
  let submitted = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 256; i++) {
      const t = next();
      while (!publisher.trySubmit(t)) await publisher.waitForSpace(t.symbol);
      submitted++;
    }
  }
  await publisher.idle();
  const elapsed = (performance.now() - started) / 1000;
  await publisher.close(1000);
  const v = await verify(nc, 'TICKS', 'bench', submitted);
  await jsm.streams.delete('TICKS'); // the end-to-end run's stream takes the same subjects
  return {
    rate: submitted / elapsed,
    detail: `${fmt(v.distinct)} ticks in ${fmt(v.messages)} messages (${(v.ticks / v.messages).toFixed(0)} ticks/msg)`,
  };
}

async function endToEnd(nc: NatsConnection, natsUrl: string): Promise<{ rate: number; detail: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', projectPath('services', 'ticker', 'src', 'main.ts')],
    {
      env: {
        ...process.env,
        NATS_URL: natsUrl,
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: String(port),
        METRICS_PORT: '0',
        LOG_LEVEL: 'warn',
        TICKS_STREAM: 'E2E',
        TICK_PARTITIONS: String(PARTITIONS),
        PUBLISH_MAX_BATCH_TICKS: String(BATCH),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  try {
    const breaks = new Map<string, number>();
    const client = new ProducerClient({
      onStream: (event, detail) =>
        event === 'broken' && breaks.set(detail ?? '', (breaks.get(detail ?? '') ?? 0) + 1),
      target: `127.0.0.1:${port}`,
      producerId: 'e2e',
      windowTicks: 20_000,
      maxTicksPerMessage: 500,
    });
    // wait until the ticker serves (and is ready) before the clock starts
    const health = healthClient(`127.0.0.1:${port}`);
    await waitForHealth(health, 'tickmesh.ingest.v1.IngestService', 'SERVING', 60_000);
    health.close();
    await client.send({ symbol: 'THYAO', price: 285.5, size: 1 });
    await client.flush(30_000);
    const next = ticks('e2e');
    let sent = 0;
    const started = performance.now();
    const until = started + SECONDS * 1000;
    while (performance.now() < until) {
      const t = next();
      await client.send({
        symbol: t.symbol,
        price: t.price,
        size: t.size,
        bid: t.bid,
        ask: t.ask,
        eventTimeMs: t.eventTimeMs,
      });
      sent++;
    }
    await client.flush(60_000);
    const elapsed = (performance.now() - started) / 1000;
    await client.close();
    const v = await verify(nc, 'E2E', 'e2e', sent + 1);
    if (breaks.size > 0) console.log(`  stream breaks: ${JSON.stringify(Object.fromEntries(breaks))}`);
    return {
      rate: sent / elapsed,
      detail: `${fmt(v.distinct)} ticks in ${fmt(v.messages)} messages, ${client.stats.reconnects} reconnects`,
    };
  } finally {
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), delay(10_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function main() {
  const nats = await startNats();
  const nc = await connect({ servers: nats.url, timeout: 5000 });
  try {
    console.log(`nats-server on ${nats.url}; ${SECONDS} s per run; node ${process.version}`);
    const base = await baseline(nc);
    console.log(
      `baseline   one JetStream message per tick (plain client, ${BASELINE_IN_FLIGHT} in flight): ${fmt(base)} msgs/s`,
    );
    const pub = await publisherRun(nc);
    console.log(
      `publisher  TickPublisher, ${PARTITIONS} partitions, <= ${BATCH} ticks/msg: ${fmt(pub.rate)} ticks/s stored ` +
        `(${(pub.rate / base).toFixed(1)}x baseline; verified ${pub.detail})`,
    );
    if (!values['skip-e2e']) {
      const e2e = await endToEnd(nc, nats.url);
      console.log(
        `end to end producer client -> gRPC PublishTicks -> ticker process -> JetStream: ${fmt(e2e.rate)} ticks/s acked ` +
          `(${(e2e.rate / base).toFixed(1)}x baseline; verified ${e2e.detail})`,
      );
    }
  } finally {
    await nc.close();
    await nats.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
