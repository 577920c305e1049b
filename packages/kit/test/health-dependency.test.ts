// Readiness follows a real dependency: the test's own Redis is stopped and
// started again; the service name goes NOT_SERVING and back while liveness
// stays SERVING throughout. Also checks the HTTP /healthz and /readyz twins.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { healthClient, healthStatus, startRedis, stopAll, waitForHealth } from '@tickmesh/harness';
import { commonConfig, grpcServerConfig, parseConfig } from '../src/config.js';
import { connectRedis, redisCheck } from '../src/deps/redis.js';
import { createServiceKit, serveGrpc } from '../src/service.js';

after(() => stopAll());

test('service health follows Redis down and up; liveness stays SERVING', async () => {
  const redis = await startRedis();
  const config = parseConfig(
    { ...commonConfig, ...grpcServerConfig },
    {
      LOG_LEVEL: 'silent',
      GRPC_HOST: '127.0.0.1',
      HEALTH_CHECK_INTERVAL_MS: '200',
      METRICS_HOST: '127.0.0.1',
    },
  );
  const kit = createServiceKit('health-test', config);
  const client = connectRedis(redis.url, kit.logger);
  const running = await serveGrpc({
    kit,
    config,
    grpcPort: 0,
    services: ['tickmesh.price.v1.PriceService'],
    checks: [redisCheck(client)],
    register: () => undefined,
    handleSignals: false,
  });
  const health = healthClient(`127.0.0.1:${running.grpcPort}`);
  const readyz = async () => (await fetch(`http://127.0.0.1:${running.metrics!.port}/readyz`)).status;
  const healthz = async () => (await fetch(`http://127.0.0.1:${running.metrics!.port}/healthz`)).status;
  try {
    await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'SERVING');
    assert.equal(await readyz(), 200);

    await redis.stop();
    const downAfter = await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'NOT_SERVING', 10_000);
    assert.ok(downAfter < 10_000);
    assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
    assert.equal(await healthStatus(health, ''), 'SERVING');
    assert.equal(await readyz(), 503);
    assert.equal(await healthz(), 200);
    const body = (await (await fetch(`http://127.0.0.1:${running.metrics!.port}/readyz`)).json()) as {
      dependencies: Record<string, { up: boolean }>;
    };
    assert.equal(body.dependencies.redis?.up, false);

    await redis.start();
    await waitForHealth(health, 'tickmesh.price.v1.PriceService', 'SERVING', 15_000);
    assert.equal(await healthStatus(health, 'liveness'), 'SERVING');
    assert.equal(await readyz(), 200);
  } finally {
    health.close();
    await running.stop();
    client.disconnect();
  }
});
