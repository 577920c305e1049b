// customers table access. Parameterized queries only (knex bindings): any
// string, injection attempts included, is stored and returned literally.
import { AlreadyExistsError } from '@tickmesh/kit';
import type { Db } from './db.js';
import { isDuplicateKey } from './db-errors.js';

export const EMAIL_UNIQUE_INDEX = 'customers_email_normalized_unique';

export interface CustomerRow {
  id: string;
  first_name: string;
  last_name: string;
  email: string;
  email_normalized: string;
  create_time_ms: number;
  update_time_ms: number;
}

export type CustomerPatch = Partial<
  Pick<CustomerRow, 'first_name' | 'last_name' | 'email' | 'email_normalized'>
>;

const COLUMNS = [
  'id',
  'first_name',
  'last_name',
  'email',
  'email_normalized',
  'create_time_ms',
  'update_time_ms',
] as const;

function emailTaken(err: unknown): never {
  if (isDuplicateKey(err, EMAIL_UNIQUE_INDEX))
    throw new AlreadyExistsError('a customer with this email already exists');
  throw err;
}

export class CustomerRepository {
  constructor(private readonly db: Db) {}

  async create(row: CustomerRow): Promise<CustomerRow> {
    await this.db.timed(this.db.knex('customers').insert(row)).catch(emailTaken);
    return row;
  }

  async get(id: string): Promise<CustomerRow | undefined> {
    const rows = await this.db.timed(this.db.knex('customers').select(COLUMNS).where({ id }).limit(1));
    return normalizeRow(rows[0] as CustomerRow | undefined);
  }

  /** Up to `limit` customers after `afterId` in id order, optionally with one normalized email. */
  async list(opts: { afterId?: string; emailNormalized?: string; limit: number }): Promise<CustomerRow[]> {
    const q = this.db.knex('customers').select(COLUMNS).orderBy('id', 'asc').limit(opts.limit);
    if (opts.afterId !== undefined) q.where('id', '>', opts.afterId);
    if (opts.emailNormalized !== undefined) q.where('email_normalized', opts.emailNormalized);
    const rows = (await this.db.timed(q)) as CustomerRow[];
    return rows.map((r) => normalizeRow(r)!);
  }

  /** Applies `patch`; undefined when there is no such customer. */
  async update(id: string, patch: CustomerPatch, now: number): Promise<CustomerRow | undefined> {
    return this.db.knex.transaction(async (trx) => {
      await this.db
        .timed(
          trx('customers')
            .where({ id })
            .update({ ...patch, update_time_ms: now }),
        )
        .catch(emailTaken);
      const rows = await this.db.timed(trx('customers').select(COLUMNS).where({ id }).limit(1));
      return normalizeRow(rows[0] as CustomerRow | undefined);
    });
  }

  /** Hard delete (watchlist and API keys go with it, ON DELETE CASCADE); false when absent. */
  async delete(id: string): Promise<boolean> {
    const deleted = await this.db.timed(this.db.knex('customers').where({ id }).delete());
    return deleted > 0;
  }
}

// mysql2 returns BIGINT as a number when it fits (always, for ms times) but as
// a string when it would not: normalize so a surprise cannot leak into the API.
function normalizeRow(row: CustomerRow | undefined): CustomerRow | undefined {
  if (!row) return undefined;
  return { ...row, create_time_ms: Number(row.create_time_ms), update_time_ms: Number(row.update_time_ms) };
}
