// api_keys: only the SHA-256 of a secret is stored (see api-key-secret.ts);
// `prefix` (unique) is how VerifyApiKey finds the row. Revocation sets
// revoke_time_ms and keeps the row for the listing; deleting the customer
// deletes the keys (ON DELETE CASCADE), so they stop verifying at once.
import type { Knex } from 'knex';

export const name = '20251122_03_create_api_keys';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE api_keys (
      id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      customer_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
      prefix VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      secret_sha256 BINARY(32) NOT NULL,
      create_time_ms BIGINT NOT NULL,
      last_used_time_ms BIGINT NULL,
      revoke_time_ms BIGINT NULL,
      PRIMARY KEY (id),
      UNIQUE KEY api_keys_prefix_unique (prefix),
      KEY api_keys_customer_idx (customer_id, id),
      CONSTRAINT api_keys_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE api_keys');
}
