// Redis connection used by the price-cache. Commands fail fast while Redis is
// down (no offline queue: callers get UNAVAILABLE, nothing waits unbounded),
// and the client reconnects by itself.
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { DependencyCheck } from '../health.js';

export function connectRedis(url: string, logger: Logger, name = 'tickmesh'): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    connectTimeout: 2000,
    commandTimeout: 2000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1000),
    lazyConnect: false,
  });
  let wasReady = false;
  redis.on('ready', () => {
    logger.info({ url: redactRedisUrl(url) }, 'connected to Redis');
    wasReady = true;
  });
  redis.on('error', (err: Error) => {
    if (wasReady) logger.warn({ err: err.message }, 'Redis connection error');
    wasReady = false;
  });
  return redis;
}

export function redisCheck(redis: Redis): DependencyCheck {
  return {
    name: 'redis',
    timeoutMs: 1500,
    check: async () => {
      if (redis.status !== 'ready') throw new Error(`connection ${redis.status}`);
      await redis.ping();
    },
  };
}

function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//<redacted>@');
}
