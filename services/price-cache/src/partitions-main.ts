// The partition count of the tick stream, for operators (docs/operations.md
// "Changing the partition count"):
//   node --import tsx services/price-cache/src/partitions-main.ts status
//   node --import tsx services/price-cache/src/partitions-main.ts set <n>
// `set` refuses unless the stream is drained: every durable consumer has
// nothing pending and every partition's last message is covered by its
// checkpoint mark (a rebuild under the new count replays only the new
// partitions' tails). It then stores the count and deletes the consumers of
// partitions the new count no longer has. Reads NATS_URL, TICKS_STREAM,
// CONSUMER_PREFIX, CHECKPOINT_BUCKET like the price-cache.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createLogger, PARTITIONS_METADATA_KEY } from '@tickmesh/kit';
import { CheckpointStore } from './checkpoint.js';
import { TickStream } from './tick-stream.js';

const env = (name: string, fallback: string) => process.env[name] || fallback;

async function main(): Promise<number> {
  const [command, value] = process.argv.slice(2);
  if (command !== 'status' && command !== 'set') {
    process.stderr.write('usage: partitions-main.ts status | set <partitions>\n');
    return 2;
  }
  const wanted = Number(value);
  if (command === 'set' && !(Number.isInteger(wanted) && wanted >= 1 && wanted <= 1024)) {
    process.stderr.write(`partitions: ${JSON.stringify(value)} is not a count between 1 and 1024\n`);
    return 2;
  }
  const stream = env('TICKS_STREAM', 'TICKS');
  const prefix = env('CONSUMER_PREFIX', 'price-cache-p');
  const nc = await connect({ servers: env('NATS_URL', 'nats://127.0.0.1:4222').split(','), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const ticks = new TickStream(nc, stream, createLogger('partitions', 'error'));
    const facts = await ticks.facts();
    if (!facts) {
      process.stderr.write(`stream ${stream} does not exist\n`);
      return 1;
    }
    const checkpoints = await CheckpointStore.open(
      ticks.js,
      env('CHECKPOINT_BUCKET', 'tickmesh_checkpoints'),
      1,
    );
    // Every consumer of ours, whatever count made it.
    const problems: string[] = [];
    const consumers: Array<{ name: string; partition: number; pending: number }> = [];
    for await (const c of jsm.consumers.list(stream)) {
      const n = Number(c.name.slice(prefix.length));
      if (!c.name.startsWith(prefix) || !Number.isInteger(n)) continue;
      const pending = c.num_pending + c.num_ack_pending;
      consumers.push({ name: c.name, partition: n, pending });
      if (pending > 0) problems.push(`${c.name} has ${pending} messages not applied`);
      const last = await ticks.lastSeq(n);
      const mark = (await checkpoints.getPartition(n))?.seq ?? 0;
      if (last > mark)
        problems.push(`partition ${n}: checkpoints cover seq ${mark}, its last message is ${last}`);
    }
    consumers.sort((a, b) => a.partition - b.partition);
    const status = {
      stream,
      partitions: facts.partitions ?? null,
      consumers,
      drained: problems.length === 0,
    };
    if (command === 'status') {
      process.stdout.write(`${JSON.stringify({ ...status, problems })}\n`);
      return 0;
    }
    if (problems.length > 0) {
      process.stderr.write(
        `not drained, count left at ${facts.partitions ?? 'unset'}: ${problems.join('; ')} ` +
          '(stop the tickers, let the price-cache apply everything, stop it cleanly, then retry)\n',
      );
      return 1;
    }
    const info = await jsm.streams.info(stream);
    const kept = Object.entries(info.config.metadata ?? {}).filter(([k]) => !k.startsWith('_nats'));
    await jsm.streams.update(stream, {
      ...info.config,
      metadata: Object.fromEntries([...kept, [PARTITIONS_METADATA_KEY, String(wanted)]]),
    });
    // Consumers of partitions that no longer exist would hold their old position forever.
    for (const c of consumers) if (c.partition >= wanted) await jsm.consumers.delete(stream, c.name);
    process.stdout.write(`stream ${stream}: partitions ${facts.partitions ?? 'unset'} -> ${wanted}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`partitions: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
