// customers: one row per account. The email is kept twice: as given (shown
// back) and lower-cased under a UNIQUE index, so addresses differing only in
// case clash (ER_DUP_ENTRY -> ALREADY_EXISTS). Collations are explicit
// because MySQL 8 (utf8mb4_0900_ai_ci) and MariaDB 10.11 (utf8mb4_general_ci)
// default differently; utf8mb4_bin on the unique key keeps equality exact.
// Times are epoch milliseconds written by the service (BIGINT): no time-zone
// conversion anywhere between the API, the driver and the server.
import type { Knex } from 'knex';

export const name = '20251122_01_create_customers';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE customers (
      id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      first_name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
      last_name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
      email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
      email_normalized VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
      create_time_ms BIGINT NOT NULL,
      update_time_ms BIGINT NOT NULL,
      PRIMARY KEY (id),
      UNIQUE KEY customers_email_normalized_unique (email_normalized)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE customers');
}
