// A private redis-server (Debian package redis-server), a cache: no persistence.
import { Redis } from 'ioredis';
import { LOOPBACK } from '../ports.js';
import { findBinary, ManagedServer, newInstance, type TestServer } from './server.js';

/** redis://127.0.0.1:PORT; no persistence, so start() after stop() gives an EMPTY redis. */
export interface RedisTestServer extends TestServer {
  readonly url: string;
  flushAll(): Promise<void>;
}

/** Runs one command on a fresh connection that neither retries nor queues, then closes it. */
async function once<T>(url: string, command: (redis: Redis) => Promise<T>, timeoutMs: number): Promise<T> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

class RedisServer extends ManagedServer implements RedisTestServer {
  constructor(
    port: number,
    dataDir: string,
    private readonly binary: string,
  ) {
    super('redis', port, dataDir);
  }

  get url(): string {
    return `redis://${LOOPBACK}:${this.port}`;
  }

  protected override command() {
    return {
      file: this.binary,
      // A cache by design: no RDB, no AOF, so a restart starts empty.
      args: [
        '--port',
        String(this.port),
        '--bind',
        LOOPBACK,
        '--dir',
        this.dataDir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--logfile',
        '',
      ],
    };
  }

  protected override ready(): Promise<boolean> {
    return once(this.url, async (redis) => (await redis.ping()) === 'PONG', 1_000).catch(() => false);
  }

  async flushAll(): Promise<void> {
    if (!this.isRunning()) throw new Error(`redis test server on port ${this.port} is not running`);
    await once(this.url, (redis) => redis.flushall(), 5_000);
  }
}

/** A new redis-server on a free port with its own directory; resolves once it answers PING. */
export async function startRedis(): Promise<RedisTestServer> {
  const binary = findBinary('redis-server', 'redis-server');
  const { port, dir } = await newInstance('redis');
  return new RedisServer(port, dir, binary).firstStart();
}
