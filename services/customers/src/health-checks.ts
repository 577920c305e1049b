// Readiness of CustomerService: MySQL answers, and the schema is migrated.
import type { DependencyCheck } from '@tickmesh/kit';
import type { Db } from './db.js';
import { MIGRATE_HINT, missingMigrations } from './migrator.js';

export function mysqlCheck(db: Db, timeoutMs: number): DependencyCheck {
  return {
    name: 'mysql',
    timeoutMs,
    check: async () => {
      await db.knex.raw('SELECT 1').timeout(timeoutMs);
    },
  };
}

export function schemaCheck(db: Db, timeoutMs: number): DependencyCheck {
  return {
    name: 'mysql-schema',
    timeoutMs,
    check: async () => {
      const missing = await missingMigrations(db.knex, timeoutMs);
      if (missing.length > 0)
        throw new Error(`schema not migrated (missing ${missing.join(', ')}): ${MIGRATE_HINT}`);
    },
  };
}
