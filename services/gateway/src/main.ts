// gateway: config -> clients (PriceService, CustomerService) -> HTTP +
// WebSocket server -> shutdown. The parts live in gateway.ts and its modules.
import {
  clientSecurity,
  createClient,
  startMetricsServer,
  createServiceKit,
  onShutdown,
  runMain,
  redactConfig,
  type ConfigSpec,
} from '@tickmesh/kit';
import { CustomerServiceClient, PriceServiceClient } from '@tickmesh/kit/proto';
import type { Logger, DependencyCheck } from '@tickmesh/kit';
import {
  ApiKeyAuthenticator,
  JwtAuthenticator,
  openAuthenticator,
  verifyWithCustomerService,
  type Authenticator,
} from './auth.js';
import { gatewayConfigSpec, loadGatewayConfig } from './config.js';
import { startGateway } from './gateway.js';
import { grpcHealthCheck } from './grpc-health-client.js';
import { priceServiceSource } from './price-upstream.js';

let logger: Logger | undefined;

runMain(
  () => logger,
  async () => {
    const config = loadGatewayConfig();
    const kit = createServiceKit('gateway', config);
    logger = kit.logger;
    logger.info({ config: redactConfig(gatewayConfigSpec as ConfigSpec, config) }, 'starting gateway');

    const security = clientSecurity(config, 'gateway');
    const price = createClient(PriceServiceClient, config.PRICE_SERVICE_TARGET, {
      ...security,
      unaryDeadlineMs: config.GRPC_UNARY_DEADLINE_MS,
      reconnectBackoffMaxMs: config.GRPC_CLIENT_RECONNECT_MAX_MS,
      service: 'tickmesh.price.v1.PriceService',
    });
    let customers: CustomerServiceClient | undefined;
    let authenticator: Authenticator = openAuthenticator;
    const checks: DependencyCheck[] = [];
    if (config.AUTH_MODE === 'api-key') {
      customers = createClient(CustomerServiceClient, config.CUSTOMER_SERVICE_TARGET, {
        ...security,
        unaryDeadlineMs: config.GRPC_UNARY_DEADLINE_MS,
        reconnectBackoffMaxMs: config.GRPC_CLIENT_RECONNECT_MAX_MS,
        service: 'tickmesh.customer.v1.CustomerService',
        retryableMethods: ['VerifyApiKey'],
      });
      authenticator = new ApiKeyAuthenticator(
        verifyWithCustomerService(customers, config.GRPC_UNARY_DEADLINE_MS),
        {
          ttlMs: config.API_KEY_CACHE_TTL_MS,
          negativeTtlMs: config.API_KEY_NEGATIVE_TTL_MS,
          maxEntries: config.API_KEY_CACHE_SIZE,
        },
      );
      checks.push(
        grpcHealthCheck(
          'customers',
          customers,
          'tickmesh.customer.v1.CustomerService',
          config.GRPC_UNARY_DEADLINE_MS,
        ),
      );
    } else if (config.AUTH_MODE === 'jwt') {
      authenticator = new JwtAuthenticator({
        secret: config.JWT_SECRET || undefined,
        jwksUrl: config.JWT_JWKS_URL || undefined,
        issuer: config.JWT_ISSUER || undefined,
        audience: config.JWT_AUDIENCE || undefined,
        clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
        fetchTimeoutMs: config.GRPC_UNARY_DEADLINE_MS,
      });
    }

    const gateway = await startGateway({
      config,
      logger,
      registry: kit.registry,
      upstream: priceServiceSource(price),
      authenticator,
      checks,
    });
    const metrics =
      config.METRICS_PORT > 0
        ? await startMetricsServer({
            registry: kit.registry,
            health: gateway.health,
            host: config.METRICS_HOST,
            port: config.METRICS_PORT,
          })
        : undefined;

    onShutdown(logger, config.SHUTDOWN_TIMEOUT_MS, [
      { name: 'gateway', run: () => gateway.stop() },
      { name: 'grpc clients', run: () => (price.close(), customers?.close()) },
      { name: 'metrics server', run: () => metrics?.close() },
    ]);
  },
);
