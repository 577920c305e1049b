// The partition count is a stored contract: the stream's metadata holds it,
// every ticker and price-cache checks it at start (another value: one line,
// exit 2), and docs/operations.md's procedure changes it without losing or
// doubling a tick — run here step by step against real NATS and Redis.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  startNats,
  startRedis,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { batchMessageId, encodeBatch, partitionOf, projectRoot, tickSubject } from '@tickmesh/kit';
import type { Tick } from '@tickmesh/kit/proto';
import { ensureTicksStream, type TicksStreamSettings } from '../../ticker/src/ticks-stream.js';
import {
  connectTestNats,
  makeTicks,
  startReplica,
  testEnv,
  waitForExactState,
  whenReady,
  type Replica,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'EKGYO', 'SISE', 'ASELS', 'BIMAS', 'ZZZ1'];

const streamSettings = (partitions?: number): TicksStreamSettings => ({
  name: 'TICKS',
  replicas: 1,
  maxAgeMs: 0,
  maxBytes: -1,
  duplicateWindowMs: 120_000,
  maxMsgSize: 1 << 20,
  partitions,
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a service entry point until it exits (or timeoutMs, then SIGKILL). */
function run(entry: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      cwd: projectRoot(),
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Publishes ticks as the ticker does for `partitions` partitions (pre-lane subjects). */
async function publish(js: JetStreamClient, ticks: Tick[], partitions: number): Promise<void> {
  const by = new Map<number, Tick[]>();
  for (const t of ticks) {
    const p = partitionOf(t.symbol, partitions);
    by.set(p, [...(by.get(p) ?? []), t]);
  }
  for (const [p, list] of by) {
    const id = batchMessageId(list[0]!.producerId, p, list[0]!.producerSeq, list.at(-1)!.producerSeq);
    await js.publish(tickSubject(p), encodeBatch(list), { msgID: id });
  }
}

async function storedCount(jsm: JetStreamManager): Promise<string | undefined> {
  return (await jsm.streams.info('TICKS')).config.metadata?.['tickmesh.partitions'];
}

const oneLine = (text: string) => text.trim().split('\n').filter(Boolean);

describe('the partition count is stored in the stream and checked at start', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  it('a ticker and a price-cache configured for another count exit 2 with one line naming both', async () => {
    assert.equal(await ensureTicksStream(jsm, streamSettings(4)), 'created');
    assert.equal(await storedCount(jsm), '4');
    const env = { ...testEnv(nats.url, redisServer.url), TICK_PARTITIONS: '8' };
    const priceCache = await run('services/price-cache/src/main.ts', [], env);
    assert.equal(priceCache.code, 2, priceCache.stderr);
    assert.equal(oneLine(priceCache.stderr).length, 1, priceCache.stderr);
    assert.match(priceCache.stderr, /TICK_PARTITIONS=8 .*partitioned 4 ways/);
    const ticker = await run('services/ticker/src/main.ts', [], {
      NATS_URL: nats.url,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'error',
      TICK_PARTITIONS: '8',
    });
    assert.equal(ticker.code, 2, ticker.stderr);
    assert.equal(oneLine(ticker.stderr).length, 1, ticker.stderr);
    assert.match(ticker.stderr, /TICK_PARTITIONS=8 .*partitioned 4 ways/);
    assert.equal(await storedCount(jsm), '4', 'a refused ticker changes nothing');
  });

  it('a stream made before the count was stored gets it from the first ticker', async () => {
    const info = await jsm.streams.info('TICKS');
    await jsm.streams.update('TICKS', { ...info.config, metadata: { owner: 'ops' } });
    assert.equal(await storedCount(jsm), undefined);
    assert.equal(await ensureTicksStream(jsm, streamSettings(4)), 'updated');
    const after = (await jsm.streams.info('TICKS')).config.metadata ?? {};
    assert.equal(after['tickmesh.partitions'], '4');
    assert.equal(after.owner, 'ops', 'metadata others set is kept');
    assert.equal(await ensureTicksStream(jsm, streamSettings(4)), 'unchanged');
  });
});

describe('changing the partition count (docs/operations.md)', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let redis: Redis;
  const replicas: Replica[] = [];

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    jsm = await jetstreamManager(nc);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    await ensureTicksStream(jsm, streamSettings(4));
  });
  after(async () => {
    for (const r of replicas) await r.stop().catch(() => undefined);
    redis?.disconnect();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  const start = async (partitions: number) => {
    const r = await startReplica(testEnv(nats.url, redisServer.url, { TICK_PARTITIONS: String(partitions) }));
    replicas.push(r);
    return r;
  };
  const tool = (args: string[]) =>
    run('services/price-cache/src/partitions-main.ts', args, { NATS_URL: nats.url });

  it('drain, stop, store the new count, restart: nothing lost or doubled, before and after a rebuild', async () => {
    const js = jetstream(nc);
    let seq = 1;
    const next = (n: number) => {
      const t = makeTicks({ producer: 'P', firstSeq: seq, n, symbols: SYMBOLS, t0: T0 });
      seq += n;
      return t;
    };
    let current = 4;
    let replica = await start(current);
    await whenReady(replica);
    await publish(js, next(80), current);
    await waitForExactState(nc, redis, 'exact under 4 partitions');

    for (const target of [8, 3]) {
      // Stop cleanly (its last checkpoint round covers what it applied), then
      // something arrives that nobody applied: the count must not change.
      await replica.stop();
      await publish(js, next(16), current);
      const refused = await tool(['set', String(target)]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /not drained/);
      assert.equal(await storedCount(jsm), String(current));

      // Drain: the old count applies everything; stop it cleanly.
      replica = await start(current);
      await waitForExactState(nc, redis, `drained under ${current}`);
      await waitUntil(async () => JSON.parse((await tool(['status'])).stdout).drained === true, {
        timeoutMs: 20_000,
        what: 'status says drained',
      });
      await replica.stop();
      const set = await tool(['set', String(target)]);
      assert.equal(set.code, 0, set.stderr);
      assert.equal(await storedCount(jsm), String(target));
      const names: string[] = [];
      for await (const c of jsm.consumers.list('TICKS'))
        if (c.name.startsWith('price-cache-p')) names.push(c.name);
      assert.ok(
        names.every((n) => Number(n.replace('price-cache-p', '')) < target),
        `no consumer beyond the new count: ${names.join(',')}`,
      );

      // A replica still on the old count does not start.
      const stale = await start(current);
      await waitUntil(() => /partitioned/.test(stale.app.notReadyReason() ?? ''), {
        timeoutMs: 20_000,
        what: 'a replica with the old count refuses',
      });
      await stale.stop();

      current = target;
      replica = await start(current);
      await whenReady(replica);
      await publish(js, next(96), current);
      await waitForExactState(nc, redis, `exact under ${current} partitions`);
      await redis.flushall();
      await waitForExactState(nc, redis, `rebuilt exactly under ${current} partitions`);
    }
  });
});
