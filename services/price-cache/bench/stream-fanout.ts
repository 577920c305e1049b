// StreamQuotes fan-out: 100 concurrent streams (all symbols) counted by the
// project's counting client, fed by quote updates published on quotes.> at a
// fixed rate; the same against a bare grpc-js server-streaming server (one
// write per update per stream) in the same run. Goal: >= 70,000 quotes/s
// delivered by the price-cache.
//
//   node --import tsx services/price-cache/bench/stream-fanout.ts [--streams 100] [--rate 1000] [--seconds 10]
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { Quote } from '@tickmesh/kit/proto';
import { loadUniverse } from '@tickmesh/kit';
import { KEY } from '../src/redis-store.js';
import {
  arg,
  freePort,
  metric,
  priceCacheEnv,
  runTs,
  sleep,
  startInfra,
  stopChild,
  waitUntil,
} from './common.js';

const STREAMS = arg('streams', 100);
const RATE = arg('rate', 1000);
const SECONDS = arg('seconds', 10);
const symbols = loadUniverse('bist30').instruments.map((i) => i.symbol);

interface Sample {
  t: number;
  quotes: number;
  messages: number;
  ended: number;
}

async function phase(nc: NatsConnection, port: number, epoch: number, seqs: Map<string, number>) {
  const counter = runTs(
    'services/price-cache/bench/stream-counter.ts',
    {},
    { stdout: 'pipe', args: [String(port), String(STREAMS), '{"all":true}'] },
  );
  const samples: Sample[] = [];
  createInterface({ input: counter.stdout! }).on('line', (l) =>
    samples.push({ ...(JSON.parse(l) as Sample), t: performance.now() }),
  );
  try {
    await sleep(2000); // streams open, snapshots delivered
    const base = samples.at(-1) ?? { t: performance.now(), quotes: 0, messages: 0, ended: 0 };
    const started = performance.now();
    let published = 0;
    for (let w = 0; performance.now() - started < SECONDS * 1000; w++) {
      const wait = started + w * 10 - performance.now();
      if (wait > 0) await sleep(wait);
      const n = Math.floor(((w + 1) * RATE) / 100) - Math.floor((w * RATE) / 100);
      for (let i = 0; i < n; i++) {
        const symbol = symbols[published++ % symbols.length]!;
        const seq = (seqs.get(symbol) ?? 0) + 1;
        seqs.set(symbol, seq);
        const q = Quote.fromPartial({
          symbol,
          seq,
          epoch,
          last: 100 + (seq % 50) / 4,
          volume: seq,
          eventTimeMs: Date.now(),
          appliedTimeMs: Date.now(),
        });
        nc.publish(`quotes.${symbol}`, Quote.encode(q).finish());
      }
    }
    const publishSeconds = (performance.now() - started) / 1000;
    await sleep(1500); // let the last updates arrive
    const end = samples.at(-1)!;
    const seconds = publishSeconds;
    return {
      offeredUpdatesPerSecond: Math.round(published / publishSeconds),
      offeredDeliveriesPerSecond: Math.round((published * STREAMS) / publishSeconds),
      quotesPerSecond: Math.round((end.quotes - base.quotes) / seconds),
      messagesPerSecond: Math.round((end.messages - base.messages) / seconds),
      streamsEnded: end.ended,
    };
  } finally {
    await stopChild(counter);
  }
}

const infra = await startInfra();
const children: Array<ReturnType<typeof runTs>> = [];
try {
  const nc = await connect({ servers: infra.nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'TICKS', subjects: ['ticks.>'], storage: 'file' as never });
  const pcPort = await freePort();
  const pcMetrics = await freePort();
  children.push(runTs('services/price-cache/src/main.ts', priceCacheEnv(infra, pcPort, pcMetrics)));
  const bare = runTs(
    'services/price-cache/bench/bare-server.ts',
    {},
    { stdout: 'pipe', args: ['stream', infra.nats.url] },
  );
  children.push(bare);
  const [line] = (await once(bare.stdout!, 'data')) as [Buffer];
  const barePort = Number(/listening (\d+)/.exec(line.toString())![1]);
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${pcMetrics}/readyz`)).ok, 'price-cache ready');
  const redis = new Redis(infra.redis.url);
  const epoch = Number(await redis.get(KEY.epoch));
  redis.disconnect();

  console.log(
    `${STREAMS} streams (all symbols), ${RATE} updates/s over ${symbols.length} symbols on quotes.>, ${SECONDS} s per server`,
  );
  const seqs = new Map<string, number>();
  const bareResult = await phase(nc, barePort, epoch, seqs);
  const pcResult = await phase(nc, pcPort, epoch, seqs);
  const conflated = await metric(pcMetrics, 'tickmesh_conflated_updates_total');
  const row = (name: string, r: typeof pcResult) =>
    `${name.padEnd(12)} ${String(r.quotesPerSecond).padStart(8)} quotes/s delivered   ${String(r.messagesPerSecond).padStart(7)} messages/s   (offered ${r.offeredDeliveriesPerSecond} quotes/s, streams ended ${r.streamsEnded})`;
  console.log(row('bare grpc-js', bareResult));
  console.log(row('price-cache', pcResult));
  console.log(
    `price-cache conflated updates: ${conflated}; ratio ${(100 * (pcResult.quotesPerSecond / bareResult.quotesPerSecond)).toFixed(1)}% of bare; goal >= 70000 quotes/s`,
  );
  console.log(JSON.stringify({ bare: bareResult, priceCache: { ...pcResult, conflated } }));
  await nc.close();
} finally {
  for (const c of children) await stopChild(c);
  await infra.stop();
}
