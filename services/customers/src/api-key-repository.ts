// api_keys access. Secrets never reach this module: only their SHA-256.
import type { Db } from './db.js';
import { isDuplicateKey } from './db-errors.js';

export const PREFIX_UNIQUE_INDEX = 'api_keys_prefix_unique';
/** ListApiKeys returns at most this many keys: every active one first, then the newest revoked. */
export const LIST_LIMIT = 100;

export interface ApiKeyRow {
  id: string;
  customer_id: string;
  name: string;
  prefix: string;
  secret_sha256: Buffer;
  create_time_ms: number;
  last_used_time_ms: number | null;
  revoke_time_ms: number | null;
}

export type CreateKeyResult =
  | { kind: 'created'; row: ApiKeyRow }
  | { kind: 'no-customer' }
  | { kind: 'limit' }
  | { kind: 'prefix-taken' };

const LISTED = [
  'id',
  'customer_id',
  'name',
  'prefix',
  'create_time_ms',
  'last_used_time_ms',
  'revoke_time_ms',
] as const;

export class ApiKeyRepository {
  constructor(private readonly db: Db) {}

  /** Inserts `row` unless the customer is missing or already holds `maxActive` unrevoked keys. */
  async create(row: ApiKeyRow, maxActive: number): Promise<CreateKeyResult> {
    try {
      return await this.db.knex.transaction(async (trx) => {
        // The customer row lock makes "count, then insert" atomic per customer.
        const owner = await this.db.timed(
          trx('customers').select('id').where({ id: row.customer_id }).forUpdate(),
        );
        if (owner.length === 0) return { kind: 'no-customer' } as const;
        const counted = (await this.db.timed(
          trx('api_keys')
            .count({ n: '*' })
            .where({ customer_id: row.customer_id })
            .whereNull('revoke_time_ms'),
        )) as Array<{ n: number | string }>;
        if (Number(counted[0]?.n ?? 0) >= maxActive) return { kind: 'limit' } as const;
        await this.db.timed(trx('api_keys').insert(row));
        return { kind: 'created', row } as const;
      });
    } catch (err) {
      if (isDuplicateKey(err, PREFIX_UNIQUE_INDEX)) return { kind: 'prefix-taken' };
      throw err;
    }
  }

  /** The customer's keys (no hashes); undefined when there is no such customer. */
  async list(customerId: string): Promise<Omit<ApiKeyRow, 'secret_sha256'>[] | undefined> {
    const [owner, rows] = await Promise.all([
      this.db.timed(this.db.knex('customers').select('id').where({ id: customerId }).limit(1)),
      this.db.timed(
        this.db
          .knex('api_keys')
          .select(LISTED)
          .where({ customer_id: customerId })
          // Active keys first (NULL revoke time), then newest first.
          .orderByRaw('revoke_time_ms IS NULL DESC, id DESC')
          .limit(LIST_LIMIT),
      ),
    ]);
    if (owner.length === 0) return undefined;
    return (rows as Omit<ApiKeyRow, 'secret_sha256'>[]).map(normalizeTimes);
  }

  /**
   * Revokes a key of this customer; revoking twice keeps the first time.
   * Returns the row as it is now, or undefined when the customer has no such key.
   */
  async revoke(
    customerId: string,
    keyId: string,
    now: number,
  ): Promise<Omit<ApiKeyRow, 'secret_sha256'> | undefined> {
    return this.db.knex.transaction(async (trx) => {
      await this.db.timed(
        trx('api_keys')
          .where({ id: keyId, customer_id: customerId })
          .whereNull('revoke_time_ms')
          .update({ revoke_time_ms: now }),
      );
      const rows = await this.db.timed(
        trx('api_keys').select(LISTED).where({ id: keyId, customer_id: customerId }).limit(1),
      );
      const row = rows[0] as Omit<ApiKeyRow, 'secret_sha256'> | undefined;
      return row ? normalizeTimes(row) : undefined;
    });
  }

  async findByPrefix(prefix: string): Promise<ApiKeyRow | undefined> {
    const rows = await this.db.timed(this.db.knex('api_keys').select('*').where({ prefix }).limit(1));
    const row = rows[0] as ApiKeyRow | undefined;
    return row ? normalizeTimes(row) : undefined;
  }

  /**
   * Records a use unless one was recorded after `notBefore`. The condition is
   * in the WHERE clause, so replicas racing on the same key write it once.
   */
  async touchLastUsed(id: string, now: number, notBefore: number): Promise<void> {
    await this.db.timed(
      this.db
        .knex('api_keys')
        .where({ id })
        .where((w) => w.whereNull('last_used_time_ms').orWhere('last_used_time_ms', '<', notBefore))
        .update({ last_used_time_ms: now }),
    );
  }
}

function normalizeTimes<T extends Pick<ApiKeyRow, 'create_time_ms' | 'last_used_time_ms' | 'revoke_time_ms'>>(
  row: T,
): T {
  return {
    ...row,
    create_time_ms: Number(row.create_time_ms),
    last_used_time_ms: row.last_used_time_ms === null ? null : Number(row.last_used_time_ms),
    revoke_time_ms: row.revoke_time_ms === null ? null : Number(row.revoke_time_ms),
  };
}
