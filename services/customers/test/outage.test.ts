// MySQL outages: the test's own MariaDB (never the shared one) is stopped,
// killed and started again; calls answer UNAVAILABLE (not INTERNAL, not a
// hang), readiness goes NOT_SERVING while liveness stays SERVING, and the
// service recovers by itself. A hung server (SIGSTOP) is bounded by the
// query and connect timeouts, and so is one that accepts TCP but never speaks.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { status, type Client } from '@grpc/grpc-js';
import {
  healthClient,
  healthStatus,
  startMariaDb,
  stopAll,
  waitForHealth,
  waitUntil,
} from '@tickmesh/harness';
import { CUSTOMER_SERVICE_NAME } from '../src/customer-service.js';
import { migrateLatest } from '../src/migrator.js';
import { adminKnex, expectStatus, readiness, startTestService, type TestService } from './harness.js';

// Short timeouts so each failing call ends quickly; health checks every 200 ms.
const FAST = {
  MYSQL_CONNECT_TIMEOUT_MS: '1000',
  MYSQL_ACQUIRE_TIMEOUT_MS: '2000',
  MYSQL_QUERY_TIMEOUT_MS: '3000',
};

let db: Awaited<ReturnType<typeof startMariaDb>>;
let svc: TestService;
let health: Client;

before(async () => {
  db = await startMariaDb();
  const admin = adminKnex(db);
  try {
    await migrateLatest(admin);
  } finally {
    await admin.destroy();
  }
  svc = await startTestService(db, FAST);
  health = healthClient(svc.address);
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'SERVING', 30_000);
});

after(async () => {
  health?.close();
  await svc?.stop();
  await stopAll();
});

async function outageAndRecovery(takeDown: () => Promise<void>): Promise<void> {
  const { api } = svc;
  const c = (
    await api.createCustomer({ firstName: 'Out', lastName: 'Age', email: `outage.${Date.now()}@example.com` })
  ).customer!;
  const { secret } = await api.createApiKey({ customerId: c.id, name: 'gateway' });

  await takeDown();
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'NOT_SERVING', 30_000);
  assert.equal(await healthStatus(health, 'liveness'), 'SERVING', 'liveness is the process alone');
  assert.equal(await healthStatus(health, ''), 'SERVING');
  const ready = await readiness(svc.httpBase);
  assert.equal(ready.status, 503);
  assert.equal(ready.body.dependencies?.mysql?.up, false);

  await expectStatus(api.getCustomer({ id: c.id }), status.UNAVAILABLE);
  await expectStatus(
    api.createCustomer({ firstName: 'A', lastName: 'B', email: `down.${Date.now()}@example.com` }),
    status.UNAVAILABLE,
  );
  await expectStatus(api.listCustomers({}), status.UNAVAILABLE);
  // The gateway must be able to tell "database down" from "bad key".
  await expectStatus(api.verifyApiKey({ secret }), status.UNAVAILABLE);
  // Bad input is still answered as such, without the database.
  await expectStatus(api.getCustomer({ id: 'x' }), status.INVALID_ARGUMENT, 'id');

  await db.start();
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'SERVING', 60_000);
  const got = await waitUntil(() => api.getCustomer({ id: c.id }), {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: 'the customer readable again',
  });
  assert.deepEqual(got.customer, c);
  assert.equal((await api.verifyApiKey({ secret })).customerId, c.id);
  assert.ok(
    (await api.createCustomer({ firstName: 'Back', lastName: 'Up', email: `back.${Date.now()}@example.com` }))
      .customer!.id,
  );
}

void test('database stopped and restarted: UNAVAILABLE and NOT_SERVING, then recovers by itself', async () => {
  await outageAndRecovery(() => db.stop());
});

void test('database killed (SIGKILL) and restarted: the same, after crash recovery', async () => {
  await outageAndRecovery(() => db.kill());
  const metrics = await (
    await fetch(`${svc.httpBase}/metrics`, { signal: AbortSignal.timeout(5000) })
  ).text();
  const counted = [...metrics.matchAll(/^tickmesh_customers_db_unavailable_total\{[^}]*\} (\d+)/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  assert.ok(counted >= 8, `outage calls counted (${counted})`);
});

void test('database hung (SIGSTOP): calls end UNAVAILABLE at the query timeout, then recover on SIGCONT', async () => {
  const { api } = svc;
  const c = (
    await api.createCustomer({
      firstName: 'Hung',
      lastName: 'Server',
      email: `hung.${Date.now()}@example.com`,
    })
  ).customer!;
  await db.pause(); // resolves once every thread of the server has stopped
  try {
    // The pooled connection's query times out (MYSQL_QUERY_TIMEOUT_MS); new connections
    // time out in the handshake (MYSQL_CONNECT_TIMEOUT_MS). Neither waits for the client deadline.
    await expectStatus(api.getCustomer({ id: c.id }), status.UNAVAILABLE);
    await expectStatus(api.getCustomer({ id: c.id }), status.UNAVAILABLE);
    await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'NOT_SERVING', 30_000);
    assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
  } finally {
    db.resume();
  }
  await waitForHealth(health, CUSTOMER_SERVICE_NAME, 'SERVING', 60_000);
  assert.deepEqual(
    (
      await waitUntil(() => api.getCustomer({ id: c.id }), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: 'the customer readable again',
      })
    ).customer,
    c,
  );
});

void test('a server that accepts connections but never answers: bounded by the connect timeout', async () => {
  const sockets = new Set<Socket>();
  const blackhole: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  blackhole.listen(0, '127.0.0.1');
  await once(blackhole, 'listening');
  const port = (blackhole.address() as { port: number }).port;
  const stuck = await startTestService(
    { port },
    { ...FAST, MYSQL_CONNECT_TIMEOUT_MS: '500', MYSQL_ACQUIRE_TIMEOUT_MS: '1500' },
  );
  const h = healthClient(stuck.address);
  try {
    await expectStatus(
      stuck.api.getCustomer({ id: '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e' }),
      status.UNAVAILABLE,
    );
    assert.equal(await healthStatus(h, CUSTOMER_SERVICE_NAME), 'NOT_SERVING');
    assert.equal(await healthStatus(h, 'liveness'), 'SERVING');
  } finally {
    h.close();
    await stuck.stop();
    for (const s of sockets) s.destroy();
    blackhole.close();
  }
});
