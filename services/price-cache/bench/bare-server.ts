// Baselines for the benchmarks: bare grpc-js servers with none of the
// price-cache's work, measured in the same run for the ratios.
//   unary  GetQuote answers one fixed quote (plain generated service definition).
//   stream StreamQuotes: every quote arriving on quotes.> is written to every
//          open stream as its own message (one write per update per stream,
//          no batching, no conflation, bytes encoded once). A stream whose
//          write() returned false skips updates until 'drain' (without that,
//          grpc-js buffers without bound and the process stalls under overload).
// Prints "listening <port>" on stdout.
//   node --import tsx services/price-cache/bench/bare-server.ts unary|stream [nats-url]
import { Server, ServerCredentials, status, type ServerWritableStream } from '@grpc/grpc-js';
import { connect } from '@nats-io/transport-node';
import { Quote, PriceServiceService, StreamQuotesResponse_Kind } from '@tickmesh/kit/proto';
import { encodeStreamFrame, priceServiceDefinition, type StreamFrame } from '../src/wire.js';

const mode = process.argv[2];
const server = new Server();
const unimplemented = (_call: unknown, cb: (err: { code: number }) => void) =>
  cb({ code: status.UNIMPLEMENTED });

if (mode === 'unary') {
  const quote = Quote.fromPartial({
    symbol: 'THYAO',
    last: 286.25,
    bid: 286,
    ask: 286.5,
    open: 285.5,
    high: 287,
    low: 284.75,
    prevClose: 285.5,
    volume: 123456,
    change: 0.75,
    changePct: 0.26,
    eventTimeMs: Date.now(),
    seq: 4242,
    epoch: Date.now(),
    lastSize: 25,
    sessionDate: '2024-03-04',
    appliedTimeMs: Date.now(),
    trades: 999,
  });
  server.addService(PriceServiceService, {
    getQuote: (_call: unknown, cb: (err: null, res: { quote: Quote }) => void) => cb(null, { quote }),
    listQuotes: unimplemented,
    getBars: unimplemented,
    streamQuotes: (call: { emit: (e: string, v: unknown) => void }) =>
      call.emit('error', { code: status.UNIMPLEMENTED }),
  });
} else if (mode === 'stream') {
  const nc = await connect({ servers: process.argv[3] ?? 'nats://127.0.0.1:4222' });
  const streams = new Set<ServerWritableStream<unknown, StreamFrame>>();
  const blocked = new Set<ServerWritableStream<unknown, StreamFrame>>();
  nc.subscribe('quotes.>', {
    callback: (_err, msg) => {
      if (msg.subject === 'quotes._reset') return; // not a quote (the price-cache's rebuild notice)
      const bytes = msg.data.slice();
      let q: Quote;
      try {
        q = Quote.decode(bytes);
      } catch {
        return; // a throwing callback would end the subscription
      }
      const frame = encodeStreamFrame({
        kind: StreamQuotesResponse_Kind.KIND_UPDATE,
        quotes: [{ bytes, conflated: false }],
        serverTimeMs: Date.now(),
        epoch: q.epoch,
        heartbeatIntervalMs: 5000,
      });
      for (const s of streams) {
        if (blocked.has(s)) continue;
        if (!s.write(frame as unknown as StreamFrame)) {
          blocked.add(s);
          s.once('drain', () => blocked.delete(s));
        }
      }
    },
  });
  server.addService(
    {
      ...priceServiceDefinition,
      streamQuotes: { ...priceServiceDefinition.streamQuotes, responseSerialize: (b: Buffer) => b },
    },
    {
      getQuote: unimplemented,
      listQuotes: unimplemented,
      getBars: unimplemented,
      streamQuotes: (call: ServerWritableStream<unknown, StreamFrame>) => {
        streams.add(call);
        call.on('cancelled', () => {
          streams.delete(call);
          blocked.delete(call);
        });
      },
    },
  );
} else {
  process.stderr.write('usage: bare-server.ts unary|stream [nats-url]\n');
  process.exit(2);
}

const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
    err ? reject(err) : resolve(p),
  ),
);
process.stdout.write(`listening ${port}\n`);
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
