// price-cache: JetStream ticks -> Redis, PriceService over gRPC. This file
// only wires config, clients, the server and shutdown; see app.ts.
import {
  loadConfig,
  connectNats,
  connectRedis,
  loadUniverse,
  createServiceKit,
  serveGrpc,
  runMain,
  exitOnConfigError,
} from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import { createPriceCache } from './app.js';
import { configProblems, priceCacheConfigSpec } from './config.js';
import { PRICE_SERVICE_NAME } from './price-service.js';

let logger: Logger | undefined;

runMain(
  () => logger,
  async () => {
    const config = loadConfig('price-cache', priceCacheConfigSpec);
    const problems = configProblems(config);
    if (problems.length > 0) {
      process.stderr.write(`price-cache: invalid configuration:\n  ${problems.join('\n  ')}\n`);
      process.exit(2);
    }
    const kit = createServiceKit('price-cache', config);
    logger = kit.logger;
    const universe = loadUniverse(config.MARKET);
    const nc = await connectNats({ url: config.NATS_URL, name: 'price-cache', logger });
    const redis = connectRedis(config.REDIS_URL, logger, 'price-cache');
    const app = createPriceCache({
      config,
      nc,
      redis,
      logger,
      registry: kit.registry,
      universe,
      onConfigError: (err) => exitOnConfigError('price-cache', err),
    });
    await serveGrpc({
      kit,
      config,
      grpcPort: config.GRPC_PORT,
      services: [PRICE_SERVICE_NAME],
      checks: app.checks,
      register: app.register,
      shutdownSteps: [
        { name: 'price-cache', run: () => app.stop() },
        { name: 'nats', run: () => nc.drain() },
        { name: 'redis', run: async () => void (await redis.quit()) },
      ],
    });
    app.start();
  },
);
