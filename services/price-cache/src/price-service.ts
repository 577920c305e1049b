// PriceService: quotes from the in-process mirror (Redis on a miss), bars
// from Redis, and StreamQuotes sessions fed by the hub. Reads are served only
// while the replica is ready (Redis, NATS and the cache epoch all good):
// otherwise UNAVAILABLE, so a client retries on another replica instead of
// reading a cache that may be stale.
import { NotFoundError, ResourceExhaustedError, UnavailableError } from '@tickmesh/kit';
import type {
  GetBarsRequest,
  GetBarsResponse,
  GetQuoteRequest,
  GetQuoteResponse,
  ListQuotesRequest,
  ListQuotesResponse,
  StreamQuotesRequest,
} from '@tickmesh/kit/proto';
import type { GrpcServer, StreamContext } from '@tickmesh/kit';
import type { QuoteHub } from './fanout.js';
import type { PriceCacheMetrics } from './metrics.js';
import type { MirrorEntry, QuoteMirror } from './mirror.js';
import { QuoteStreamSession } from './quote-stream.js';
import { toBar } from './quotes.js';
import type { RedisStore } from './redis-store.js';
import { validGetBars, validGetQuote, validListQuotes, validStreamQuotes } from './validation.js';
import {
  ENCODED,
  encodeGetQuoteResponse,
  priceServiceDefinition,
  type PreEncoded,
  type StreamFrame,
} from './wire.js';

export const PRICE_SERVICE_NAME = 'tickmesh.price.v1.PriceService';

export interface PriceServiceDeps {
  mirror: QuoteMirror;
  hub: QuoteHub;
  store: RedisStore;
  /** Undefined when ready, else why not. */
  notReadyReason: () => string | undefined;
  decimalsOf: (symbol: string) => number;
  metrics: PriceCacheMetrics;
  stream: {
    heartbeatMs: number;
    slowTimeoutMs: number;
    maxPending: number;
    maxQuotesPerMessage: number;
    maxStreams: number;
  };
}

export class PriceServiceHandlers {
  constructor(private readonly d: PriceServiceDeps) {}

  async getQuote(req: GetQuoteRequest): Promise<PreEncoded<GetQuoteResponse>> {
    const symbol = validGetQuote(req);
    this.ensureReady();
    const e = this.d.mirror.get(symbol) ?? (await this.fromRedis([symbol]))[0];
    if (!e) throw new NotFoundError(`symbol ${symbol} has no quote`);
    // Sent as the bytes the applying replica encoded (the object is not needed).
    e.response ??= encodeGetQuoteResponse(e.bytes);
    return { quote: undefined, [ENCODED]: e.response };
  }

  async listQuotes(req: ListQuotesRequest): Promise<ListQuotesResponse> {
    const requested = validListQuotes(req);
    this.ensureReady();
    const symbols = requested.length > 0 ? requested : this.d.mirror.symbols();
    const found = new Map<string, MirrorEntry>();
    const misses: string[] = [];
    for (const s of symbols) {
      const e = this.d.mirror.get(s);
      if (e) found.set(s, e);
      else misses.push(s);
    }
    if (misses.length > 0) for (const e of await this.fromRedis(misses)) found.set(e.symbol, e);
    return {
      quotes: symbols.flatMap((s) => {
        const e = found.get(s);
        return e ? [e.quote] : [];
      }),
      missing: symbols.filter((s) => !found.has(s)),
    };
  }

  async getBars(req: GetBarsRequest): Promise<GetBarsResponse> {
    const r = validGetBars(req);
    this.ensureReady();
    if (!this.d.mirror.get(r.symbol) && (await this.fromRedis([r.symbol])).length === 0) {
      throw new NotFoundError(`symbol ${r.symbol} has no quote`);
    }
    const bars = await this.redis(() => this.d.store.bars(r.symbol, r.interval, r.from, r.to, r.limit));
    const decimals = this.d.decimalsOf(r.symbol);
    return { bars: bars.map((b) => toBar(r.symbol, r.interval, b, decimals)) };
  }

  async *streamQuotes(
    req: StreamQuotesRequest,
    ctx: StreamContext,
  ): AsyncGenerator<StreamFrame, void, undefined> {
    const r = validStreamQuotes(req);
    this.ensureReady();
    if (this.d.hub.size >= this.d.stream.maxStreams) {
      throw new ResourceExhaustedError(`at most ${this.d.stream.maxStreams} streams per replica`);
    }
    if (r.symbols !== 'all') {
      // Symbols the mirror lacks come from Redis first, so the snapshot taken
      // below (synchronously, as the stream joins the hub) has them.
      const misses = [...r.symbols].filter((s) => !this.d.mirror.get(s));
      if (misses.length > 0) await this.fromRedis(misses);
    }
    const { metrics } = this.d;
    const session = new QuoteStreamSession({
      symbols: r.symbols,
      minIntervalMs: r.minIntervalMs,
      heartbeatMs: this.d.stream.heartbeatMs,
      slowTimeoutMs: this.d.stream.slowTimeoutMs,
      maxPending: this.d.stream.maxPending,
      maxQuotesPerMessage: this.d.stream.maxQuotesPerMessage,
      onConflated: (n) => metrics.conflated.inc(n),
      onSlowEnd: () => metrics.streamsEndedSlow.inc(),
    });
    this.d.hub.add(session);
    metrics.streamsOpen.inc();
    try {
      session.start(this.d.mirror.epoch, this.d.hub.snapshotFor(session));
      yield* session.frames(ctx);
    } finally {
      this.d.hub.remove(session);
      metrics.streamsOpen.dec();
    }
  }

  private ensureReady(): void {
    const reason = this.d.notReadyReason();
    if (reason !== undefined) throw new UnavailableError(`price cache not ready: ${reason}`);
  }

  private fromRedis(symbols: string[]): Promise<MirrorEntry[]> {
    return this.redis(() => this.d.mirror.fetch(symbols));
  }

  private async redis<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch {
      this.d.metrics.redisErrors.inc({ op: 'read' });
      throw new UnavailableError('cache unavailable (Redis did not answer)');
    }
  }
}

export function registerPriceService(server: GrpcServer, handlers: PriceServiceHandlers): void {
  const h = server.handlers;
  server.addService(PRICE_SERVICE_NAME, priceServiceDefinition, {
    getQuote: h.unary((req: GetQuoteRequest) => handlers.getQuote(req)),
    listQuotes: h.unary((req: ListQuotesRequest) => handlers.listQuotes(req)),
    getBars: h.unary((req: GetBarsRequest) => handlers.getBars(req)),
    streamQuotes: h.serverStream((req: StreamQuotesRequest, ctx) => handlers.streamQuotes(req, ctx)),
  });
}
