// Replays a tick file (NDJSON or CSV, docs/ingest.md) into tickmesh through
// the ingest API, with the file's original spacing divided by --speed, or as
// fast as acks allow with --speed max. It goes through IngestService (not
// straight to JetStream) so replayed ticks get the same validation as any
// producer's, and it uses the producer client, so a broken connection is
// resumed without losing or doubling ticks.
//
//   npm run replay -- --file tests/fixtures/ticks-sample.ndjson --speed 10
//   npm run replay -- --file ticks.csv --speed max --target 127.0.0.1:50051
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { ProducerClient } from './producer-client.js';
import { toProducerId } from './producer-ids.js';
import { readTickFile, replayDelayMs, type TickFileFormat } from './tick-file.js';

const USAGE = `usage: npm run replay -- --file <path> [--speed <factor>|max] [--target host:port]
       [--producer-id id] [--times now|original] [--format ndjson|csv] [--flush-timeout-ms n]

  --file         tick file: .ndjson/.jsonl (one JSON object per line) or .csv (header line)
  --speed        divide the file's time gaps by this factor (1 = real time, default), or "max"
  --target       ticker gRPC address (default 127.0.0.1:50051)
  --producer-id  producer id of the replayed ticks (default replay-<file name>)
  --times        event times: "now" (when sent, default) or "original" (the file's times)
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string' },
      speed: { type: 'string', default: '1' },
      target: { type: 'string', default: '127.0.0.1:50051' },
      'producer-id': { type: 'string' },
      times: { type: 'string', default: 'now' },
      format: { type: 'string' },
      'flush-timeout-ms': { type: 'string', default: '30000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || !values.file) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const speed = values.speed === 'max' ? Infinity : Number(values.speed);
  if (!(speed > 0)) return usageError('--speed must be a number > 0 or "max"');
  if (values.times !== 'now' && values.times !== 'original')
    return usageError('--times must be now or original');
  if (values.format !== undefined && values.format !== 'ndjson' && values.format !== 'csv') {
    return usageError('--format must be ndjson or csv');
  }
  const flushTimeoutMs = Number(values['flush-timeout-ms']);
  if (!(flushTimeoutMs > 0)) return usageError('--flush-timeout-ms must be > 0');
  const producerId =
    values['producer-id'] ?? toProducerId(`replay-${basename(values.file).replace(/\.[^.]+$/, '')}`);

  // seq -> file line, to report rejections by line (pruned as acks arrive).
  const lines = new Map<number, number>();
  let badLines = 0;
  let rejected = 0;
  const client = new ProducerClient({
    target: values.target,
    producerId,
    onRejection: (r) => {
      rejected++;
      const line = lines.get(r.producerSeq);
      process.stderr.write(`line ${line ?? '?'}: rejected by the ticker: ${r.field}: ${r.reason}\n`);
    },
    onStream: (event, detail) => {
      if (event === 'broken') process.stderr.write(`stream broken (${detail}): reconnecting and resending\n`);
    },
  });

  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
  });
  const started = Date.now();
  let first: number | undefined;
  let sent = 0;
  try {
    for await (const item of readTickFile(values.file, values.format as TickFileFormat | undefined)) {
      if (interrupted) break;
      if (!item.ok) {
        badLines++;
        process.stderr.write(`line ${item.error.line}: skipped: ${item.error.message}\n`);
        continue;
      }
      const r = item.record;
      first ??= r.timeMs;
      const wait = replayDelayMs(first, r.timeMs, speed, Date.now() - started);
      if (wait > 0) await delay(wait);
      const seq = await client.send({
        symbol: r.symbol,
        price: r.price,
        size: r.size,
        bid: r.bid,
        ask: r.ask,
        eventTimeMs: values.times === 'original' ? r.timeMs : Date.now(),
      });
      lines.set(seq, r.line);
      sent++;
      if (lines.size > 20_000) for (const s of lines.keys()) if (s <= client.ackedThrough) lines.delete(s);
    }
    await client.flush(flushTimeoutMs);
  } finally {
    await client.close();
  }
  const seconds = (Date.now() - started) / 1000;
  const s = client.stats;
  process.stdout.write(
    `replayed ${sent} ticks in ${seconds.toFixed(1)} s as ${producerId}: stored ${s.acked - rejected}, rejected ${rejected}, ` +
      `bad lines ${badLines}, reconnects ${s.reconnects}\n`,
  );
  return badLines > 0 || rejected > 0 || interrupted ? 1 : 0;
}

function usageError(message: string): number {
  process.stderr.write(`${message}\n${USAGE}`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`replay failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
