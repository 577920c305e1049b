// A PriceService served over real gRPC by the kit (serveGrpc), whose
// StreamQuotes the test drives: a small market whose quotes change when the
// test says so, broadcast to every open stream after each stream's snapshot,
// with RESET + snapshot on demand and periodic heartbeats. It can be stopped
// and restarted on the same port, and given a short max connection age.
import type { Quote } from '@tickmesh/kit/proto';
import {
  PriceServiceService,
  StreamQuotesResponse_Kind as Kind,
  type StreamQuotesRequest,
  type StreamQuotesResponse,
} from '@tickmesh/kit/proto';
import {
  commonConfig,
  grpcServerConfig,
  parseConfig,
  NotFoundError,
  createLogger,
  createMetricsRegistry,
  serveGrpc,
  type RunningGrpcService,
} from '@tickmesh/kit';

/** One open stream: the market queues messages, the stream's handler yields them. */
class StreamQueue {
  private readonly items: StreamQuotesResponse[] = [];
  private wake: (() => void) | undefined;

  write(message: StreamQuotesResponse): void {
    this.items.push(message);
    this.wake?.();
  }

  async *messages(signal: AbortSignal): AsyncGenerator<StreamQuotesResponse, void, undefined> {
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        const message = this.items.shift();
        if (message) yield message;
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

export class ScriptedMarket {
  readonly quotes = new Map<string, Quote>();
  readonly streams = new Set<StreamQueue>();
  epoch: number;
  heartbeatMs: number;
  /** Updates sent to streams, total. */
  sent = 0;

  constructor(
    symbols: Array<{ symbol: string; price: number }>,
    opts: { epoch?: number; heartbeatMs?: number } = {},
  ) {
    this.epoch = opts.epoch ?? 1;
    this.heartbeatMs = opts.heartbeatMs ?? 500;
    for (const { symbol, price } of symbols) this.quotes.set(symbol, initialQuote(symbol, price, this.epoch));
  }

  /** Applies one tick to `symbol` (price moves by `delta`) and broadcasts the update. */
  tick(symbol: string, delta = 0.05): Quote {
    const q = this.next(symbol, delta);
    this.broadcast({ kind: Kind.KIND_UPDATE, quotes: [q] });
    return q;
  }

  /** One tick per symbol, all in one upstream message. */
  tickAll(delta = 0.05): Quote[] {
    const qs = [...this.quotes.keys()].map((s) => this.next(s, delta));
    this.broadcast({ kind: Kind.KIND_UPDATE, quotes: qs });
    return qs;
  }

  /** New epoch: every stream gets RESET and a fresh snapshot (seqs restart at 1). */
  reset(epoch: number): void {
    this.epoch = epoch;
    for (const [s, q] of this.quotes) this.quotes.set(s, { ...initialQuote(s, q.last, epoch) });
    this.broadcast({ kind: Kind.KIND_RESET, quotes: [] });
    this.broadcast(this.snapshot());
  }

  snapshot(symbols?: string[]): Partial<StreamQuotesResponse> & { kind: Kind } {
    const all = [...this.quotes.values()];
    return {
      kind: Kind.KIND_SNAPSHOT,
      quotes: symbols?.length ? all.filter((q) => symbols.includes(q.symbol)) : all,
    };
  }

  broadcast(m: Partial<StreamQuotesResponse> & { kind: Kind }): void {
    const msg = this.wrap(m);
    for (const s of this.streams) s.write(msg);
    if (m.kind === Kind.KIND_UPDATE) this.sent += m.quotes?.length ?? 0;
  }

  wrap(m: Partial<StreamQuotesResponse> & { kind: Kind }): StreamQuotesResponse {
    return {
      quotes: [],
      serverTimeMs: Date.now(),
      epoch: this.epoch,
      heartbeatIntervalMs: this.heartbeatMs,
      snapshotComplete: false,
      ...m,
    };
  }

  private next(symbol: string, delta: number): Quote {
    const prev = this.quotes.get(symbol) ?? initialQuote(symbol, 10, this.epoch);
    const last = Number(Math.max(0.05, prev.last + delta).toFixed(2));
    const q: Quote = {
      ...prev,
      last,
      bid: Number((last - 0.05).toFixed(2)),
      ask: Number((last + 0.05).toFixed(2)),
      high: Math.max(prev.high, last),
      low: Math.min(prev.low, last),
      volume: prev.volume + 10,
      change: Number((last - prev.prevClose).toFixed(2)),
      changePct: Number(((100 * (last - prev.prevClose)) / prev.prevClose).toFixed(2)),
      eventTimeMs: Date.now(),
      appliedTimeMs: Date.now(),
      seq: prev.seq + 1,
      lastSize: 10,
      trades: prev.trades + 1,
    };
    this.quotes.set(symbol, q);
    return q;
  }
}

function initialQuote(symbol: string, price: number, epoch: number): Quote {
  const now = Date.now();
  return {
    symbol,
    last: price,
    bid: Number((price - 0.05).toFixed(2)),
    ask: Number((price + 0.05).toFixed(2)),
    open: price,
    high: price,
    low: price,
    prevClose: price,
    volume: 0,
    change: 0,
    changePct: 0,
    eventTimeMs: now,
    seq: 1,
    epoch,
    lastSize: 0,
    sessionDate: '2025-01-02',
    appliedTimeMs: now,
    conflated: false,
    trades: 0,
  };
}

export interface ScriptedUpstream {
  readonly port: number;
  readonly market: ScriptedMarket;
  /** StreamQuotes calls received so far. */
  readonly streamsOpened: number;
  stop(): Promise<void>;
  /** Starts again on the same port (after stop). */
  restart(): Promise<void>;
}

export async function startScriptedUpstream(
  market: ScriptedMarket,
  opts: { port?: number; maxConnectionAgeMs?: number; maxConnectionAgeGraceMs?: number } = {},
): Promise<ScriptedUpstream> {
  let running: RunningGrpcService | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let port = opts.port ?? 0;
  let streamsOpened = 0;

  const start = async () => {
    // Defaults for everything, so settings the kit adds later need no change here.
    const config = parseConfig(
      { ...commonConfig, ...grpcServerConfig },
      {
        LOG_LEVEL: 'silent',
        METRICS_HOST: '127.0.0.1',
        SHUTDOWN_TIMEOUT_MS: '1000',
        GRPC_HOST: '127.0.0.1',
        GRPC_MAX_CONNECTION_AGE_MS: String(opts.maxConnectionAgeMs ?? 0),
        GRPC_MAX_CONNECTION_AGE_GRACE_MS: String(opts.maxConnectionAgeGraceMs ?? 0),
        GRPC_REFLECTION: 'false',
      },
    );
    const kit = {
      logger: createLogger('scripted-upstream', 'silent'),
      registry: createMetricsRegistry('scripted-upstream'),
    };
    running = await serveGrpc({
      kit,
      config,
      grpcPort: port,
      services: ['tickmesh.price.v1.PriceService'],
      checks: [],
      handleSignals: false,
      register: (server) => {
        const h = server.handlers;
        server.addService('tickmesh.price.v1.PriceService', PriceServiceService, {
          getQuote: h.unary(() => Promise.reject(new NotFoundError('scripted upstream: streams only'))),
          listQuotes: h.unary(() => Promise.resolve({ quotes: [...market.quotes.values()], missing: [] })),
          getBars: h.unary(() => Promise.resolve({ bars: [] })),
          streamQuotes: h.serverStream(async function* (_req: StreamQuotesRequest, ctx) {
            streamsOpened++;
            const stream = new StreamQueue();
            stream.write(market.wrap(market.snapshot()));
            market.streams.add(stream);
            try {
              yield* stream.messages(ctx.signal);
            } finally {
              market.streams.delete(stream);
            }
          }),
        });
      },
    });
    port = running.grpcPort;
    heartbeat = setInterval(() => market.broadcast({ kind: Kind.KIND_HEARTBEAT }), market.heartbeatMs);
  };

  await start();
  return {
    get port() {
      return port;
    },
    market,
    get streamsOpened() {
      return streamsOpened;
    },
    stop: async () => {
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = undefined;
      const r = running;
      running = undefined;
      await r?.stop();
      market.streams.clear();
    },
    restart: async () => {
      await start();
    },
  };
}
