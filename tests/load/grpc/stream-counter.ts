// The counting client for StreamQuotes (ghz counts calls, not messages):
// opens N concurrent streams, and over a measured window counts responses
// and the quotes inside them (a response may carry several), quote delay
// from each quote's event time, conflated quotes and seq gaps per stream.
//
//   node --import tsx tests/load/grpc/stream-counter.ts --target 127.0.0.1:50052 --streams 100 \
//     [--symbols A,B | --all] [--warmup-ms 2000] [--duration-ms 10000] [--connections 1]
//
// Prints progress lines and then `RESULT {...}` (StreamCountResult).
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  credentials,
  makeGenericClientConstructor,
  status,
  type Client,
  type ClientReadableStream,
} from '@grpc/grpc-js';
import { StreamQuotesResponse_Kind, type StreamQuotesRequest } from '@tickmesh/kit/proto';
import { leanStreamQuotesDefinition, type LeanStreamResponse } from './lean-quotes.js';
import {
  SeqTable,
  summarizeDelivery,
  SymbolSlots,
  type DeliverySummary,
  type Tally,
} from '../lib/delivery.js';
import { encodeHistogram, LatencyRecorder, summarize, type LatencySummary } from '../lib/histogram.js';
import { isMain, printResult } from '../lib/child.js';

export interface StreamCountOptions {
  target: string;
  streams: number;
  symbols?: string[];
  all?: boolean;
  warmupMs: number;
  durationMs: number;
  connections?: number;
  /** Called about once a second while measuring. */
  onProgress?: (p: { elapsedMs: number; quotes: number; responses: number; open: number }) => void;
}

export interface StreamCountResult {
  streams: number;
  /** Streams that received their snapshot before measuring started. */
  streamsReady: number;
  /** Streams still open when measuring ended. */
  streamsOpenAtEnd: number;
  measuredMs: number;
  responses: number;
  quotes: number;
  quotesPerSecond: number;
  responsesPerSecond: number;
  quotesPerResponse: number;
  conflatedQuotes: number;
  heartbeats: number;
  resets: number;
  /** Delay from each quote's event time to its arrival (ms resolution of the event time). */
  delay: LatencySummary;
  delayHistogram: string;
  /** Seqs per stream and symbol between measuring start and the highest seq seen. */
  delivery: DeliverySummary;
  errors: Record<string, number>;
}

type LeanClient = Client & {
  streamQuotes(req: StreamQuotesRequest): ClientReadableStream<LeanStreamResponse>;
};
const LeanPriceClient = makeGenericClientConstructor(
  leanStreamQuotesDefinition,
  'tickmesh.price.v1.PriceService',
) as unknown as new (
  ...args: ConstructorParameters<ReturnType<typeof makeGenericClientConstructor>>
) => LeanClient;

interface StreamState {
  call: ClientReadableStream<LeanStreamResponse>;
  /** Seqs per symbol slot of this stream (one table per stream, as a WebSocket load client keeps one). */
  seqs: SeqTable;
  ready: boolean;
  open: boolean;
}

export async function countStreamQuotes(opts: StreamCountOptions): Promise<StreamCountResult> {
  const nConn = Math.max(1, opts.connections ?? 1);
  const clients = Array.from(
    { length: nConn },
    (_, i) =>
      // A distinct option per client gives each its own connection.
      new LeanPriceClient(opts.target, credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        'grpc.keepalive_time_ms': 20_000,
        'tickmesh.bench.connection': i,
      } as never),
  );
  const delay = new LatencyRecorder();
  const slots = new SymbolSlots();
  const errors: Record<string, number> = {};
  let measuring = false;
  let responses = 0;
  let quotes = 0;
  let conflated = 0;
  let heartbeats = 0;
  let resets = 0;
  const states: StreamState[] = [];
  const request = {
    symbols: opts.all ? [] : (opts.symbols ?? []),
    all: opts.all ?? !opts.symbols?.length,
    maxUpdatesPerSecond: 0,
  };

  for (let i = 0; i < opts.streams; i++) {
    const call = clients[i % nConn]!.streamQuotes(request);
    const st: StreamState = { call, seqs: new SeqTable(), ready: false, open: true };
    states.push(st);
    call.on('data', (msg: LeanStreamResponse) => {
      const nowUs = (performance.timeOrigin + performance.now()) * 1000;
      const isSnapshot = msg.kind === StreamQuotesResponse_Kind.KIND_SNAPSHOT;
      if (isSnapshot) st.ready = true;
      if (msg.kind === StreamQuotesResponse_Kind.KIND_HEARTBEAT) {
        if (measuring) heartbeats++;
        return;
      }
      if (msg.kind === StreamQuotesResponse_Kind.KIND_RESET) {
        if (measuring) resets++;
        return;
      }
      for (const q of msg.quotes) {
        const slot = slots.slotOf(q.symbol);
        if (isSnapshot) st.seqs.snapshot(slot, q.epoch, q.seq);
        else st.seqs.quote(slot, q.epoch, q.seq);
      }
      if (!measuring || isSnapshot) return;
      responses++;
      quotes += msg.quotes.length;
      for (const q of msg.quotes) {
        if (q.conflated) conflated++;
        if (q.eventTimeMs > 0) delay.record(Math.max(1, Math.round(nowUs - q.eventTimeMs * 1000)));
      }
    });
    call.on('error', (err: { code?: number; details?: string }) => {
      st.open = false;
      if (err.code === status.CANCELLED) return;
      const key = `${status[err.code ?? status.UNKNOWN] ?? err.code}: ${err.details ?? ''}`.slice(0, 200);
      errors[key] = (errors[key] ?? 0) + 1;
    });
    call.on('end', () => (st.open = false));
  }

  // Warm-up: until every stream has its snapshot (or the warm-up runs out).
  const warmupEnd = Date.now() + opts.warmupMs;
  while (Date.now() < warmupEnd && !states.every((s) => s.ready || !s.open)) await sleep(50);
  if (Date.now() < warmupEnd) await sleep(Math.min(500, warmupEnd - Date.now()));
  const streamsReady = states.filter((s) => s.ready).length;
  for (const s of states) s.seqs.startMeasuring();
  measuring = true;
  const started = performance.now();
  const end = started + opts.durationMs;
  while (performance.now() < end) {
    await sleep(Math.min(1000, end - performance.now()));
    opts.onProgress?.({
      elapsedMs: performance.now() - started,
      quotes,
      responses,
      open: states.filter((s) => s.open).length,
    });
  }
  measuring = false;
  const measuredMs = performance.now() - started;
  const streamsOpenAtEnd = states.filter((s) => s.open).length;
  for (const s of states) s.call.cancel();
  for (const c of clients) c.close();

  const perStream: Tally[] = states.map((s) => s.seqs.tally());
  const delayHistogram = delay.drained;
  const seconds = measuredMs / 1000;
  return {
    streams: opts.streams,
    streamsReady,
    streamsOpenAtEnd,
    measuredMs: Math.round(measuredMs),
    responses,
    quotes,
    quotesPerSecond: Math.round(quotes / seconds),
    responsesPerSecond: Math.round(responses / seconds),
    quotesPerResponse: responses ? Math.round((quotes / responses) * 100) / 100 : 0,
    conflatedQuotes: conflated,
    heartbeats,
    resets,
    delay: summarize(delayHistogram),
    delayHistogram: encodeHistogram(delayHistogram),
    delivery: summarizeDelivery(perStream),
    errors,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50052' },
      streams: { type: 'string', default: '100' },
      symbols: { type: 'string', default: '' },
      all: { type: 'boolean', default: false },
      'warmup-ms': { type: 'string', default: '2000' },
      'duration-ms': { type: 'string', default: '10000' },
      connections: { type: 'string', default: '1' },
    },
  });
  const symbols = values.symbols ? values.symbols.split(',').filter(Boolean) : [];
  const result = await countStreamQuotes({
    target: values.target,
    streams: Number(values.streams),
    symbols,
    all: values.all || symbols.length === 0,
    warmupMs: Number(values['warmup-ms']),
    durationMs: Number(values['duration-ms']),
    connections: Number(values.connections),
    onProgress: (p) =>
      process.stdout.write(`PROGRESS ${JSON.stringify({ ...p, elapsedMs: Math.round(p.elapsedMs) })}\n`),
  });
  printResult(result);
  process.exit(0);
}

if (isMain(import.meta.url)) void main();
