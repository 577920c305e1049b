// The bare grpc-js baseline: the same services, methods and messages as
// tickmesh (generated types from packages/kit/src/gen, so encoded sizes
// match), with trivial handlers and none of the kit (no deadlines, metrics,
// safe decoding or health). Reflection is served only so that ghz resolves
// methods exactly as it does against the real services.
//
//   node --import tsx tests/load/baselines/bare-grpc-server.ts [--port 0] [--quotes-per-message 1]
//
// Prints `READY {"port":N}` when listening; SIGTERM stops it.
import { parseArgs } from 'node:util';
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import {
  CustomerServiceService,
  type CreateCustomerRequest,
  type CreateCustomerResponse,
  type GetCustomerRequest,
  type GetCustomerResponse,
  IngestServiceService,
  type PublishTickRequest,
  type PublishTickResponse,
  type PublishTicksRequest,
  type PublishTicksResponse,
  PriceServiceService,
  StreamQuotesResponse_Kind,
  type GetQuoteRequest,
  type GetQuoteResponse,
  type ListQuotesRequest,
  type ListQuotesResponse,
  type StreamQuotesRequest,
  type StreamQuotesResponse,
} from '@tickmesh/kit/proto';
import type { Quote } from '@tickmesh/kit/proto';
import { createReflectionService } from '@tickmesh/kit';
import { isMain } from '../lib/child.js';
import { cannedCustomer, cannedQuotes } from './canned.js';

export interface BareGrpcOptions {
  host?: string;
  port?: number;
  /** Quotes in each StreamQuotes update message (the real service may batch several). */
  quotesPerMessage?: number;
}

export interface BareGrpcServer {
  port: number;
  stats: { streamMessages: number; streamQuotes: number; ticksAcked: number };
  stop(): Promise<void>;
}

const SERVICES = [
  'tickmesh.price.v1.PriceService',
  'tickmesh.ingest.v1.IngestService',
  'tickmesh.customer.v1.CustomerService',
];

export async function startBareGrpcServer(opts: BareGrpcOptions = {}): Promise<BareGrpcServer> {
  const quotes = cannedQuotes();
  const bySymbol = new Map(quotes.map((q) => [q.symbol, q]));
  const perMessage = Math.max(1, opts.quotesPerMessage ?? 1);
  const stats = { streamMessages: 0, streamQuotes: 0, ticksAcked: 0 };
  const streams = new Set<ServerWritableStream<StreamQuotesRequest, StreamQuotesResponse>>();
  let unarySeq = 0;
  let customerSeq = 0;
  const server = new Server();

  server.addService(PriceServiceService, {
    getQuote: (
      call: ServerUnaryCall<GetQuoteRequest, GetQuoteResponse>,
      cb: sendUnaryData<GetQuoteResponse>,
    ) => {
      cb(null, { quote: bySymbol.get(call.request.symbol) ?? quotes[0] });
    },
    listQuotes: (
      call: ServerUnaryCall<ListQuotesRequest, ListQuotesResponse>,
      cb: sendUnaryData<ListQuotesResponse>,
    ) => {
      const wanted = call.request.symbols;
      cb(null, {
        quotes: wanted.length === 0 ? quotes : wanted.flatMap((s) => bySymbol.get(s) ?? []),
        missing: wanted.filter((s) => !bySymbol.has(s)),
      });
    },
    getBars: (_call: unknown, cb: sendUnaryData<{ bars: never[] }>) => cb(null, { bars: [] }),
    streamQuotes: (call: ServerWritableStream<StreamQuotesRequest, StreamQuotesResponse>) => {
      streams.add(call);
      const symbols =
        call.request.all || call.request.symbols.length === 0
          ? quotes.map((q) => q.symbol)
          : call.request.symbols;
      void pumpQuotes(call, symbols, bySymbol, perMessage, stats).finally(() => streams.delete(call));
    },
  });

  server.addService(IngestServiceService, {
    publishTick: (
      call: ServerUnaryCall<PublishTickRequest, PublishTickResponse>,
      cb: sendUnaryData<PublishTickResponse>,
    ) => {
      unarySeq++;
      cb(null, {
        producerId: call.request.tick?.producerId || 'bare',
        producerSeq: unarySeq,
        streamSeq: unarySeq,
        duplicate: false,
      });
    },
    publishTicks: (call: ServerDuplexStream<PublishTicksRequest, PublishTicksResponse>) => {
      // Trivial: every request is "stored" at once and acked cumulatively.
      call.on('data', (req: PublishTicksRequest) => {
        const ticks = req.tick ? [req.tick, ...req.ticks] : req.ticks;
        const last = ticks[ticks.length - 1];
        if (!last) return;
        stats.ticksAcked += ticks.length;
        call.write({ ack: { producerId: last.producerId, storedThroughSeq: last.producerSeq } });
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });

  server.addService(CustomerServiceService, {
    createCustomer: (
      call: ServerUnaryCall<CreateCustomerRequest, CreateCustomerResponse>,
      cb: sendUnaryData<CreateCustomerResponse>,
    ) => {
      const now = Date.now();
      const r = call.request;
      customerSeq++;
      cb(null, {
        customer: {
          id: `01BARE${String(customerSeq).padStart(20, '0')}`,
          firstName: r.firstName,
          lastName: r.lastName,
          email: r.email,
          createTimeMs: now,
          updateTimeMs: now,
        },
      });
    },
    getCustomer: (
      call: ServerUnaryCall<GetCustomerRequest, GetCustomerResponse>,
      cb: sendUnaryData<GetCustomerResponse>,
    ) => {
      cb(null, { customer: cannedCustomer(call.request.id) });
    },
  });

  createReflectionService(SERVICES).addToServer(server);
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port ?? 0}`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    stats,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/**
 * Sends a snapshot, then updates as fast as the transport takes them: each
 * update carries the next `perMessage` symbols with their seq advanced by
 * one, so a counting client can check it received every seq.
 */
async function pumpQuotes(
  call: ServerWritableStream<StreamQuotesRequest, StreamQuotesResponse>,
  symbols: string[],
  bySymbol: Map<string, Quote>,
  perMessage: number,
  stats: BareGrpcServer['stats'],
): Promise<void> {
  let cancelled = false;
  call.on('cancelled', () => (cancelled = true));
  call.on('error', () => (cancelled = true));
  call.on('close', () => (cancelled = true));
  const templates = symbols.map((s) => bySymbol.get(s) ?? { ...bySymbol.values().next().value!, symbol: s });
  const seqs = templates.map((t) => t.seq);
  const base = { serverTimeMs: 0, epoch: 1, heartbeatIntervalMs: 5000, snapshotComplete: false };
  call.write({
    ...base,
    kind: StreamQuotesResponse_Kind.KIND_SNAPSHOT,
    quotes: templates,
    serverTimeMs: Date.now(),
  });
  let i = 0;
  while (!cancelled) {
    // A burst per event-loop turn, so other streams and I/O get their turn.
    for (let burst = 0; burst < 32 && !cancelled; burst++) {
      const now = Date.now();
      const batch: Quote[] = [];
      for (let k = 0; k < perMessage; k++) {
        const idx = i++ % templates.length;
        batch.push({ ...templates[idx]!, seq: ++seqs[idx]!, eventTimeMs: now, appliedTimeMs: now });
      }
      stats.streamMessages++;
      stats.streamQuotes += batch.length;
      if (
        !call.write({
          ...base,
          kind: StreamQuotesResponse_Kind.KIND_UPDATE,
          quotes: batch,
          serverTimeMs: now,
        })
      ) {
        await new Promise<void>((resolve) => {
          const done = () => {
            call.off('drain', done);
            call.off('close', done);
            resolve();
          };
          call.on('drain', done);
          call.on('close', done);
        });
      }
    }
    await new Promise((r) => setImmediate(r));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'quotes-per-message': { type: 'string', default: '1' },
    },
  });
  const server = await startBareGrpcServer({
    host: values.host,
    port: Number(values.port),
    quotesPerMessage: Number(values['quotes-per-message']),
  });
  process.stdout.write(`READY ${JSON.stringify({ port: server.port })}\n`);
  const stop = () => {
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (isMain(import.meta.url)) void main();
