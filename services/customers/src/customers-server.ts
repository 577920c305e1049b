// Assembles the customers process from its config: the MySQL pool, the
// repositories and handlers, and the gRPC server with health following
// MySQL and the schema. main.ts calls this; the tests call it too, so they
// exercise the same assembly on port 0.
import { serveGrpc, type RunningGrpcService, type ServiceKit } from '@tickmesh/kit';
import { ApiKeyRepository } from './api-key-repository.js';
import type { CustomersConfig } from './config.js';
import { CustomerRepository } from './customer-repository.js';
import {
  CUSTOMER_SERVICE_NAME,
  customerServiceHandlers,
  registerCustomerService,
} from './customer-service.js';
import { createDb } from './db.js';
import { mysqlCheck, schemaCheck } from './health-checks.js';
import { IdGenerator } from './ids.js';
import { WatchlistRepository } from './watchlist-repository.js';

export async function startCustomersService(
  config: CustomersConfig,
  kit: ServiceKit,
  opts: { handleSignals?: boolean } = {},
): Promise<RunningGrpcService> {
  const db = createDb(config, kit.logger);
  const handlers = customerServiceHandlers({
    customers: new CustomerRepository(db),
    watchlists: new WatchlistRepository(db),
    apiKeys: new ApiKeyRepository(db),
    ids: new IdGenerator(),
    limits: {
      watchlistMaxSymbols: config.WATCHLIST_MAX_SYMBOLS,
      apiKeysMaxActive: config.API_KEYS_MAX_ACTIVE,
      lastUsedResolutionMs: config.API_KEY_LAST_USED_RESOLUTION_MS,
    },
  });
  const checkTimeoutMs = Math.min(config.MYSQL_QUERY_TIMEOUT_MS, 2000);
  try {
    return await serveGrpc({
      kit,
      config,
      grpcPort: config.GRPC_PORT,
      services: [CUSTOMER_SERVICE_NAME],
      checks: [mysqlCheck(db, checkTimeoutMs), schemaCheck(db, checkTimeoutMs)],
      register: (server) =>
        registerCustomerService(server, handlers, { logger: kit.logger, registry: kit.registry }),
      shutdownSteps: [{ name: 'mysql pool', run: () => db.close() }],
      handleSignals: opts.handleSignals,
    });
  } catch (err) {
    await db.close();
    throw err;
  }
}
