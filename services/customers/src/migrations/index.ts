// The schema's migrations, in order. They are imported rather than found by
// scanning a folder, so the same list runs from source (tsx, tests) and from
// dist/ (the image and the Kubernetes Job) with no file-extension or path
// juggling; each name is what knex records in its migrations table.
// To add one: write NNN_<what>.ts exporting name/up/down and append it here
// (never rename or reorder: the names are recorded in databases).
import type { Knex } from 'knex';
import * as createCustomers from './20251122_01_create_customers.js';
import * as createWatchlistSymbols from './20251122_02_create_watchlist_symbols.js';
import * as createApiKeys from './20251122_03_create_api_keys.js';

export interface NamedMigration extends Knex.Migration {
  name: string;
}

export const MIGRATIONS: readonly NamedMigration[] = [createCustomers, createWatchlistSymbols, createApiKeys];

/** The table knex records applied migrations in (and `<table>_lock` for its lock). */
export const MIGRATIONS_TABLE = 'knex_migrations';

export const migrationSource: Knex.MigrationSource<NamedMigration> = {
  getMigrations: () => Promise.resolve([...MIGRATIONS]),
  getMigrationName: (m) => m.name,
  getMigration: (m) => Promise.resolve(m),
};
