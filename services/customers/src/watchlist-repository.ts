// watchlist_symbols access: a watchlist is read in one query and replaced
// whole in one transaction.
import type { Db } from './db.js';

export class WatchlistRepository {
  constructor(private readonly db: Db) {}

  /** The symbols in their order; undefined when there is no such customer. */
  async get(customerId: string): Promise<string[] | undefined> {
    // One round trip answers both "does the customer exist" and "what does it watch".
    const rows = (await this.db.timed(
      this.db
        .knex('customers as c')
        .leftJoin('watchlist_symbols as w', 'w.customer_id', 'c.id')
        .select('c.id', 'w.symbol')
        .where('c.id', customerId)
        .orderBy('w.ordinal', 'asc'),
    )) as Array<{ id: string; symbol: string | null }>;
    if (rows.length === 0) return undefined;
    return rows.flatMap((r) => (r.symbol === null ? [] : [r.symbol]));
  }

  /** Replaces the watchlist; false when there is no such customer. */
  async set(customerId: string, symbols: string[]): Promise<boolean> {
    return this.db.knex.transaction(async (trx) => {
      // Locking the customer row serializes concurrent replacements of one
      // watchlist (and makes a concurrent delete wait or win cleanly).
      const owner = await this.db.timed(trx('customers').select('id').where({ id: customerId }).forUpdate());
      if (owner.length === 0) return false;
      await this.db.timed(trx('watchlist_symbols').where({ customer_id: customerId }).delete());
      if (symbols.length > 0) {
        await this.db.timed(
          trx('watchlist_symbols').insert(
            symbols.map((symbol, ordinal) => ({ customer_id: customerId, ordinal, symbol })),
          ),
        );
      }
      return true;
    });
  }
}
