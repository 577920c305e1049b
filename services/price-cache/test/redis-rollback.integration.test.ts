// A Redis that went back in time: restarted from an older RDB snapshot
// (as after a failover to a lagging replica, or a restore) while ticks keep
// arriving. It keeps its epoch, so only the positions tell: the first apply
// on it is refused and the cache is rebuilt under a new epoch to the exact
// state. A restart from a snapshot that lost nothing must not rebuild.
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  startNats,
  startRedis,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { KEY } from '../src/redis-store.js';
import {
  connectTestNats,
  createTickStream,
  makeTicks,
  publishTicks,
  startReplica,
  testEnv,
  waitForExactState,
  whenReady,
  type Replica,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'EKGYO', 'ZZZ1'];

/** One producer publishing batches back to back (retrying a batch until it is stored). */
class Load {
  private running = true;
  private readonly done: Promise<void>;
  constructor(
    private readonly js: JetStreamClient,
    private seq: number,
  ) {
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    while (this.running) {
      const batch = makeTicks({ producer: 'P', firstSeq: this.seq, n: 5, symbols: SYMBOLS, t0: T0 });
      for (;;) {
        try {
          await publishTicks(this.js, batch);
          break;
        } catch {
          await sleep(50);
        }
      }
      this.seq += 5;
      await sleep(10);
    }
  }
  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    return this.seq;
  }
}

describe('a Redis that went back in time', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let redis: Redis;
  const replicas: Replica[] = [];

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    redis.on('error', () => undefined);
    await createTickStream(nc);
  });
  after(async () => {
    for (const r of replicas) await r.stop().catch(() => undefined);
    redis?.disconnect();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  const rollbacks = async (r: Replica) => (await r.app.metrics.rollbacks.get()).values[0]?.value ?? 0;
  const dump = () => path.join(redisServer.dataDir, 'dump.rdb');
  const older = () => path.join(redisServer.dataDir, 'older.rdb');
  /** Restarts Redis from `file` (redis-server loads dump.rdb from its directory). */
  const restartFrom = async (file: string) => {
    await redisServer.kill();
    if (file !== dump()) await copyFile(file, dump());
    await redisServer.start();
    await waitUntil(async () => (await redis.ping().catch(() => '')) === 'PONG', {
      timeoutMs: 30_000,
      what: 'redis back',
    });
  };

  it('restarted from an older snapshot under load: refused, rebuilt under a new epoch, exact', async () => {
    const js = jetstream(nc);
    const env = testEnv(nats.url, redisServer.url);
    const a = await startReplica(env, 'a');
    const b = await startReplica(env, 'b');
    replicas.push(a, b);
    await Promise.all([whenReady(a), whenReady(b)]);

    const load = new Load(js, 1);
    await sleep(1000);
    await redis.save();
    await copyFile(dump(), older());
    const epoch = await redis.get(KEY.epoch);
    await sleep(1500); // applied (and checkpointed) after the snapshot
    await restartFrom(older());
    await sleep(1000);
    await load.stop();
    await waitForExactState(nc, redis, 'exact after the rollback');
    assert.notEqual(await redis.get(KEY.epoch), epoch, 'rebuilt under a new epoch');
    assert.ok((await rollbacks(a)) + (await rollbacks(b)) >= 1, 'counted');
  });

  it('restarted from a snapshot that lost nothing: no rebuild', async () => {
    const [a, b] = replicas;
    const js = jetstream(nc);
    await waitForExactState(nc, redis, 'settled');
    const before = (await rollbacks(a!)) + (await rollbacks(b!));
    await redis.save();
    const epoch = await redis.get(KEY.epoch);
    await restartFrom(dump());
    const load = new Load(js, 100_000);
    await sleep(1500);
    await load.stop();
    await waitForExactState(nc, redis, 'exact after a clean restart');
    assert.equal(await redis.get(KEY.epoch), epoch, 'same epoch: nothing rebuilt');
    assert.equal((await rollbacks(a!)) + (await rollbacks(b!)), before);
  });

  it('restored to before the checkpoints while no replica ran: rebuilt at start', async () => {
    for (const r of replicas) await r.stop();
    const js = jetstream(nc);
    await redis.save();
    await copyFile(dump(), older());
    const c = await startReplica(testEnv(nats.url, redisServer.url), 'c');
    replicas.push(c);
    await whenReady(c);
    await publishTicks(js, makeTicks({ producer: 'Q', firstSeq: 1, n: 200, symbols: SYMBOLS, t0: T0 }));
    await waitForExactState(nc, redis, 'applied');
    await sleep(1000); // checkpointed
    await c.stop();
    const epoch = await redis.get(KEY.epoch);
    await restartFrom(older());
    const d = await startReplica(testEnv(nats.url, redisServer.url), 'd');
    replicas.push(d);
    await waitForExactState(nc, redis, 'exact after a start on a rolled-back Redis');
    assert.notEqual(await redis.get(KEY.epoch), epoch);
    assert.equal(await rollbacks(d), 1);
  });
});
