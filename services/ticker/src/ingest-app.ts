// Assembles the ingest API from its configuration: NATS, the TICKS stream
// and publisher, IngestService on the kit's gRPC server (health following
// NATS + JetStream, reflection), and the shutdown order. main.ts runs it;
// tests run it in-process on free ports.
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConfigError,
  connectNats,
  exitOnConfigError,
  natsCheck,
  withTimeout,
  loadUniverse,
  createServiceKit,
  serveGrpc,
  type RunningGrpcService,
  type ServiceKit,
} from '@tickmesh/kit';
import type { IngestConfig } from './config.js';
import { INGEST_SERVICE_NAME, IngestService } from './ingest-service.js';
import { TickerMetrics } from './metrics.js';
import { trackConnection } from './nats-connection-state.js';
import { SeqAllocator, toProducerId } from './producer-ids.js';
import { openReferencePrices } from './reference-prices.js';
import { openTickPublishing } from './tick-publishing.js';
import type { TickPublisher } from './tick-publisher.js';

export interface IngestApp extends RunningGrpcService {
  kit: ServiceKit;
  nc: NatsConnection;
  publisher: TickPublisher;
}

export async function startIngestApp(
  config: IngestConfig,
  opts: { handleSignals?: boolean; kit?: ServiceKit } = {},
): Promise<IngestApp> {
  const kit = opts.kit ?? createServiceKit('ticker', config);
  const { logger } = kit;
  const universe = loadUniverse(config.MARKET);
  const nc = await withTimeout(
    connectNats({
      url: config.NATS_URL,
      name: 'ticker',
      logger,
      connectTimeoutMs: Math.min(5000, config.NATS_CONNECT_TIMEOUT_MS),
    }),
    config.NATS_CONNECT_TIMEOUT_MS,
    `NATS at ${config.NATS_URL} did not answer within ${config.NATS_CONNECT_TIMEOUT_MS} ms`,
  );
  const metrics = new TickerMetrics(kit.registry);
  let publisher: TickPublisher;
  try {
    publisher = await openTickPublishing({
      nc,
      config,
      metrics,
      logger,
      maxFutureMs: config.INGEST_MAX_FUTURE_MS,
    });
  } catch (err) {
    await nc.close();
    // The stream holds another partition count: bad configuration, one line, exit 2.
    if (err instanceof ConfigError) exitOnConfigError('ticker', err);
    throw err;
  }
  const connection = trackConnection(nc);
  const bands = openReferencePrices(
    config,
    universe,
    'ticker',
    logger,
    'price bands are off (ticks at any price are accepted)',
  );
  const ingest = new IngestService({
    publisher,
    metrics,
    logger,
    rules: {
      universe,
      openMode: config.INGEST_OPEN_MODE,
      maxFutureMs: config.INGEST_MAX_FUTURE_MS,
      priceBands: bands?.prices,
    },
    // Requests fail fast while NATS is disconnected or the last publish failed; readiness
    // (the health check) says the same to Kubernetes, on its own schedule.
    isAvailable: () => connection.connected() && !publisher.failing,
    unaryProducerId: config.INGEST_UNARY_PRODUCER_ID || toProducerId(`unary-${hostname()}`),
    unarySeq: new SeqAllocator(),
    unaryTimeoutMs: config.INGEST_UNARY_TIMEOUT_MS,
    stream: {
      maxInFlight: config.INGEST_STREAM_MAX_IN_FLIGHT,
      ackIntervalMs: config.INGEST_ACK_INTERVAL_MS,
      unavailableAfterMs: config.INGEST_UNAVAILABLE_AFTER_MS,
    },
  });
  const running = await serveGrpc({
    kit,
    config,
    grpcPort: config.GRPC_PORT,
    services: [INGEST_SERVICE_NAME],
    checks: [natsCheck(nc)],
    register: (server) => ingest.register(server),
    handleSignals: opts.handleSignals,
    shutdownSteps: [
      // Streams are ended by now; what is queued gets a bounded chance to be stored.
      { name: 'tick publisher', run: () => publisher.close(Math.min(5000, config.SHUTDOWN_TIMEOUT_MS / 2)) },
      { name: 'nats', run: () => closeNats(nc) },
      { name: 'price-cache client', run: () => bands?.close() },
    ],
  });
  logger.info(
    {
      market: universe.market,
      instruments: universe.instruments.length,
      stream: config.TICKS_STREAM,
      partitions: config.TICK_PARTITIONS,
    },
    'ticker ingest ready',
  );
  return { ...running, kit, nc, publisher };
}

async function closeNats(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  await withTimeout(nc.drain(), 2000, 'NATS drain timed out').catch(() => nc.close());
}
