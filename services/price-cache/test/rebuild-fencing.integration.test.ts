// The rebuild's cleanup against a real Redis: a rebuilder that stalled past
// its lock TTL must not delete what its successor (who took the lock) wrote.
// The successor's takeover is placed exactly between the stale rebuilder's
// lock check and its delete, by running it on a second connection just before
// the stale rebuilder's first write command goes out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RedisTestServer } from '@tickmesh/harness';
import { KEY, RedisStore } from '../src/redis-store.js';

type SendCommand = (command: { name: string; promise: Promise<unknown> }, stream?: unknown) => unknown;

describe('rebuild cleanup is fenced by the lock', () => {
  let server: RedisTestServer | undefined;
  let stale: Redis | undefined;
  let successor: Redis | undefined;
  before(async () => {
    server = await startRedis();
    stale = new Redis(server.url, { maxRetriesPerRequest: 1 });
    successor = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    stale?.disconnect();
    successor?.disconnect();
    await server?.stop();
  });

  it('a rebuilder whose lock passed to a successor deletes nothing the successor restored', async () => {
    const redis = stale!;
    const other = successor!;
    await redis.set(KEY.lock, 'stale', 'PX', 60_000);
    await redis.hset(KEY.quote('OLD'), 'ss', '1');
    const store = new RedisStore(redis, { retention: { s: 60, m: 30 }, lateTickBoundMs: 5000 });
    // The stale rebuilder's lock expires and the successor restores a symbol
    // right before the stale one's first write reaches Redis.
    const r = redis as unknown as { sendCommand: SendCommand };
    const send = r.sendCommand.bind(redis);
    let tookOver = false;
    r.sendCommand = (command, stream) => {
      const name = command.name.toLowerCase();
      if (!tookOver && (name === 'del' || name === 'eval' || name === 'evalsha' || name === 'unlink')) {
        tookOver = true;
        void other
          .multi()
          .set(KEY.lock, 'successor', 'PX', 60_000)
          .hset(KEY.quote('OLD'), 'ss', '9')
          .exec()
          .then(() => send(command, stream));
        return command.promise;
      }
      return send(command, stream);
    };
    await assert.rejects(store.clear('stale'), /rebuild lock lost/);
    assert.ok(tookOver, 'the takeover happened between check and delete');
    assert.equal(await other.get(KEY.lock), 'successor');
    assert.equal(await other.hget(KEY.quote('OLD'), 'ss'), '9', 'the key the successor restored survives');
  });
});
