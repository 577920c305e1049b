// Runs the schema migrations (latest / rollback / status) and tells whether
// a database carries them all: the service never migrates by itself in
// production (a Kubernetes Job does, `make up` locally), but its readiness
// says NOT_SERVING, with the reason, until the schema is there.
import type { Knex } from 'knex';
import { MIGRATIONS, MIGRATIONS_TABLE, migrationSource } from './migrations/index.js';

const MIGRATOR_CONFIG: Knex.MigratorConfig = { migrationSource, tableName: MIGRATIONS_TABLE };

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

/** Applies every pending migration (one batch); returns the names applied. */
export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, names] = (await knex.migrate.latest(MIGRATOR_CONFIG)) as [number, string[]];
  return names;
}

/** Rolls back the last batch, or every batch with `all`; returns the names rolled back. */
export async function migrateRollback(knex: Knex, all = false): Promise<string[]> {
  const [, names] = (await knex.migrate.rollback(MIGRATOR_CONFIG, all)) as [number, string[]];
  return names;
}

export async function migrationStatus(knex: Knex): Promise<MigrationStatus> {
  const [completed, pending] = (await knex.migrate.list(MIGRATOR_CONFIG)) as [
    Array<{ name: string }>,
    Array<{ name: string } | string>,
  ];
  return {
    applied: completed.map((m) => m.name),
    pending: pending.map((m) => (typeof m === 'string' ? m : m.name)),
  };
}

export const MIGRATE_HINT = 'run `node dist/services/customers/src/migrate-main.js latest` (make up does)';

/**
 * Names of known migrations the database lacks (empty: schema ready).
 * Migrations the database has but this code does not know (a newer version
 * rolled forward) are fine: they are additive by rule.
 */
export async function missingMigrations(knex: Knex, timeoutMs: number): Promise<string[]> {
  let applied: Set<string>;
  try {
    const rows = (await knex(MIGRATIONS_TABLE).select('name').timeout(timeoutMs)) as Array<{ name: string }>;
    applied = new Set(rows.map((r) => r.name));
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ER_NO_SUCH_TABLE') return MIGRATIONS.map((m) => m.name);
    throw err;
  }
  return MIGRATIONS.map((m) => m.name).filter((n) => !applied.has(n));
}
