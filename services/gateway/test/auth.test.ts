// Authentication over real sockets: API keys checked by a CustomerService
// served in-process by the kit, signed JWTs, and the auth timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { CustomerServiceClient, CustomerServiceService } from '@tickmesh/kit/proto';
import { waitUntil } from '@tickmesh/harness';
import {
  commonConfig,
  grpcServerConfig,
  parseConfig,
  UnauthenticatedError,
  UnavailableError,
  createClient,
  createLogger,
  createMetricsRegistry,
  serveGrpc,
  type RunningGrpcService,
} from '@tickmesh/kit';
import { ApiKeyAuthenticator, JwtAuthenticator, verifyWithCustomerService } from '../src/auth.js';
import { grpcHealthCheck } from '../src/grpc-health-client.js';
import { ScriptedMarket, startScriptedUpstream, type ScriptedUpstream } from './support/scripted-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway-harness.js';
import { TestClient } from './support/ws-client.js';

const JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';

let verifyCalls = 0;

async function startCustomers(port = 0): Promise<RunningGrpcService> {
  const notHere = () => Promise.reject(new UnavailableError('not in this test'));
  return serveGrpc({
    kit: {
      logger: createLogger('customers-test', 'silent'),
      registry: createMetricsRegistry('customers-test'),
    },
    config: parseConfig(
      { ...commonConfig, ...grpcServerConfig },
      {
        LOG_LEVEL: 'silent',
        METRICS_HOST: '127.0.0.1',
        SHUTDOWN_TIMEOUT_MS: '500',
        GRPC_HOST: '127.0.0.1',
        GRPC_MAX_CONNECTION_AGE_MS: '0',
        GRPC_REFLECTION: 'false',
      },
    ),
    grpcPort: port,
    services: ['tickmesh.customer.v1.CustomerService'],
    checks: [],
    handleSignals: false,
    register: (server) => {
      const h = server.handlers;
      server.addService('tickmesh.customer.v1.CustomerService', CustomerServiceService, {
        createCustomer: h.unary(notHere),
        getCustomer: h.unary(notHere),
        listCustomers: h.unary(notHere),
        updateCustomer: h.unary(notHere),
        deleteCustomer: h.unary(notHere),
        getWatchlist: h.unary(notHere),
        setWatchlist: h.unary(notHere),
        createApiKey: h.unary(notHere),
        listApiKeys: h.unary(notHere),
        revokeApiKey: h.unary(notHere),
        verifyApiKey: h.unary(async (req: { secret: string }) => {
          verifyCalls++;
          if (req.secret === 'tm_good_key') return { customerId: 'c-1', keyId: 'k-1' };
          throw new UnauthenticatedError('unknown API key');
        }),
      });
    },
  });
}

void describe('api-key mode', () => {
  let up: ScriptedUpstream;
  let customers: RunningGrpcService;
  let gw: TestGateway;
  let client: CustomerServiceClient;

  before(async () => {
    up = await startScriptedUpstream(new ScriptedMarket([{ symbol: 'THYAO', price: 250 }]));
    customers = await startCustomers();
    client = createClient(CustomerServiceClient, `127.0.0.1:${customers.grpcPort}`, {
      unaryDeadlineMs: 500,
      service: 'tickmesh.customer.v1.CustomerService',
    });
    const authenticator = new ApiKeyAuthenticator(verifyWithCustomerService(client, 500), {
      ttlMs: 30_000,
      negativeTtlMs: 5000,
      maxEntries: 100,
    });
    gw = await startTestGateway(up.port, { AUTH_MODE: 'api-key' }, authenticator, [
      grpcHealthCheck('customers', client, 'tickmesh.customer.v1.CustomerService', 500),
    ]);
    await waitUntil(() => gw.health.readiness().ok, { timeoutMs: 15_000, intervalMs: 25, what: 'ready' });
  });
  after(async () => {
    await gw?.close();
    client?.close();
    await customers?.stop();
    await up?.stop();
  });

  void test('ops before auth are refused; a good key opens the feed; verdicts are cached', async () => {
    const c = await TestClient.connect(gw.url);
    const w = await c.next((m) => m.type === 'welcome');
    assert.equal(w.authRequired, true);
    assert.equal(w.authTimeoutMs, 5000);
    const early = await c.answer(c.op({ op: 'subscribe', symbols: ['THYAO'] }));
    assert.equal(early.code, 'not_authenticated');
    const calls = verifyCalls;
    const ok = await c.answer(c.op({ op: 'auth', token: 'tm_good_key' }));
    assert.deepEqual([ok.type, ok.op, ok.principal], ['reply', 'auth', 'customer:c-1']);
    await c.answer(c.op({ op: 'subscribe', symbols: ['THYAO'] }));
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.equal((snap.quotes as unknown[]).length, 1);
    const again = await TestClient.connect(gw.url);
    await again.answer(again.op({ op: 'auth', token: 'tm_good_key' }));
    assert.equal(verifyCalls, calls + 1, 'the second connection was served from the cache');
    c.close();
    again.close();
  });

  void test('a bad key: auth_failed, then close 4001', async () => {
    const c = await TestClient.connect(gw.url);
    const e = await c.answer(c.op({ op: 'auth', token: 'tm_wrong' }));
    assert.equal(e.code, 'auth_failed');
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 4001, reason: 'authentication failed' });
  });

  void test('the customer service down: auth_unavailable and close 1013; readiness off', async () => {
    const port = customers.grpcPort;
    await customers.stop();
    try {
      const c = await TestClient.connect(gw.url);
      const e = await c.answer(c.op({ op: 'auth', token: 'tm_other_key' }), 15_000);
      assert.equal(e.code, 'auth_unavailable');
      assert.equal((await c.closed).code, 1013);
      await waitUntil(() => !gw.health.readiness().ok, {
        timeoutMs: 10_000,
        intervalMs: 25,
        what: 'not ready',
      });
      assert.equal((await fetch(`${gw.http}/readyz`)).status, 503);
    } finally {
      customers = await startCustomers(port);
    }
    await waitUntil(() => gw.health.readiness().ok, {
      timeoutMs: 15_000,
      intervalMs: 25,
      what: 'ready again',
    });
  });

  void test('no auth op within the timeout: close 4002', async () => {
    const quick = await startTestGateway(
      up.port,
      { AUTH_MODE: 'api-key', AUTH_TIMEOUT_MS: '300' },
      new ApiKeyAuthenticator(() => Promise.reject(new Error('unused')), {
        ttlMs: 1,
        negativeTtlMs: 1,
        maxEntries: 1,
      }),
    );
    try {
      const c = await TestClient.connect(quick.url);
      c.op({ op: 'ping' });
      const closed = await c.closed;
      assert.deepEqual(closed, { code: 4002, reason: 'authentication timeout' });
      assert.equal(c.messages.find((m) => m.type === 'error')?.code, 'not_authenticated');
    } finally {
      await quick.close();
    }
  });
});

void describe('jwt mode', () => {
  let up: ScriptedUpstream;
  let gw: TestGateway;
  const key = new TextEncoder().encode(JWT_SECRET);
  const sign = (claims: Record<string, unknown>, exp: string | number, secret = key, iss = 'tickmesh-test') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer(iss)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(secret);

  before(async () => {
    up = await startScriptedUpstream(new ScriptedMarket([{ symbol: 'GARAN', price: 120 }]));
    gw = await startTestGateway(
      up.port,
      { AUTH_MODE: 'jwt' },
      new JwtAuthenticator({ secret: JWT_SECRET, issuer: 'tickmesh-test', clockToleranceS: 0 }),
    );
  });
  after(async () => {
    await gw?.close();
    await up?.stop();
  });

  void test('a valid token is accepted', async () => {
    const c = await TestClient.connect(gw.url);
    const ok = await c.answer(c.op({ op: 'auth', token: await sign({}, '10m') }));
    assert.equal(ok.principal, 'jwt:alice');
    await c.answer(c.op({ op: 'subscribe', symbols: ['GARAN'] }));
    await c.next((m) => m.type === 'snapshot');
    c.close();
  });

  const rejected: Array<[string, () => Promise<string>, RegExp]> = [
    ['expired', () => sign({}, Math.floor(Date.now() / 1000) - 60), /expired/],
    [
      'wrong signature',
      () => sign({}, '10m', new TextEncoder().encode('another-secret-another-secret-0123456789')),
      /signature/,
    ],
    ['wrong issuer', () => sign({}, '10m', key, 'someone-else'), /iss/],
    [
      'unsigned (alg none)',
      async () =>
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'eve', exp: Math.floor(Date.now() / 1000) + 600 })}.`,
      /.+/,
    ],
    ['garbage', () => Promise.resolve('not.a.jwt'), /.+/],
  ];
  for (const [name, token, reason] of rejected) {
    void test(`a token that is ${name}: auth_failed, close 4001`, async () => {
      const c = await TestClient.connect(gw.url);
      const e = await c.answer(c.op({ op: 'auth', token: await token() }));
      assert.equal(e.code, 'auth_failed');
      assert.match(String(e.message), reason);
      assert.equal((await c.closed).code, 4001);
    });
  }

  void test('a token that expires during the connection closes it with 4003', async () => {
    const c = await TestClient.connect(gw.url);
    await c.answer(c.op({ op: 'auth', token: await sign({}, Math.floor(Date.now() / 1000) + 2) }));
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 4003, reason: 'credentials expired' });
  });
});

function b64(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}
