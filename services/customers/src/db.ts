// The MySQL/MariaDB connection pool (knex + mysql2) with every wait bounded:
// connecting (MYSQL_CONNECT_TIMEOUT_MS), waiting for a pooled connection
// (MYSQL_ACQUIRE_TIMEOUT_MS) and each query (MYSQL_QUERY_TIMEOUT_MS, applied
// by the repositories through `Db.timed`). A connection whose query timed out
// is discarded by knex rather than reused, and dead connections fail
// validation, so the pool heals by itself after an outage.
import knex, { type Knex } from 'knex';
import type { Logger } from '@tickmesh/kit';
import type { MysqlConfig, MysqlConnectionConfig } from './config.js';

export interface Db {
  readonly knex: Knex;
  readonly queryTimeoutMs: number;
  /** Bounds one query by the configured timeout. */
  timed<T extends { timeout(ms: number): T }>(query: T): T;
  close(): Promise<void>;
}

// Every session: strict mode (an over-long value is an error, never silently
// truncated) and UTC, whatever the server's defaults are.
const SESSION_SETUP =
  "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'";

interface RawConnection {
  query(options: { sql: string; timeout: number }, cb: (err: Error | null) => void): void;
}

/**
 * knex settings. Without pool settings (migrate-main) the pool is one
 * connection with no query timeout: DDL on a big table takes its time.
 */
export function knexConfig(
  config: MysqlConnectionConfig & Partial<MysqlConfig>,
  opts: { logger?: Logger } = {},
): Knex.Config {
  const log = opts.logger?.child({ component: 'knex' });
  return {
    client: 'mysql2',
    // knex's own warnings (e.g. a failed connection attempt) go to the JSON log, not stdout.
    ...(log && {
      log: {
        // Failed connection attempts are reported (throttled) by the callers and
        // the health checks; knex would log each one.
        warn: (message: unknown) =>
          String(message).startsWith('Acquire connection error')
            ? log.debug({ detail: String(message) }, 'knex warning')
            : log.warn({ detail: String(message) }, 'knex warning'),
        error: (message: unknown) => log.error({ detail: String(message) }, 'knex error'),
        deprecate: (method: string, alternative: string) =>
          log.warn({ method, alternative }, 'knex deprecation'),
        debug: () => undefined,
      },
    }),
    connection: {
      host: config.MYSQL_HOST,
      port: config.MYSQL_PORT,
      user: config.MYSQL_USER,
      password: config.MYSQL_PASSWORD,
      database: config.MYSQL_DATABASE,
      connectTimeout: config.MYSQL_CONNECT_TIMEOUT_MS,
      // knex also uses this as the charset of its own migrations table.
      charset: 'utf8mb4',
      // BIGINT millisecond times come back as numbers (they stay far below 2^53).
      supportBigNumbers: true,
      bigNumberStrings: false,
      // Defence in depth: queries are parameterized, and one call can never carry two statements.
      multipleStatements: false,
      enableKeepAlive: true,
    },
    pool: {
      min: config.MYSQL_POOL_MIN ?? 0,
      max: config.MYSQL_POOL_MAX ?? 1,
      // A connection attempt (TCP + handshake + session setup) may not hang the pool.
      createTimeoutMillis: config.MYSQL_CONNECT_TIMEOUT_MS * 2,
      idleTimeoutMillis: 30_000,
      afterCreate: (conn: RawConnection, done: (err: Error | null, conn: RawConnection) => void) => {
        conn.query({ sql: SESSION_SETUP, timeout: config.MYSQL_CONNECT_TIMEOUT_MS }, (err) =>
          done(err, conn),
        );
      },
    },
    acquireConnectionTimeout: config.MYSQL_ACQUIRE_TIMEOUT_MS ?? config.MYSQL_CONNECT_TIMEOUT_MS * 3,
  };
}

export function createDb(config: MysqlConfig, logger?: Logger): Db {
  const k = knex(knexConfig(config, { logger }));
  const queryTimeoutMs = config.MYSQL_QUERY_TIMEOUT_MS;
  return {
    knex: k,
    queryTimeoutMs,
    timed: (query) => query.timeout(queryTimeoutMs),
    close: () => k.destroy(),
  };
}
