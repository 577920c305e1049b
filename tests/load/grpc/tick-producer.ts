// The PublishTicks counting producer: streams ticks in batches with its own
// producer_id and increasing producer_seq, keeps at most `window` ticks
// unacknowledged, and counts ticks acked per second. It remembers what every
// acked tick was, so the end-to-end scenario can check that exactly those
// ticks were applied (count, volume, last price per symbol). After a broken
// stream it reconnects and resends everything not yet acked, as a real
// producer must.
//
//   node --import tsx tests/load/grpc/tick-producer.ts --target 127.0.0.1:50051 --producer-id p1 \
//     --symbols BENCH-00,BENCH-01 [--batch 100] [--window 10000] [--rate 0] [--duration-ms 10000]
//
// Prints progress lines and `RESULT {...}` (ProducerResult).
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, status, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  IngestServiceClient,
  type PublishTicksRequest,
  type PublishTicksResponse,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import { encodeHistogram, newLatencyHistogram, summarize, type LatencySummary } from '../lib/histogram.js';
import { isMain, printResult } from '../lib/child.js';

export interface ProducerOptions {
  target: string;
  producerId: string;
  symbols: string[];
  /** Ticks per request. */
  batch: number;
  /** Most ticks sent and not yet acked. */
  window: number;
  /** Ticks per second; 0 = as fast as acks allow. */
  rate: number;
  durationMs: number;
  /** Ticks acked before this much time passed are not counted in the rate. */
  warmupMs?: number;
  /** Price grid: prices are integers of 10^-decimals (4 → tick 0.0001). */
  decimals?: number;
  /** Starting price in minor units (default 100.0000). */
  startUnits?: number;
  /** How long to wait for the last acks after sending stops. */
  drainTimeoutMs?: number;
  maxReconnects?: number;
  onProgress?: (p: { elapsedMs: number; sent: number; acked: number }) => void;
}

export interface SymbolTally {
  /** Acked ticks of this symbol (rejected ones excluded). */
  count: number;
  volume: number;
  /** Price of the acked tick with the highest producer_seq. */
  lastPrice: number;
  lastSeq: number;
}

export interface ProducerResult {
  producerId: string;
  sent: number;
  acked: number;
  rejected: number;
  /** Sent but never acked (the stream broke for good, or the drain timed out). */
  unacked: number;
  /** Ticks acked per second during the sending window (after the warm-up). */
  ackedPerSecond: number;
  sendWindowMs: number;
  /** From sending a batch to the ack covering it. */
  ackLatency: LatencySummary;
  ackLatencyHistogram: string;
  reconnects: number;
  errors: Record<string, number>;
  rejections: Record<string, number>;
  perSymbol: Record<string, SymbolTally>;
}

export async function runProducer(opts: ProducerOptions): Promise<ProducerResult> {
  if (opts.symbols.length === 0) throw new Error('no symbols');
  const decimals = opts.decimals ?? 4;
  const scale = 10 ** decimals;
  const window = Math.max(opts.batch, opts.window);
  // Ring of unacked ticks, indexed by seq % window.
  const ringSymbol = new Int32Array(window);
  const ringSize = new Int32Array(window);
  const ringUnits = new Float64Array(window);
  const ringRejected = new Uint8Array(window);
  const ringSentAt = new Float64Array(window);
  const units = opts.symbols.map((_, i) => (opts.startUnits ?? 100 * scale) + i * scale);
  const perSymbol: SymbolTally[] = opts.symbols.map(() => ({
    count: 0,
    volume: 0,
    lastPrice: 0,
    lastSeq: 0,
  }));
  const ackLatency = newLatencyHistogram();
  const errors: Record<string, number> = {};
  const rejections: Record<string, number> = {};
  let rng = 0x9e3779b9 ^ opts.producerId.length;
  const random = () => {
    // xorshift32: deterministic per producer, cheap.
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) / 4294967296;
  };

  let nextSeq = 1; // next seq to create
  let ackedThrough = 0;
  let rejected = 0;
  let ackedInWindow = 0;
  let reconnects = 0;
  const client = new IngestServiceClient(opts.target, credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 20_000,
  });
  const started = performance.now();
  const warmupEnd = started + (opts.warmupMs ?? 0);
  let sendEnd = started + opts.durationMs;

  let call: ClientDuplexStream<PublishTicksRequest, PublishTicksResponse> | undefined;
  let broken: Promise<void> = Promise.resolve();
  let onAck: (() => void) | undefined;

  const fold = (through: number) => {
    const now = performance.now();
    for (let seq = ackedThrough + 1; seq <= through; seq++) {
      const i = seq % window;
      if (ringRejected[i]) continue;
      const t = perSymbol[ringSymbol[i]!]!;
      t.count++;
      t.volume += ringSize[i]!;
      t.lastPrice = ringUnits[i]! / scale;
      t.lastSeq = seq;
      if (now >= warmupEnd && now <= sendEnd) ackedInWindow++;
    }
    const last = through % window;
    if (through > ackedThrough)
      ackLatency.recordValue(Math.max(1, Math.round((now - ringSentAt[last]!) * 1000)));
    ackedThrough = through;
  };

  const open = () => {
    const c = client.publishTicks();
    call = c;
    broken = new Promise<void>((resolve) => {
      c.on('data', (msg: PublishTicksResponse) => {
        if (msg.rejection) {
          const seq = msg.rejection.producerSeq;
          if (seq > ackedThrough && seq < nextSeq && !ringRejected[seq % window]) {
            ringRejected[seq % window] = 1;
            rejected++;
            const key = `${msg.rejection.field}: ${msg.rejection.reason}`.slice(0, 160);
            rejections[key] = (rejections[key] ?? 0) + 1;
          }
        }
        if (msg.ack && msg.ack.storedThroughSeq > ackedThrough) {
          fold(Math.min(msg.ack.storedThroughSeq, nextSeq - 1));
          onAck?.();
        }
      });
      c.on('error', (err: { code?: number; details?: string }) => {
        const key = `${status[err.code ?? status.UNKNOWN] ?? err.code}: ${err.details ?? ''}`.slice(0, 200);
        errors[key] = (errors[key] ?? 0) + 1;
        resolve();
      });
      c.on('end', () => resolve());
    });
    void broken.then(() => {
      if (call === c) call = undefined;
      onAck?.();
    });
  };

  const waitForAckOrBreak = () =>
    new Promise<void>((resolve) => {
      onAck = () => {
        onAck = undefined;
        resolve();
      };
    });

  const makeTick = (seq: number, now: number): Tick => {
    const s = (seq - 1) % opts.symbols.length;
    // Random walk of +-3 ticks, kept positive.
    units[s] = Math.max(scale, units[s]! + Math.round((random() - 0.5) * 6));
    const size = 1 + Math.floor(random() * 500);
    const i = seq % window;
    ringSymbol[i] = s;
    ringSize[i] = size;
    ringUnits[i] = units[s]!;
    ringRejected[i] = 0;
    ringSentAt[i] = performance.now();
    return {
      symbol: opts.symbols[s]!,
      price: units[s]! / scale,
      size,
      producerId: opts.producerId,
      producerSeq: seq,
      eventTimeMs: now,
    };
  };

  const resend = (c: ClientDuplexStream<PublishTicksRequest, PublishTicksResponse>) => {
    // Everything above the last ack goes again, same seqs and contents.
    const now = Date.now();
    for (let from = ackedThrough + 1; from < nextSeq; from += opts.batch) {
      const ticks: Tick[] = [];
      for (let seq = from; seq < Math.min(nextSeq, from + opts.batch); seq++) {
        const i = seq % window;
        ticks.push({
          symbol: opts.symbols[ringSymbol[i]!]!,
          price: ringUnits[i]! / scale,
          size: ringSize[i]!,
          producerId: opts.producerId,
          producerSeq: seq,
          eventTimeMs: now,
        });
      }
      c.write({ tick: undefined, ticks });
    }
  };

  open();
  let progressAt = started + 1000;
  let budget = 0;
  let budgetAt = started;
  for (;;) {
    const now = performance.now();
    if (now >= sendEnd) break;
    if (now >= progressAt) {
      progressAt += 1000;
      opts.onProgress?.({ elapsedMs: now - started, sent: nextSeq - 1, acked: ackedThrough });
    }
    if (!call) {
      if (reconnects >= (opts.maxReconnects ?? 5)) break;
      reconnects++;
      await sleep(Math.min(2000, 100 * 2 ** reconnects));
      open();
      resend(call!);
      continue;
    }
    if (opts.rate > 0) {
      budget = Math.min(opts.batch * 4, budget + ((now - budgetAt) / 1000) * opts.rate);
      budgetAt = now;
      if (budget < opts.batch) {
        await sleep(Math.max(1, ((opts.batch - budget) / opts.rate) * 1000));
        continue;
      }
    }
    if (nextSeq - 1 - ackedThrough + opts.batch > window) {
      await Promise.race([waitForAckOrBreak(), sleep(Math.max(1, sendEnd - now))]);
      continue;
    }
    const wall = Date.now();
    const ticks: Tick[] = [];
    for (let k = 0; k < opts.batch; k++) ticks.push(makeTick(nextSeq++, wall));
    if (opts.rate > 0) budget -= ticks.length;
    const c = call;
    if (!c.write({ tick: undefined, ticks })) {
      await Promise.race([new Promise((r) => c.once('drain', r)), broken, sleep(Math.max(1, sendEnd - now))]);
    } else if ((nextSeq & 0x3ff) < opts.batch) {
      // Let acks in now and then even when the transport never pushes back.
      await new Promise((r) => setImmediate(r));
    }
  }
  const sendWindowMs = Math.min(performance.now(), sendEnd) - Math.max(started, Math.min(warmupEnd, sendEnd));
  sendEnd = performance.now();

  // Drain: wait for the acks of everything sent (resending after a break).
  const drainDeadline = performance.now() + (opts.drainTimeoutMs ?? 30_000);
  while (ackedThrough < nextSeq - 1 && performance.now() < drainDeadline) {
    if (!call) {
      if (reconnects >= (opts.maxReconnects ?? 5)) break;
      reconnects++;
      await sleep(Math.min(2000, 100 * 2 ** reconnects));
      open();
      resend(call!);
      continue;
    }
    await Promise.race([waitForAckOrBreak(), sleep(500)]);
  }
  if (call) {
    const c = call;
    c.end();
    await Promise.race([broken, sleep(5000)]);
    c.cancel();
  }
  client.close();
  opts.onProgress?.({ elapsedMs: performance.now() - started, sent: nextSeq - 1, acked: ackedThrough });

  const tallies: Record<string, SymbolTally> = {};
  opts.symbols.forEach((s, i) => (tallies[s] = perSymbol[i]!));
  const sent = nextSeq - 1;
  return {
    producerId: opts.producerId,
    sent,
    acked: perSymbol.reduce((a, t) => a + t.count, 0),
    rejected,
    unacked: sent - ackedThrough,
    ackedPerSecond: sendWindowMs > 0 ? Math.round(ackedInWindow / (sendWindowMs / 1000)) : 0,
    sendWindowMs: Math.round(sendWindowMs),
    ackLatency: summarize(ackLatency),
    ackLatencyHistogram: encodeHistogram(ackLatency),
    reconnects,
    errors,
    rejections,
    perSymbol: tallies,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50051' },
      'producer-id': { type: 'string', default: `bench-${process.pid}` },
      symbols: { type: 'string', default: 'BENCH-00' },
      batch: { type: 'string', default: '100' },
      window: { type: 'string', default: '10000' },
      rate: { type: 'string', default: '0' },
      'duration-ms': { type: 'string', default: '10000' },
      'warmup-ms': { type: 'string', default: '0' },
      decimals: { type: 'string', default: '4' },
      'drain-timeout-ms': { type: 'string', default: '30000' },
    },
  });
  const result = await runProducer({
    target: values.target,
    producerId: values['producer-id'],
    symbols: values.symbols.split(',').filter(Boolean),
    batch: Number(values.batch),
    window: Number(values.window),
    rate: Number(values.rate),
    durationMs: Number(values['duration-ms']),
    warmupMs: Number(values['warmup-ms']),
    decimals: Number(values.decimals),
    drainTimeoutMs: Number(values['drain-timeout-ms']),
    onProgress: (p) =>
      process.stdout.write(`PROGRESS ${JSON.stringify({ ...p, elapsedMs: Math.round(p.elapsedMs) })}\n`),
  });
  printResult(result);
  process.exit(0);
}

if (isMain(import.meta.url)) void main();
