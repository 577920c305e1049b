// A tick producer on the command line, built on the producer client: it
// streams random-walk ticks for some symbols to the ingest API and shows the
// acks, rejections and resends. --break-every cuts the stream now and then to
// demonstrate that resending from the last ack loses and doubles nothing.
//
//   npm run producer -- --target 127.0.0.1:50051 --producer-id demo --symbols THYAO,GARAN --rate 100 --count 1000
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { defaultInstrument, loadUniverse, type Instrument } from '@tickmesh/kit';
import { ProducerClient } from './producer-client.js';
import { toProducerId } from './producer-ids.js';
import { TickGenerator } from './tick-generator.js';

const USAGE = `usage: npm run producer -- [--target host:port] [--producer-id id] [--symbols A,B|all]
       [--market bist30] [--rate ticks/s|0] [--count n|0] [--seed n] [--window n] [--break-every n]

  --target       ticker gRPC address (default 127.0.0.1:50051)
  --producer-id  stable id of this producer (default cli-<hostname>)
  --symbols      comma-separated symbols, or "all" for the whole market (default all); symbols
                 outside the market are priced on a 0.0001 grid and need INGEST_OPEN_MODE=true
  --rate         ticks per second in all (default 100; 0 = as fast as the acks allow)
  --count        ticks to send (default 1000; 0 = until Ctrl-C)
  --seed         random-walk seed (default 1)
  --window       most unacknowledged ticks (default 10000)
  --break-every  cut the stream after every n ticks sent (shows the resend path)
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50051' },
      'producer-id': { type: 'string', default: toProducerId(`cli-${hostname()}`) },
      symbols: { type: 'string', default: 'all' },
      market: { type: 'string', default: 'bist30' },
      rate: { type: 'string', default: '100' },
      count: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      window: { type: 'string', default: '10000' },
      'break-every': { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const rate = Number(values.rate);
  const count = Number(values.count);
  const seed = Number(values.seed);
  const windowTicks = Number(values.window);
  const breakEvery = Number(values['break-every']);
  for (const [name, v] of [
    ['rate', rate],
    ['count', count],
    ['seed', seed],
    ['window', windowTicks],
    ['break-every', breakEvery],
  ] as const) {
    if (!Number.isFinite(v) || v < 0) return usageError(`--${name} must be a number >= 0`);
  }
  if (windowTicks < 1) return usageError('--window must be >= 1');

  const universe = loadUniverse(values.market);
  const instruments: Instrument[] =
    values.symbols === 'all'
      ? universe.instruments
      : values.symbols
          .split(',')
          .map((s) => s.trim().toUpperCase())
          .filter((s) => s.length > 0)
          .map((s) => universe.bySymbol.get(s) ?? defaultInstrument(s, 100));
  if (instruments.length === 0) return usageError('--symbols names no symbol');

  const generator = new TickGenerator({
    instruments,
    seed,
    minIntervalMs: 1,
    maxIntervalMs: 1,
    ticksPerSecond: 1000,
  });
  let rejected = 0;
  const client = new ProducerClient({
    target: values.target,
    producerId: values['producer-id'],
    windowTicks,
    onRejection: (r) => {
      rejected++;
      process.stderr.write(`rejected seq ${r.producerSeq}: ${r.field}: ${r.reason}\n`);
    },
    onStream: (event, detail) => {
      process.stderr.write(
        event === 'connected'
          ? 'stream open\n'
          : `stream broken (${detail}): will resend from the last ack\n`,
      );
    },
  });

  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
  });
  const started = Date.now();
  const progress = setInterval(() => {
    const s = client.stats;
    const secs = (Date.now() - started) / 1000;
    process.stderr.write(
      `sent ${s.sent} acked ${s.acked} rejected ${rejected} unacked ${client.unacked} reconnects ${s.reconnects} ` +
        `(${(s.sent / secs).toFixed(0)} ticks/s)\n`,
    );
  }, 1000);
  try {
    for (let i = 0; (count === 0 || i < count) && !interrupted; i++) {
      if (rate > 0) {
        const ahead = (i * 1000) / rate - (Date.now() - started);
        if (ahead > 0) await delay(ahead);
      }
      const t = generator.next();
      await client.send({
        symbol: t.symbol,
        price: t.price,
        size: t.size,
        bid: t.bid,
        ask: t.ask,
        eventTimeMs: Date.now(),
      });
      if (breakEvery > 0 && (i + 1) % breakEvery === 0) client.breakStream();
    }
    await client.flush(30_000);
  } finally {
    clearInterval(progress);
    await client.close();
  }
  const s = client.stats;
  const secs = (Date.now() - started) / 1000;
  process.stdout.write(
    `producer ${values['producer-id']}: sent ${s.sent}, stored ${s.acked - rejected}, rejected ${rejected}, ` +
      `reconnects ${s.reconnects}, resent ${s.resent}, acked through seq ${client.ackedThrough}, ${secs.toFixed(1)} s ` +
      `(${(s.sent / secs).toFixed(0)} ticks/s)\n`,
  );
  return rejected > 0 || interrupted ? 1 : 0;
}

function usageError(message: string): number {
  process.stderr.write(`${message}\n${USAGE}`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`producer failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
