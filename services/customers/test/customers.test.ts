// CustomerService end to end: a real grpc-js client, the real server on port
// 0, and a private MariaDB (@tickmesh/harness) on its own port.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import type { Knex } from 'knex';
import type { Customer } from '@tickmesh/kit/proto';
import {
  healthClient,
  healthStatus,
  startMariaDb,
  stopAll,
  waitForHealth,
  waitUntil,
} from '@tickmesh/harness';
import { CUSTOMER_SERVICE_NAME } from '../src/customer-service.js';
import { migrateLatest, migrateRollback, migrationStatus } from '../src/migrator.js';
import { hashSecret } from '../src/api-key-secret.js';
import {
  adminKnex,
  expectStatus,
  readiness,
  startTestService,
  type CustomerApi,
  type TestService,
} from './harness.js';

const MAX_ACTIVE_KEYS = 3;

let db: Awaited<ReturnType<typeof startMariaDb>>;
let admin: Knex;
let svc: TestService;
let api: CustomerApi;
let health: Client;
let seq = 0;

/** A unique, valid email for this run. */
const email = (tag = 'c') => `${tag}.${process.pid}.${++seq}@example.com`;

async function create(
  overrides: Partial<{ firstName: string; lastName: string; email: string }> = {},
): Promise<Customer> {
  const res = await api.createCustomer({
    firstName: 'Ada',
    lastName: 'Lovelace',
    email: email(),
    ...overrides,
  });
  return res.customer!;
}

async function countCustomers(): Promise<number> {
  const rows = (await admin('customers').count({ n: '*' })) as Array<{ n: number }>;
  return Number(rows[0]!.n);
}

before(async () => {
  db = await startMariaDb();
  admin = adminKnex(db);
  // Started before the schema exists: readiness must say so (first test).
  svc = await startTestService(db, { API_KEYS_MAX_ACTIVE: String(MAX_ACTIVE_KEYS) });
  api = svc.api;
  health = healthClient(svc.address);
});

after(async () => {
  health?.close();
  await svc?.stop();
  await admin?.destroy();
  await stopAll();
});

void test('schema: NOT_SERVING with the reason until migrated; latest -> rollback -> latest', async () => {
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'NOT_SERVING');
  assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
  assert.equal(await healthStatus(health, ''), 'SERVING');
  const ready = await waitUntil(
    async () => {
      const r = await readiness(svc.httpBase);
      assert.match(r.body.dependencies?.['mysql-schema']?.error ?? '', /schema not migrated/);
      return r;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'readiness to name the unmigrated schema' },
  );
  assert.equal(ready.status, 503);
  assert.equal(ready.body.dependencies?.mysql?.up, true);
  // Calls fail as UNAVAILABLE (retry later), not INTERNAL.
  await expectStatus(
    api.createCustomer({ firstName: 'A', lastName: 'B', email: email() }),
    status.UNAVAILABLE,
  );

  assert.equal((await migrateLatest(admin)).length, 3);
  assert.deepEqual((await migrationStatus(admin)).pending, []);
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'SERVING');

  assert.equal((await migrateRollback(admin)).length, 3);
  const tables = (await admin.raw("SHOW TABLES LIKE 'customers'")) as [unknown[]];
  assert.equal(tables[0].length, 0, 'rollback dropped the tables');
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'NOT_SERVING');

  assert.equal((await migrateLatest(admin)).length, 3);
  assert.deepEqual(await migrateLatest(admin), [], 'latest twice is a no-op');
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'SERVING');
  // Explicit collations, whatever the server default: the unique key compares bytes.
  const [cols] = (await admin.raw(
    "SELECT COLUMN_NAME AS c, COLLATION_NAME AS k FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'customers'",
  )) as [Array<{ c: string; k: string | null }>];
  const collation = Object.fromEntries(cols.map((r) => [r.c, r.k]));
  assert.equal(collation.email_normalized, 'utf8mb4_bin');
  assert.equal(collation.first_name, 'utf8mb4_unicode_ci');
  assert.equal(collation.id, 'ascii_bin');
});

void test('create, get, list, update (field mask) and delete through gRPC', async () => {
  const before = Date.now();
  const c = await create({ firstName: '  Grace ', lastName: 'Hopper', email: '  Grace.Hopper@Example.ORG ' });
  assert.match(c.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(c.firstName, 'Grace');
  assert.equal(c.lastName, 'Hopper');
  assert.equal(c.email, 'Grace.Hopper@Example.ORG', 'the email keeps its case for display');
  assert.ok(c.createTimeMs >= before - 1000 && c.createTimeMs <= Date.now() + 1000);
  assert.equal(c.updateTimeMs, c.createTimeMs);

  assert.deepEqual((await api.getCustomer({ id: c.id })).customer, c);
  assert.deepEqual(
    (await api.getCustomer({ id: c.id.toUpperCase() })).customer,
    c,
    'ids are case-insensitive',
  );

  const byEmail = await api.listCustomers({ email: 'grace.hopper@example.org' });
  assert.deepEqual(byEmail.customers, [c]);
  assert.equal(byEmail.nextPageToken, '');

  // snake_case path
  const u1 = (
    await api.updateCustomer({
      id: c.id,
      firstName: 'Amazing Grace',
      lastName: 'ignored',
      updateMask: ['first_name'],
    })
  ).customer!;
  assert.equal(u1.firstName, 'Amazing Grace');
  assert.equal(u1.lastName, 'Hopper', 'a field outside the mask is untouched');
  assert.equal(u1.email, c.email);
  assert.equal(u1.createTimeMs, c.createTimeMs);
  assert.ok(u1.updateTimeMs >= c.updateTimeMs);
  // camelCase path, and an invalid value outside the mask is ignored
  const u2 = (
    await api.updateCustomer({
      id: c.id,
      lastName: 'Hopper-Murray',
      email: 'not an email',
      updateMask: ['lastName'],
    })
  ).customer!;
  assert.equal(u2.lastName, 'Hopper-Murray');
  assert.equal(u2.firstName, 'Amazing Grace');
  // empty mask: every field
  const newEmail = email('grace');
  const u3 = (await api.updateCustomer({ id: c.id, firstName: 'G', lastName: 'H', email: newEmail }))
    .customer!;
  assert.deepEqual([u3.firstName, u3.lastName, u3.email], ['G', 'H', newEmail]);
  assert.deepEqual((await api.getCustomer({ id: c.id })).customer, u3);

  await api.deleteCustomer({ id: c.id });
  await expectStatus(api.getCustomer({ id: c.id }), status.NOT_FOUND);
  await expectStatus(api.deleteCustomer({ id: c.id }), status.NOT_FOUND);
  await expectStatus(
    api.updateCustomer({ id: c.id, firstName: 'X', updateMask: ['first_name'] }),
    status.NOT_FOUND,
  );
  assert.deepEqual((await api.listCustomers({ email: newEmail })).customers, []);
});

void test('duplicate email is ALREADY_EXISTS, also when differing only in case; delete frees it', async () => {
  const addr = email('dup');
  const a = await create({ email: addr });
  await expectStatus(create({ email: addr }), status.ALREADY_EXISTS);
  await expectStatus(create({ email: addr.toUpperCase() }), status.ALREADY_EXISTS);
  await expectStatus(create({ email: ` ${addr.replace('dup', 'DuP')} ` }), status.ALREADY_EXISTS);

  const b = await create();
  await expectStatus(
    api.updateCustomer({ id: b.id, email: addr.toUpperCase(), updateMask: ['email'] }),
    status.ALREADY_EXISTS,
  );
  assert.deepEqual((await api.getCustomer({ id: b.id })).customer, b, 'a failed update changes nothing');
  // Changing only the case of one's own address is not a clash.
  const same = (await api.updateCustomer({ id: a.id, email: addr.toUpperCase(), updateMask: ['email'] }))
    .customer!;
  assert.equal(same.email, addr.toUpperCase());

  await api.deleteCustomer({ id: a.id });
  const again = await create({ email: addr });
  assert.notEqual(again.id, a.id, 'hard delete: the address can be registered again');
});

void test('injection strings are stored and returned literally', async () => {
  const hostile = [
    "Robert'); DROP TABLE customers;--",
    '" OR "1"="1',
    "\\'; SELECT SLEEP(10); --",
    '%_%',
    '<img src=x onerror=alert(1)>',
    'Ünïcödé 李 😀',
  ];
  for (const s of hostile) {
    const addr = `o'brien+${++seq}%x@example.com`;
    const c = await create({ firstName: s, lastName: s, email: addr });
    assert.equal(c.firstName, s);
    const got = (await api.getCustomer({ id: c.id })).customer!;
    assert.equal(got.firstName, s);
    assert.equal(got.lastName, s);
    assert.equal(got.email, addr);
    assert.deepEqual(
      (await api.listCustomers({ email: addr })).customers.map((x) => x.id),
      [c.id],
    );
  }
  // The filter is an equality, not a LIKE pattern: '%' matches only itself.
  assert.deepEqual((await api.listCustomers({ email: '%@example.com' })).customers, []);
  assert.ok((await countCustomers()) > 0, 'the table is still there');
});

void test('pagination: several pages with inserts and deletes in between, nothing lost or repeated', async () => {
  for (let i = 0; i < 23; i++) await create({ firstName: `Page${i}` });
  const existing = (await admin('customers').select('id').orderBy('id')) as Array<{ id: string }>;
  const mustSee = new Set(existing.map((r) => r.id));
  const toDelete = existing[existing.length - 2]!.id; // not yet visited when deleted
  mustSee.delete(toDelete);

  const seen: string[] = [];
  let token = '';
  let pages = 0;
  do {
    const page = await api.listCustomers({ pageSize: 7, pageToken: token });
    assert.ok(page.customers.length <= 7);
    seen.push(...page.customers.map((c) => c.id));
    token = page.nextPageToken;
    pages += 1;
    if (pages === 1) await api.deleteCustomer({ id: toDelete });
    // Inserts between pages: new rows sort after the cursor (UUIDv7) and may appear; none may repeat.
    if (pages <= 3) for (let i = 0; i < 3; i++) await create({ firstName: `Between${pages}-${i}` });
    assert.ok(pages < 100, 'pagination terminates');
  } while (token !== '');

  assert.ok(pages >= 4, `several pages (${pages})`);
  assert.equal(new Set(seen).size, seen.length, 'no row repeated');
  for (const id of mustSee) assert.ok(seen.includes(id), `row ${id} lost`);
  assert.ok(!seen.includes(toDelete), 'a row deleted before its page is not returned');
  assert.deepEqual([...seen].sort(), seen, 'stable id order');

  // Default and maximum page sizes.
  const all = await api.listCustomers({});
  assert.equal(all.customers.length, Math.min(50, seen.length));
  const big = await api.listCustomers({ pageSize: 100_000 });
  assert.ok(big.customers.length <= 500);
  // A token is bound to the filter it was issued for.
  const first = await api.listCustomers({ pageSize: 1 });
  await expectStatus(
    api.listCustomers({ pageSize: 1, pageToken: first.nextPageToken, email: 'x@example.com' }),
    status.INVALID_ARGUMENT,
    'page_token',
  );
});

void test('API keys: create (secret once, hash stored), list, verify, revoke, verify fails', async () => {
  const owner = await create();
  const created = await api.createApiKey({ customerId: owner.id, name: 'ci runner' });
  const secret = created.secret;
  const key = created.apiKey!;
  assert.match(secret, /^tmk_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
  assert.equal(key.prefix, secret.slice(0, 14));
  assert.equal(key.customerId, owner.id);
  assert.equal(key.name, 'ci runner');
  assert.equal(key.lastUsedTimeMs, 0);
  assert.equal(key.revokeTimeMs, 0);

  // Stored only as SHA-256: no column holds the secret.
  const row = (await admin('api_keys').where({ id: key.id }).first()) as Record<string, unknown>;
  assert.deepEqual(row.secret_sha256, hashSecret(secret));
  for (const v of Object.values(row)) assert.ok(!String(v).includes(secret.slice(15)), 'secret not stored');

  const listed = (await api.listApiKeys({ customerId: owner.id })).apiKeys;
  assert.deepEqual(listed, [key]);
  assert.ok(!JSON.stringify(listed).includes(secret.slice(15)));

  const v1 = await api.verifyApiKey({ secret });
  assert.deepEqual(v1, { customerId: owner.id, keyId: key.id });
  const used = (await api.listApiKeys({ customerId: owner.id })).apiKeys[0]!;
  assert.ok(used.lastUsedTimeMs > 0, 'last use recorded');
  await api.verifyApiKey({ secret });
  assert.equal(
    (await api.listApiKeys({ customerId: owner.id })).apiKeys[0]!.lastUsedTimeMs,
    used.lastUsedTimeMs,
    'not rewritten within a minute',
  );

  // Wrong secret with a real prefix, malformed, unknown: the same UNAUTHENTICATED.
  const last = secret.at(-1) === 'A' ? 'B' : 'A';
  const e1 = await expectStatus(
    api.verifyApiKey({ secret: secret.slice(0, -1) + last }),
    status.UNAUTHENTICATED,
  );
  const e2 = await expectStatus(api.verifyApiKey({ secret: 'tmk_nope' }), status.UNAUTHENTICATED);
  const e3 = await expectStatus(
    api.verifyApiKey({ secret: `tmk_zzzzzzzzzz_${'A'.repeat(43)}` }),
    status.UNAUTHENTICATED,
  );
  const e4 = await expectStatus(api.verifyApiKey({ secret: '' }), status.UNAUTHENTICATED);
  assert.equal(new Set([e1, e2, e3, e4].map((e) => e.details)).size, 1, 'failures are indistinguishable');

  // Another customer cannot revoke it.
  const other = await create();
  await expectStatus(api.revokeApiKey({ customerId: other.id, keyId: key.id }), status.NOT_FOUND);
  await api.revokeApiKey({ customerId: owner.id, keyId: key.id });
  const revoked = (await api.listApiKeys({ customerId: owner.id })).apiKeys[0]!;
  assert.ok(revoked.revokeTimeMs > 0);
  await expectStatus(api.verifyApiKey({ secret }), status.UNAUTHENTICATED);
  await api.revokeApiKey({ customerId: owner.id, keyId: key.id });
  assert.equal(
    (await api.listApiKeys({ customerId: owner.id })).apiKeys[0]!.revokeTimeMs,
    revoked.revokeTimeMs,
    'revoking twice keeps the first time',
  );

  // Active-key limit; revoked keys do not count; listing puts active keys first.
  const secrets: string[] = [];
  for (let i = 0; i < MAX_ACTIVE_KEYS; i++)
    secrets.push((await api.createApiKey({ customerId: owner.id, name: `k${i}` })).secret);
  await expectStatus(
    api.createApiKey({ customerId: owner.id, name: 'one too many' }),
    status.RESOURCE_EXHAUSTED,
  );
  const keys = (await api.listApiKeys({ customerId: owner.id })).apiKeys;
  assert.deepEqual(
    keys.map((k) => k.revokeTimeMs === 0),
    [true, true, true, false],
  );

  // Unknown customer; deleting the customer deletes its keys.
  await expectStatus(
    api.createApiKey({ customerId: '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e' }),
    status.NOT_FOUND,
  );
  await expectStatus(
    api.listApiKeys({ customerId: '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e' }),
    status.NOT_FOUND,
  );
  assert.equal((await api.verifyApiKey({ secret: secrets[0]! })).customerId, owner.id);
  await api.deleteCustomer({ id: owner.id });
  await expectStatus(api.verifyApiKey({ secret: secrets[0]! }), status.UNAUTHENTICATED);
  assert.equal(
    Number(
      (
        (await admin('api_keys').where({ customer_id: owner.id }).count({ n: '*' })) as Array<{ n: number }>
      )[0]!.n,
    ),
    0,
  );
});

void test('watchlists: validated, deduplicated in order, bounded, replaced whole, deleted with the customer', async () => {
  const c = await create();
  assert.deepEqual((await api.getWatchlist({ customerId: c.id })).symbols, []);
  const set = await api.setWatchlist({ customerId: c.id, symbols: ['THYAO', 'GARAN', 'THYAO', 'AKBNK'] });
  assert.deepEqual(set.symbols, ['THYAO', 'GARAN', 'AKBNK']);
  assert.deepEqual((await api.getWatchlist({ customerId: c.id })).symbols, ['THYAO', 'GARAN', 'AKBNK']);

  await expectStatus(
    api.setWatchlist({ customerId: c.id, symbols: ['ASELS', 'BIMAS', 'EREGL', 'bad.sym'] }),
    status.INVALID_ARGUMENT,
    'symbols[3]',
  );
  const tooMany = Array.from({ length: 201 }, (_, i) => `S${i}`);
  await expectStatus(
    api.setWatchlist({ customerId: c.id, symbols: tooMany }),
    status.INVALID_ARGUMENT,
    'symbols',
  );
  assert.deepEqual(
    (await api.getWatchlist({ customerId: c.id })).symbols,
    ['THYAO', 'GARAN', 'AKBNK'],
    'rejected sets change nothing',
  );

  const full = tooMany.slice(0, 200);
  assert.deepEqual((await api.setWatchlist({ customerId: c.id, symbols: full })).symbols, full);
  assert.deepEqual((await api.getWatchlist({ customerId: c.id })).symbols, full);
  assert.deepEqual((await api.setWatchlist({ customerId: c.id, symbols: [] })).symbols, []);
  assert.deepEqual((await api.getWatchlist({ customerId: c.id })).symbols, []);

  // Concurrent replacements of one watchlist serialize: the result is one of them, whole.
  const a = ['AAA', 'BBB', 'CCC'];
  const b = ['XXX', 'YYY'];
  await Promise.all([
    api.setWatchlist({ customerId: c.id, symbols: a }),
    api.setWatchlist({ customerId: c.id, symbols: b }),
  ]);
  const after = (await api.getWatchlist({ customerId: c.id })).symbols;
  assert.ok(
    JSON.stringify(after) === JSON.stringify(a) || JSON.stringify(after) === JSON.stringify(b),
    JSON.stringify(after),
  );

  const missing = '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e';
  await expectStatus(api.getWatchlist({ customerId: missing }), status.NOT_FOUND);
  await expectStatus(api.setWatchlist({ customerId: missing, symbols: ['THYAO'] }), status.NOT_FOUND);
  await api.deleteCustomer({ id: c.id });
  await expectStatus(api.getWatchlist({ customerId: c.id }), status.NOT_FOUND);
  assert.equal((await admin('watchlist_symbols').where({ customer_id: c.id })).length, 0);
});

void test('bad input per field: INVALID_ARGUMENT naming the field, and nothing changes', async (t) => {
  const c = await create();
  const countBefore = await countCustomers();
  const id = c.id;
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    [
      'empty first name',
      () => api.createCustomer({ firstName: '', lastName: 'L', email: email() }),
      'first_name',
    ],
    [
      'blank first name',
      () => api.createCustomer({ firstName: '   ', lastName: 'L', email: email() }),
      'first_name',
    ],
    [
      'over-long first name',
      () => api.createCustomer({ firstName: 'x'.repeat(101), lastName: 'L', email: email() }),
      'first_name',
    ],
    [
      'empty last name',
      () => api.createCustomer({ firstName: 'F', lastName: '', email: email() }),
      'last_name',
    ],
    [
      'over-long last name',
      () => api.createCustomer({ firstName: 'F', lastName: 'é'.repeat(101), email: email() }),
      'last_name',
    ],
    [
      'control char in name',
      () => api.createCustomer({ firstName: 'F', lastName: 'a\u0000b', email: email() }),
      'last_name',
    ],
    [
      'malformed email',
      () => api.createCustomer({ firstName: 'F', lastName: 'L', email: 'not-an-email' }),
      'email',
    ],
    ['missing email', () => api.createCustomer({ firstName: 'F', lastName: 'L', email: '' }), 'email'],
    [
      'over-long email',
      () =>
        api.createCustomer({
          firstName: 'F',
          lastName: 'L',
          email: `${'a'.repeat(60)}@${'b'.repeat(200)}.com`,
        }),
      'email',
    ],
    ['get: bad id', () => api.getCustomer({ id: "1' OR '1'='1" }), 'id'],
    ['get: empty id', () => api.getCustomer({ id: '' }), 'id'],
    ['delete: bad id', () => api.deleteCustomer({ id: 'x' }), 'id'],
    ['update: bad id', () => api.updateCustomer({ id: 'x', firstName: 'F' }), 'id'],
    [
      'update: unknown mask path',
      () => api.updateCustomer({ id, firstName: 'F', updateMask: ['first_name', 'id'] }),
      'update_mask',
    ],
    [
      'update: bad email in mask',
      () => api.updateCustomer({ id, email: 'bad', updateMask: ['email'] }),
      'email',
    ],
    [
      'update: empty mask, empty name',
      () => api.updateCustomer({ id, firstName: '', lastName: 'L', email: email() }),
      'first_name',
    ],
    ['list: garbage token', () => api.listCustomers({ pageToken: 'garbage!' }), 'page_token'],
    [
      'list: tampered token',
      () => api.listCustomers({ pageToken: Buffer.from('{"v":1,"a":"x","f":""}').toString('base64url') }),
      'page_token',
    ],
    ['list: bad email filter', () => api.listCustomers({ email: 'nope' }), 'email'],
    ['watchlist: bad customer id', () => api.getWatchlist({ customerId: 'x' }), 'customer_id'],
    [
      'watchlist: bad symbol',
      () => api.setWatchlist({ customerId: id, symbols: ['THYAO', ''] }),
      'symbols[1]',
    ],
    ['api key: bad customer id', () => api.createApiKey({ customerId: '', name: 'k' }), 'customer_id'],
    ['api key: control char in name', () => api.createApiKey({ customerId: id, name: 'a\nb' }), 'name'],
    ['api key: over-long name', () => api.createApiKey({ customerId: id, name: 'n'.repeat(101) }), 'name'],
    ['revoke: bad key id', () => api.revokeApiKey({ customerId: id, keyId: 'k' }), 'key_id'],
    ['list keys: bad customer id', () => api.listApiKeys({ customerId: 'x' }), 'customer_id'],
  ];
  for (const [name, call, field] of cases) {
    await t.test(name, () => expectStatus(call(), status.INVALID_ARGUMENT, field).then(() => undefined));
  }
  assert.equal(await countCustomers(), countBefore, 'no customer created');
  assert.deepEqual((await api.getCustomer({ id })).customer, c, 'no customer changed');
  assert.deepEqual((await api.listApiKeys({ customerId: id })).apiKeys, [], 'no key created');
  assert.deepEqual((await api.getWatchlist({ customerId: id })).symbols, [], 'no watchlist written');
});

void test('malformed protobuf bytes are INVALID_ARGUMENT, and the server keeps serving', async () => {
  const raw = new Client(svc.address, credentials.createInsecure());
  try {
    const err = await new Promise<ServiceError | null>((resolve) => {
      raw.makeUnaryRequest(
        '/tickmesh.customer.v1.CustomerService/CreateCustomer',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        { deadline: Date.now() + 10_000 },
        (e) => resolve(e),
      );
    });
    assert.equal(err?.code, status.INVALID_ARGUMENT);
  } finally {
    raw.close();
  }
  assert.ok((await create()).id);
});
