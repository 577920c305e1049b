// End-to-end ingest: ticks published in per-partition batches straight into
// JetStream at a fixed rate (as the ticker does), applied by one price-cache
// process into Redis. Reports the applied rate and proves no loss: every
// symbol's final seq equals the number of ticks published for it. Then
// FLUSHALL, and the time until the rebuild restored every symbol's seq.
//
//   node --import tsx services/price-cache/bench/e2e-ingest.ts [--rate 25000] [--seconds 12]
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import type { Tick } from '@tickmesh/kit/proto';
import {
  defaultInstrument,
  loadUniverse,
  batchMessageId,
  encodeBatch,
  partitionOf,
  tickSubject,
} from '@tickmesh/kit';
import { KEY } from '../src/redis-store.js';
import { decodeQuoteState } from '../src/state.js';
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

const RATE = arg('rate', 25_000);
const SECONDS = arg('seconds', 12);
const PARTITIONS = 8;
const WINDOW_MS = 10;

const universe = loadUniverse('bist30');
const symbols = [
  ...universe.instruments.map((i) => i.symbol),
  ...Array.from({ length: 70 }, (_, i) => `SYN${String(i).padStart(3, '0')}`),
];
const instrumentOf = (s: string) => universe.bySymbol.get(s) ?? defaultInstrument(s, 100);

const infra = await startInfra();
let child: ReturnType<typeof runTs> | undefined;
try {
  const nc = await connect({ servers: infra.nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'TICKS',
    subjects: ['ticks.>'],
    storage: 'file' as never,
    duplicate_window: 120_000_000_000,
  });
  const js = jetstream(nc);
  const metricsPort = await freePort();
  child = runTs(
    'services/price-cache/src/main.ts',
    priceCacheEnv(infra, await freePort(), metricsPort, { TICK_PARTITIONS: String(PARTITIONS) }),
  );
  await waitUntil(
    async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok,
    'price-cache ready',
  );

  const counts = new Map<string, number>();
  const walk = new Map<string, number>();
  let seq = 0;
  let published = 0;
  let behindMs = 0;
  const makeTick = (i: number): Tick => {
    const symbol = symbols[i % symbols.length]!;
    const inst = instrumentOf(symbol);
    const k = (walk.get(symbol) ?? 0) + (Math.random() < 0.5 ? -1 : 1);
    walk.set(symbol, Math.max(-50, Math.min(50, k)));
    counts.set(symbol, (counts.get(symbol) ?? 0) + 1);
    const price = Number((inst.referencePrice + k * inst.tickSize).toFixed(inst.decimals));
    return {
      symbol,
      price,
      size: 1 + (i % 100),
      producerId: 'bench',
      producerSeq: ++seq,
      eventTimeMs: Date.now(),
      bid: undefined,
      ask: undefined,
    };
  };

  console.log(
    `publishing ${RATE} ticks/s for ${SECONDS} s over ${symbols.length} symbols, ${PARTITIONS} partitions, one batch per partition every ${WINDOW_MS} ms`,
  );
  const samples: Array<{ t: number; applied: number }> = [];
  const sampler = setInterval(() => {
    void metric(metricsPort, 'tickmesh_ticks_applied_total').then((applied) =>
      samples.push({ t: performance.now(), applied }),
    );
  }, 1000);
  const cpuBefore = await metric(metricsPort, 'process_cpu_seconds_total');
  const started = performance.now();
  const perWindow = (RATE * WINDOW_MS) / 1000;
  for (let w = 0; performance.now() - started < SECONDS * 1000; w++) {
    const due = started + w * WINDOW_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    else behindMs = Math.max(behindMs, -wait);
    const byPartition = new Map<number, Tick[]>();
    const n = Math.floor((w + 1) * perWindow) - Math.floor(w * perWindow);
    for (let i = 0; i < n; i++) {
      const t = makeTick(published + i);
      const p = partitionOf(t.symbol, PARTITIONS);
      (byPartition.get(p) ?? byPartition.set(p, []).get(p)!).push(t);
    }
    published += n;
    await Promise.all(
      [...byPartition].map(([p, ticks]) =>
        js.publish(tickSubject(p), encodeBatch(ticks), {
          msgID: batchMessageId('bench', p, ticks[0]!.producerSeq, ticks.at(-1)!.producerSeq),
        }),
      ),
    );
  }
  const publishSeconds = (performance.now() - started) / 1000;
  const appliedAtEnd = await metric(metricsPort, 'tickmesh_ticks_applied_total');
  await waitUntil(
    async () => (await metric(metricsPort, 'tickmesh_ticks_applied_total')) >= published,
    'every tick applied',
    180_000,
  );
  const drainSeconds = (performance.now() - started) / 1000 - publishSeconds;
  const cpuSeconds = (await metric(metricsPort, 'process_cpu_seconds_total')) - cpuBefore;
  clearInterval(sampler);

  const redis = new Redis(infra.redis.url);
  let lost = 0;
  for (const [symbol, n] of counts) {
    const stored = decodeQuoteState(await redis.hgetall(KEY.quote(symbol)), symbol)?.seq ?? 0;
    if (stored !== n) {
      lost++;
      console.log(`MISMATCH ${symbol}: seq ${stored}, published ${n}`);
    }
  }
  // Then empty Redis (as a restart without persistence would) and time the rebuild to the same seqs.
  const flushed = performance.now();
  await infra.redis.flushAll();
  await waitUntil(
    async () => {
      if ((await redis.get(KEY.epoch)) === null) return false;
      for (const [symbol, n] of counts)
        if ((decodeQuoteState(await redis.hgetall(KEY.quote(symbol)), symbol)?.seq ?? 0) !== n) return false;
      return true;
    },
    'the rebuild',
    120_000,
  );
  const rebuildWallMs = performance.now() - flushed;
  const rebuildMs = (await metric(metricsPort, 'tickmesh_cache_last_rebuild_seconds')) * 1000;
  const replayed = await metric(metricsPort, 'tickmesh_cache_last_rebuild_messages');
  redis.disconnect();
  // Steady rate: applied ticks per second between the 2nd and the last sample taken while publishing.
  const during = samples.filter((s) => s.t - started <= publishSeconds * 1000);
  const a = during[1] ?? during[0]!;
  const b = during.at(-1)!;
  const steady = (b.applied - a.applied) / ((b.t - a.t) / 1000);
  const overall = published / (publishSeconds + drainSeconds);
  const lag = await lagQuantiles(metricsPort);
  console.log(
    JSON.stringify({
      offeredTicksPerSecond: Math.round(published / publishSeconds),
      published,
      appliedWhilePublishing: appliedAtEnd,
      steadyAppliedTicksPerSecond: Math.round(steady),
      overallTicksPerSecond: Math.round(overall),
      // Load-independent: CPU the price-cache spent per applied tick (what sets its ceiling on an idle core).
      priceCacheCpuMicrosPerTick: Number(((cpuSeconds * 1e6) / published).toFixed(1)),
      drainSecondsAfterPublishing: Number(drainSeconds.toFixed(2)),
      publisherFellBehindMs: Math.round(behindMs),
      applyLagSeconds: lag,
      symbolsWithLoss: lost,
      flushAllToExactSeqsMs: Math.round(rebuildWallMs),
      rebuildMs: Math.round(rebuildMs),
      rebuildReplayedMessages: replayed,
    }),
  );
  console.log(
    lost === 0 ? `OK: no loss (every symbol's seq = ticks published for it)` : `LOSS in ${lost} symbols`,
  );
  await nc.close();
} finally {
  await stopChild(child);
  await infra.stop();
}

/** p50/p99 of tickmesh_tick_apply_lag_seconds from its buckets (upper bounds). */
async function lagQuantiles(port: number): Promise<{ p50: string; p99: string }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const buckets = text
    .split('\n')
    .filter((l) => l.startsWith('tickmesh_tick_apply_lag_seconds_bucket'))
    .map((l) => ({ le: /le="([^"]+)"/.exec(l)![1]!, n: Number(l.split(' ').at(-1)) }));
  const total = buckets.at(-1)?.n ?? 0;
  const q = (f: number) => buckets.find((b) => b.n >= total * f)?.le ?? '?';
  return { p50: `<= ${q(0.5)}`, p99: `<= ${q(0.99)}` };
}
