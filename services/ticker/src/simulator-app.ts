// Assembles the feed simulator: a single-replica process that publishes
// simulated ticks straight to JetStream through the same TickPublisher as
// the ingest API (no gRPC), with /healthz, /readyz (NATS + JetStream) and
// /metrics on METRICS_PORT.
import { basename } from 'node:path';
import { randomInt } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConfigError,
  connectNats,
  exitOnConfigError,
  natsCheck,
  HealthMonitor,
  withTimeout,
  startMetricsServer,
  type MetricsServer,
  loadUniverse,
  createServiceKit,
  type ServiceKit,
  onShutdown,
  runSteps,
  type ShutdownStep,
} from '@tickmesh/kit';
import type { SimulatorConfig } from './config.js';
import { FeedSimulator } from './feed-simulator.js';
import { TickerMetrics } from './metrics.js';
import { SeqAllocator, toProducerId } from './producer-ids.js';
import { TickGenerator } from './tick-generator.js';
import { openReferencePrices } from './reference-prices.js';
import { openTickPublishing } from './tick-publishing.js';
import type { TickPublisher } from './tick-publisher.js';

export interface SimulatorApp {
  kit: ServiceKit;
  nc: NatsConnection;
  publisher: TickPublisher;
  simulator: FeedSimulator;
  health: HealthMonitor;
  metrics: MetricsServer;
  producerId: string;
  seed: number;
  stop(): Promise<void>;
}

/** `sim-<market>`: the market name, or a universe file's base name. */
export function defaultSimProducerId(market: string): string {
  return toProducerId(
    `sim-${basename(market)
      .replace(/\.json$/i, '')
      .toLowerCase()}`,
  );
}

export async function startSimulatorApp(
  config: SimulatorConfig,
  opts: { handleSignals?: boolean; kit?: ServiceKit } = {},
): Promise<SimulatorApp> {
  const kit = opts.kit ?? createServiceKit('simulator', config);
  const { logger } = kit;
  const universe = loadUniverse(config.MARKET);
  const seed = config.SIM_SEED === '' ? randomInt(0, 2 ** 32 - 1) : Number(config.SIM_SEED);
  const producerId = config.SIM_PRODUCER_ID || defaultSimProducerId(config.MARKET);

  const nc = await withTimeout(
    connectNats({
      url: config.NATS_URL,
      name: 'simulator',
      logger,
      connectTimeoutMs: Math.min(5000, config.NATS_CONNECT_TIMEOUT_MS),
    }),
    config.NATS_CONNECT_TIMEOUT_MS,
    `NATS at ${config.NATS_URL} did not answer within ${config.NATS_CONNECT_TIMEOUT_MS} ms`,
  );
  const tickerMetrics = new TickerMetrics(kit.registry);
  let publisher: TickPublisher;
  try {
    publisher = await openTickPublishing({ nc, config, metrics: tickerMetrics, logger });
  } catch (err) {
    await nc.close();
    // The stream holds another partition count: bad configuration, one line, exit 2.
    if (err instanceof ConfigError) exitOnConfigError('simulator', err);
    throw err;
  }
  const health = new HealthMonitor({
    services: [],
    checks: [natsCheck(nc)],
    intervalMs: config.HEALTH_CHECK_INTERVAL_MS,
    logger,
    registry: kit.registry,
  });
  await health.start();
  const metrics = await startMetricsServer({
    registry: kit.registry,
    health,
    host: config.METRICS_HOST,
    port: config.METRICS_PORT,
  });

  const bands = openReferencePrices(
    config,
    universe,
    'simulator',
    logger,
    'the simulator keeps its prices in bands around its own previous closes',
  );
  const simulator = new FeedSimulator({
    generator: new TickGenerator({
      instruments: universe.instruments,
      seed,
      minIntervalMs: config.SIM_MIN_INTERVAL_MS,
      maxIntervalMs: config.SIM_MAX_INTERVAL_MS,
      ticksPerSecond: config.SIM_TICKS_PER_SECOND,
    }),
    publisher,
    producerId,
    seq: new SeqAllocator(),
    session: config.SIM_ALWAYS_OPEN ? undefined : universe.session,
    logger,
    timeZone: universe.session.timeZone,
    instruments: universe.bySymbol,
    references: bands?.prices,
  });
  simulator.start();
  logger.info(
    {
      market: universe.market,
      instruments: universe.instruments.length,
      seed,
      producerId,
      metricsPort: metrics.port,
      mode:
        config.SIM_TICKS_PER_SECOND > 0
          ? `${config.SIM_TICKS_PER_SECOND} ticks/s`
          : `${config.SIM_MIN_INTERVAL_MS}-${config.SIM_MAX_INTERVAL_MS} ms per symbol`,
    },
    'simulator running',
  );

  const steps: ShutdownStep[] = [
    { name: 'health', run: () => health.setShuttingDown() },
    { name: 'simulator', run: () => simulator.stop() },
    { name: 'tick publisher', run: () => publisher.close(Math.min(5000, config.SHUTDOWN_TIMEOUT_MS / 2)) },
    {
      name: 'nats',
      run: () =>
        nc.isClosed()
          ? undefined
          : withTimeout(nc.drain(), 2000, 'NATS drain timed out').catch(() => nc.close()),
    },
    { name: 'metrics server', run: () => metrics.close() },
    { name: 'price-cache client', run: () => bands?.close() },
  ];
  if (opts.handleSignals) onShutdown(logger, config.SHUTDOWN_TIMEOUT_MS, steps);
  let stopped: Promise<void> | undefined;
  return {
    kit,
    nc,
    publisher,
    simulator,
    health,
    metrics,
    producerId,
    seed,
    stop: () => (stopped ??= runSteps(logger, steps)),
  };
}
