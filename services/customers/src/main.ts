// customers: CustomerService (gRPC 50053) on MySQL/MariaDB. Wiring only:
// config -> service (pool, handlers, gRPC server, health) -> signal-driven
// shutdown. The schema is migrated by migrate-main.ts (a Kubernetes Job;
// `make up` locally), never from here: until it is, readiness says why not.
import { loadConfig, redactConfig } from '../../common/src/config.js';
import type { Logger } from '../../common/src/logger.js';
import { createServiceKit } from '../../common/src/service.js';
import { runMain } from '../../common/src/shutdown.js';
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
