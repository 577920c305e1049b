// kill -9 of a price-cache process in the middle of a tick stream, then a
// restart: the state ends exactly as if nothing had happened (the message the
// dead process held comes back after ack_wait; guards skip what it applied).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  startNats,
  startRedis,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { projectRoot } from '@tickmesh/kit';
import { KEY } from '../src/redis-store.js';
import {
  connectTestNats,
  createTickStream,
  makeTicks,
  publishTicks,
  storedSeq,
  testEnv,
  waitForExactState,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'EKGYO', 'SISE', 'ZZZ1'];

function startService(env: Record<string, string>, log: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/price-cache/src/main.ts'], {
    cwd: projectRoot(),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

describe('kill -9 mid-stream and restart', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let redis: Redis;
  const children: ChildProcess[] = [];
  const log: string[] = [];

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    await createTickStream(nc);
    redis = new Redis(redisServer.url);
  });

  after(async () => {
    for (const c of children) {
      c.kill('SIGKILL');
      await exited(c);
    }
    redis?.disconnect();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  it('reaches the exact state', async () => {
    const env = testEnv(nats.url, redisServer.url, { LOG_LEVEL: 'warn' });
    const js = jetstream(nc);
    const first = startService(env, log);
    children.push(first);
    await waitUntil(async () => (await redis.get(KEY.epoch)) !== null, {
      timeoutMs: 60_000,
      intervalMs: 50,
      what: 'the service to set an epoch',
    });

    const ticks = makeTicks({ producer: 'A', firstSeq: 1, n: 1500, symbols: SYMBOLS, t0: T0 });
    let published = 0;
    const publishing = (async () => {
      for (let i = 0; i < ticks.length; i += 10) {
        await publishTicks(js, ticks.slice(i, i + 10));
        published = i + 10;
        await sleep(5);
      }
    })();
    // Kill it while it is applying: some ticks applied, some not.
    await waitUntil(
      async () => {
        const seq = await storedSeq(redis, 'THYAO');
        return seq > 20 && published < ticks.length * 0.6;
      },
      { timeoutMs: 60_000, intervalMs: 10, what: 'the service to be mid-stream' },
    );
    first.kill('SIGKILL');
    await exited(first);
    const appliedAtKill = await storedSeq(redis, 'THYAO');
    await sleep(300);
    const second = startService(env, log);
    children.push(second);
    await publishing;
    const expected = await waitForExactState(nc, redis, 'exact state after kill -9 and restart', 90_000);
    const total = ticks.filter((t) => t.symbol === 'THYAO').length;
    assert.equal(expected.get('THYAO')!.state!.seq, total);
    assert.ok(
      appliedAtKill > 0 && appliedAtKill < total,
      `killed mid-stream (THYAO seq ${appliedAtKill} of ${total})`,
    );
    assert.equal(first.signalCode, 'SIGKILL');
    second.kill('SIGTERM');
    await exited(second);
    assert.equal(second.exitCode, 0, `clean shutdown; log:\n${log.join('').slice(-2000)}`);
  });
});
