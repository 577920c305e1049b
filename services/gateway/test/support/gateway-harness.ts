// Starts the gateway in-process on a free port against a PriceService target
// (usually the scripted upstream), with test-sized settings.
import { Registry } from 'prom-client';
import { parseConfig, createClient, createLogger } from '@tickmesh/kit';
import { PriceServiceClient } from '@tickmesh/kit/proto';
import type { DependencyCheck } from '@tickmesh/kit';
import { openAuthenticator, type Authenticator } from '../../src/auth.js';
import { gatewayConfigSpec } from '../../src/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway.js';
import { priceServiceSource } from '../../src/price-upstream.js';

export interface TestGateway extends RunningGateway {
  readonly url: string;
  readonly http: string;
  readonly registry: Registry;
  close(): Promise<void>;
}

export async function startTestGateway(
  upstreamPort: number,
  env: Record<string, string> = {},
  authenticator: Authenticator = openAuthenticator,
  checks: DependencyCheck[] = [],
): Promise<TestGateway> {
  const config = parseConfig(gatewayConfigSpec, {
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    HEARTBEAT_MS: '5000',
    HEALTH_CHECK_INTERVAL_MS: '200',
    UPSTREAM_BACKOFF_INITIAL_MS: '50',
    UPSTREAM_BACKOFF_MAX_MS: '300',
    UPSTREAM_DEFAULT_HEARTBEAT_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    SLOW_CLIENT_CLOSE_GRACE_MS: '1000',
    ...env,
  });
  const logger = createLogger('gateway-test', process.env.TEST_LOG_LEVEL ?? 'silent');
  const registry = new Registry();
  const price = createClient(PriceServiceClient, `127.0.0.1:${upstreamPort}`, {
    unaryDeadlineMs: 1000,
    service: 'tickmesh.price.v1.PriceService',
  });
  const gw = await startGateway({
    config,
    logger,
    registry,
    upstream: priceServiceSource(price),
    authenticator,
    checks,
  });
  return {
    ...gw,
    registry,
    url: `ws://127.0.0.1:${gw.port}/ws`,
    http: `http://127.0.0.1:${gw.port}`,
    close: async () => {
      await gw.stop();
      price.close();
    },
  };
}

/**
 * Value of a metric series in the registry, summed over labels matching
 * `labels`: a counter or gauge by its name, a histogram's series by theirs
 * (`<name>_count`, `<name>_sum`, `<name>_bucket` with `{ le }`).
 */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m =
    registry.getSingleMetric(name) ?? registry.getSingleMetric(name.replace(/_(count|sum|bucket)$/, ''));
  if (!m) return 0;
  const data = await m.get();
  return data.values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
    )
    .filter((v) => !('metricName' in v) || v.metricName === name)
    .reduce((sum, v) => sum + v.value, 0);
}
