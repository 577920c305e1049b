// A counting StreamQuotes client: opens N streams to a server and prints,
// every second, the quotes and messages received so far (one JSON line).
// Messages are scanned, not decoded, so the counter is not the bottleneck.
//   node --import tsx services/price-cache/bench/stream-counter.ts <port> <streams> '<request json>'
import { credentials, makeGenericClientConstructor, type ClientReadableStream } from '@grpc/grpc-js';
import { PriceServiceService, StreamQuotesRequest } from '@tickmesh/kit/proto';

const [portArg, streamsArg, requestArg] = process.argv.slice(2);
const request = StreamQuotesRequest.fromJSON(JSON.parse(requestArg ?? '{"all":true}'));

/** Number of `quotes` (field 2) in a StreamQuotesResponse, by walking the wire format. */
function countQuotes(b: Buffer): number {
  let n = 0;
  let i = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = b[i++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 2) {
      const len = varint();
      if (tag >>> 3 === 2) n++;
      i += len;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return n;
}

const Client = makeGenericClientConstructor(
  { streamQuotes: { ...PriceServiceService.streamQuotes, responseDeserialize: (b: Buffer) => b } },
  'tickmesh.price.v1.PriceService',
);
let quotes = 0;
let messages = 0;
let ended = 0;
const clients = Array.from(
  { length: 4 },
  () =>
    new Client(`127.0.0.1:${portArg}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
);
for (let i = 0; i < Number(streamsArg ?? 100); i++) {
  const c = clients[i % clients.length] as unknown as {
    streamQuotes: (r: unknown) => ClientReadableStream<Buffer>;
  };
  const call = c.streamQuotes(request);
  call.on('data', (b: Buffer) => {
    messages++;
    quotes += countQuotes(b);
  });
  call.on('error', () => ended++);
  call.on('end', () => ended++);
}
setInterval(
  () => process.stdout.write(`${JSON.stringify({ t: performance.now(), quotes, messages, ended })}\n`),
  1000,
);
process.on('SIGTERM', () => process.exit(0));
