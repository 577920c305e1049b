// The truth the fault tests compare against, computed independently of the price-cache:
// the TICKS stream read back in order (an ordered consumer), folded into a per-symbol
// model. A tick is identified by (producer_id, producer_seq); a repeat of an id already
// seen for that symbol is a resend and does not count. So, for each symbol:
//   seq    == number of distinct ticks (of the current trading day or earlier days)
//   last   == price of the last distinct tick, in stream order
//   volume == sum of the sizes of the distinct ticks of the symbol's current trading day
// (a tick of a day older than the symbol's current day is dropped, as the protocol says).
// The comparison with Redis then proves "nothing lost, nothing applied twice".
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import type { Tick } from '@tickmesh/kit/proto';
import { toUnits, sessionDate, defaultInstrument, type Universe, decodeBatch } from '@tickmesh/kit';
import { decodeQuoteState, type QuoteState } from '../../../services/price-cache/src/state.js';

export interface SymbolModel {
  /** Distinct ticks applied (what the quote's seq must be). */
  count: number;
  /** Last price in minor units. */
  last: number;
  volume: number;
  day: string;
  /** `${producer_id}\u0000${producer_seq}` of every tick seen for this symbol. */
  ids: Set<string>;
}

export class TickModel {
  readonly symbols = new Map<string, SymbolModel>();
  /** Stream sequence of the last message folded in. */
  lastStreamSeq = 0;
  messages = 0;
  ticks = 0;
  duplicates = 0;
  staleDay = 0;
  /** producer_seqs seen in the stream, for the producers listed in `tracked`. */
  private readonly seqsOf = new Map<string, Set<number>>();

  constructor(
    private readonly universe: Universe,
    tracked: string[] = [],
  ) {
    for (const p of tracked) this.seqsOf.set(p, new Set());
  }

  private decimalsOf(symbol: string): number {
    return (this.universe.bySymbol.get(symbol) ?? defaultInstrument(symbol)).decimals;
  }

  /** Folds one stream message (a TickBatch) in; messages must come in stream order. */
  apply(streamSeq: number, ticks: readonly Tick[]): void {
    if (streamSeq <= this.lastStreamSeq) throw new Error(`message ${streamSeq} after ${this.lastStreamSeq}`);
    this.lastStreamSeq = streamSeq;
    this.messages++;
    for (const t of ticks) {
      this.ticks++;
      this.seqsOf.get(t.producerId)?.add(t.producerSeq);
      const id = `${t.producerId}\u0000${t.producerSeq}`;
      let m = this.symbols.get(t.symbol);
      if (m?.ids.has(id)) {
        this.duplicates++;
        continue;
      }
      const day = sessionDate(t.eventTimeMs, this.universe.session.timeZone);
      const units = toUnits(t.price, this.decimalsOf(t.symbol));
      if (!m) {
        m = { count: 0, last: units, volume: 0, day, ids: new Set() };
        this.symbols.set(t.symbol, m);
      }
      m.ids.add(id);
      if (day < m.day) {
        this.staleDay++;
        continue;
      }
      if (day > m.day) {
        m.day = day;
        m.volume = 0;
      }
      m.count++;
      m.last = units;
      m.volume += t.size;
    }
  }

  /** True when the stream holds this producer's tick (only for tracked producers). */
  has(producerId: string, producerSeq: number): boolean {
    const set = this.seqsOf.get(producerId);
    if (!set) throw new Error(`producer ${producerId} is not tracked`);
    return set.has(producerSeq);
  }
}

/**
 * Reads the stream from where the model stopped up to its current last message.
 * Returns the number of messages folded in.
 */
export async function catchUp(
  nc: NatsConnection,
  model: TickModel,
  stream = 'TICKS',
  idleTimeoutMs = 10_000,
): Promise<number> {
  // One reader of a model at a time: a test may keep folding in the background (a stream at
  // its byte limit deletes applied messages) while the harness folds for its checks.
  const previous = catchingUp.get(model) ?? Promise.resolve(0);
  const run = previous
    .catch(() => 0)
    .then(() =>
      readStream(nc, model.lastStreamSeq + 1, (seq, ticks) => model.apply(seq, ticks), stream, idleTimeoutMs),
    );
  catchingUp.set(model, run);
  return run;
}

const catchingUp = new WeakMap<TickModel, Promise<number>>();

/**
 * Every message of the stream from `fromSeq` up to the stream's last message at call time,
 * in order, decoded, through an ordered consumer. Returns the number of messages read.
 */
export async function readStream(
  nc: NatsConnection,
  fromSeq: number,
  onMessage: (streamSeq: number, ticks: Tick[]) => void,
  stream = 'TICKS',
  idleTimeoutMs = 10_000,
): Promise<number> {
  const jsm = await jetstreamManager(nc, { timeout: 5000 });
  const info = await jsm.streams.info(stream);
  const target = info.state.last_seq;
  if (target < fromSeq) return 0;
  if (fromSeq > 1 && info.state.first_seq > fromSeq)
    throw new Error(`the stream lost messages ${fromSeq}..${info.state.first_seq - 1}`);
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, {
    filter_subjects: 'ticks.>',
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(1, fromSeq),
  });
  const messages = await consumer.consume({ max_messages: 2000 });
  let n = 0;
  let last = fromSeq - 1;
  let idle: NodeJS.Timeout | undefined;
  let stalled = false;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = true;
      void messages.close();
    }, idleTimeoutMs);
  };
  try {
    arm();
    for await (const m of messages) {
      arm();
      onMessage(m.seq, decodeBatch(m.data));
      last = m.seq;
      n++;
      if (m.seq >= target) break;
    }
  } finally {
    clearTimeout(idle);
    await messages.close();
  }
  if (stalled) throw new Error(`reading the stream stalled at ${last} (target ${target})`);
  return n;
}

/** The price-cache's quote state of each symbol, read straight from Redis (docs/price-cache.md keys). */
export async function readRedisQuotes(redis: Redis): Promise<Map<string, QuoteState>> {
  const symbols = await redis.smembers('tm:symbols');
  const pipeline = redis.pipeline();
  for (const s of symbols) pipeline.hgetall(`tm:q:${s}`);
  const results = (await pipeline.exec()) ?? [];
  const out = new Map<string, QuoteState>();
  symbols.forEach((s, i) => {
    const [err, hash] = results[i] ?? [];
    if (err) throw err;
    const state = decodeQuoteState(hash as Record<string, string>, s);
    if (state) out.set(s, state);
  });
  return out;
}

/** Every difference between the model and the stored quotes (empty = equal). */
export function compareWithRedis(model: TickModel, stored: Map<string, QuoteState>): string[] {
  const problems: string[] = [];
  for (const [symbol, m] of model.symbols) {
    const s = stored.get(symbol);
    if (!s) {
      problems.push(`${symbol}: ${m.count} ticks in the stream, no quote in Redis`);
      continue;
    }
    if (s.seq !== m.count)
      problems.push(
        `${symbol}: seq ${s.seq} in Redis, ${m.count} distinct ticks in the stream (${s.seq < m.count ? 'lost' : 'applied twice'}: ${Math.abs(m.count - s.seq)})`,
      );
    else if (s.last !== m.last) problems.push(`${symbol}: last ${s.last} in Redis, ${m.last} in the stream`);
    else if (s.day !== m.day)
      problems.push(`${symbol}: trading day ${s.day} in Redis, ${m.day} in the stream`);
    else if (s.volume !== m.volume)
      problems.push(`${symbol}: volume ${s.volume} in Redis, ${m.volume} in the stream`);
  }
  for (const symbol of stored.keys())
    if (!model.symbols.has(symbol)) problems.push(`${symbol}: quote in Redis without any tick in the stream`);
  return problems;
}
