// customers: CustomerService (gRPC 50053) on MySQL/MariaDB. Wiring only:
// config -> service (pool, handlers, gRPC server, health) -> signal-driven
// shutdown. The schema is migrated by migrate-main.ts (a Kubernetes Job;
// `make up` locally), never from here: until it is, readiness says why not.
import { loadConfig, redactConfig, createServiceKit, runMain } from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import { customersConfigSpec } from './config.js';
import { startCustomersService } from './customers-server.js';

let logger: Logger | undefined;

runMain(
  () => logger,
  async () => {
    const config = loadConfig('customers', customersConfigSpec);
    const kit = createServiceKit('customers', config);
    logger = kit.logger;
    logger.info({ config: redactConfig(customersConfigSpec, config) }, 'starting');
    await startCustomersService(config, kit, { handleSignals: true });
  },
);
