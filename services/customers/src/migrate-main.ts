// Schema migrations CLI, run by `make up` and by the Kubernetes Job:
//   node dist/services/customers/src/migrate-main.js latest|rollback [--all]|status
// (tsx services/customers/src/migrate-main.ts ... from source). Exits 0 on
// success, 1 on failure (the Job retries), 2 on bad usage or configuration.
import { setTimeout as sleep } from 'node:timers/promises';
import knex, { type Knex } from 'knex';
import { loadConfig, createLogger, runMain } from '@tickmesh/kit';
import { migrateConfigSpec } from './config.js';
import { knexConfig } from './db.js';
import { isUnavailable } from './db-errors.js';
import { migrateLatest, migrateRollback, migrationStatus } from './migrator.js';

// MySQL may still be starting (a fresh pod, `make up` right after the server):
// retry the first connection for a while rather than fail at once.
async function waitForDatabase(db: Knex, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await db.raw('SELECT 1');
      return;
    } catch (err) {
      if (!isUnavailable(err) || Date.now() >= deadline) throw err;
      logger.warn({ attempt, err: err instanceof Error ? err.message : String(err) }, 'waiting for MySQL');
      await sleep(Math.min(500 * attempt, 3000));
    }
  }
}

const USAGE = 'usage: migrate-main latest | rollback [--all] | status';
const command = process.argv[2];
const logger = createLogger('customers-migrate', process.env.LOG_LEVEL || 'info');

runMain(
  () => logger,
  async () => {
    if (process.argv.includes('--help')) process.stdout.write(`${USAGE}\n\n`);
    if (
      command !== 'latest' &&
      command !== 'rollback' &&
      command !== 'status' &&
      !process.argv.includes('--help')
    ) {
      process.stderr.write(`${USAGE}\n`);
      process.exit(2);
    }
    const config = loadConfig('customers-migrate', migrateConfigSpec);
    logger.level = config.LOG_LEVEL;
    // One connection is all a migration needs (see knexConfig).
    const db = knex(knexConfig(config, { logger }));
    try {
      await waitForDatabase(db, config.MIGRATE_WAIT_MS);
      if (command === 'latest') {
        const applied = await migrateLatest(db);
        logger.info(
          { applied },
          applied.length ? `applied ${applied.length} migration(s)` : 'schema already up to date',
        );
      } else if (command === 'rollback') {
        const all = process.argv.includes('--all');
        const rolledBack = await migrateRollback(db, all);
        logger.info(
          { rolledBack },
          rolledBack.length ? `rolled back ${rolledBack.length} migration(s)` : 'nothing to roll back',
        );
      } else {
        const status = await migrationStatus(db);
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      }
    } finally {
      await db.destroy();
    }
  },
);
