// Which database failures mean "the database is unavailable, retry later"
// (UNAVAILABLE, never INTERNAL): no connection, a dropped connection, a
// timeout, a server going down or read-only, lock contention, a schema that
// is not migrated. Callers see a fixed message; the cause goes to the log.
import { DomainError, UnavailableError } from '@tickmesh/kit';

const UNAVAILABLE_CODES = new Set([
  // network
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // mysql2 client-side
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  // server-side
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_OPTION_PREVENTS_STATEMENT', // read-only server (failover in progress)
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_NO_SUCH_TABLE', // schema not migrated (readiness says so too)
  'ER_BAD_FIELD_ERROR', // schema older than the code
]);

const CLOSED_CONNECTION = /closed state|connection lost|connection is closed|Pool is closed/i;

interface DriverError {
  code?: unknown;
  fatal?: unknown;
  name?: unknown;
  message?: unknown;
}

export function isUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as DriverError;
  if (e.name === 'KnexTimeoutError') return true; // acquire or query timeout
  if (e.fatal === true) return true; // mysql2: the connection is unusable
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  return e.code === undefined && typeof e.message === 'string' && CLOSED_CONNECTION.test(e.message);
}

/** True for a duplicate-key error on the named unique index. */
export function isDuplicateKey(err: unknown, indexName: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as DriverError;
  return e.code === 'ER_DUP_ENTRY' && typeof e.message === 'string' && e.message.includes(indexName);
}

/**
 * Runs a database operation; an outage becomes UnavailableError (logged by
 * `onUnavailable`), domain errors pass, anything else is rethrown (INTERNAL).
 */
export async function guardDb<T>(run: () => Promise<T>, onUnavailable: (err: unknown) => void): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (isUnavailable(err)) {
      onUnavailable(err);
      throw new UnavailableError('customer database unavailable, retry later');
    }
    throw err;
  }
}
