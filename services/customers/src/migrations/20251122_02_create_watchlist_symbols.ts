// watchlist_symbols: a customer's watchlist, one row per symbol, `ordinal`
// keeping the order the customer chose. Deleting a customer deletes it
// (ON DELETE CASCADE).
import type { Knex } from 'knex';

export const name = '20251122_02_create_watchlist_symbols';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE watchlist_symbols (
      customer_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      ordinal SMALLINT UNSIGNED NOT NULL,
      symbol VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      PRIMARY KEY (customer_id, ordinal),
      UNIQUE KEY watchlist_symbols_customer_symbol_unique (customer_id, symbol),
      CONSTRAINT watchlist_symbols_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE watchlist_symbols');
}
