// Assembles the gateway from its parts (mirror, upstream feed, fan-out,
// WebSocket endpoint, HTTP routes, health) on one HTTP server, and stops it
// in order. main.ts calls this with real clients; tests call it in-process
// with a scripted upstream on port 0.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { Registry } from 'prom-client';
import { HealthMonitor, type DependencyCheck } from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import type { Authenticator } from './auth.js';
import type { GatewayConfig } from './config.js';
import { Fanout } from './fanout.js';
import { GatewayMetrics } from './gateway-metrics.js';
import { createHttpHandler } from './http-routes.js';
import { upstreamDownMessage } from './protocol.js';
import { QuoteMirror } from './quote-mirror.js';
import { loadStaticFiles } from './static-files.js';
import { UpstreamFeed, type UpstreamSource } from './upstream-feed.js';
import { WsEndpoint } from './ws-server.js';

export type GatewaySettings = Omit<
  GatewayConfig,
  'LOG_LEVEL' | 'METRICS_PORT' | 'METRICS_HOST' | 'PRICE_SERVICE_TARGET' | 'CUSTOMER_SERVICE_TARGET'
>;

export interface GatewayDeps {
  config: GatewaySettings;
  logger: Logger;
  registry: Registry;
  upstream: UpstreamSource;
  authenticator: Authenticator;
  /** More readiness checks (the customer service in api-key mode). */
  checks?: DependencyCheck[];
}

export interface RunningGateway {
  readonly port: number;
  readonly health: HealthMonitor;
  readonly feed: UpstreamFeed;
  readonly fanout: Fanout;
  readonly mirror: QuoteMirror;
  readonly ws: WsEndpoint;
  readonly metrics: GatewayMetrics;
  readonly server: Server;
  /** Readiness off, clients closed with 1001, upstream closed, HTTP closed. Bounded by SHUTDOWN_TIMEOUT_MS. */
  stop(): Promise<void>;
}

export async function startGateway(deps: GatewayDeps): Promise<RunningGateway> {
  const { config, logger, registry } = deps;
  const metrics = new GatewayMetrics(registry);
  const mirror = new QuoteMirror(config.UPSTREAM_MAX_SYMBOLS);
  const fanout = new Fanout(mirror, {
    highWaterBytes: config.CLIENT_HIGH_WATER_BYTES,
    maxBufferBytes: config.CLIENT_MAX_BUFFER_BYTES,
    slowClientTimeoutMs: config.SLOW_CLIENT_TIMEOUT_MS,
    maxReadLagMs: config.CLIENT_MAX_READ_LAG_MS,
    windowFactor: config.FANOUT_WINDOW_FACTOR,
    maxWindowMs: config.FANOUT_MAX_WINDOW_MS,
    maxPending: config.FANOUT_MAX_PENDING,
    sliceClients: config.FANOUT_SLICE_CLIENTS,
    metrics,
  });
  const feed = new UpstreamFeed(
    deps.upstream,
    mirror,
    {
      onUpdates: (updates) => fanout.publish(updates),
      onResync: (reason) => {
        metrics.resyncs.inc({ reason });
        fanout.resync(reason);
      },
      onDown: () => {
        metrics.upstreamBreaks.inc();
        fanout.broadcast(upstreamDownMessage(Date.now()));
      },
    },
    {
      connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      heartbeatTimeoutFactor: config.UPSTREAM_HEARTBEAT_TIMEOUT_FACTOR,
      defaultHeartbeatMs: config.UPSTREAM_DEFAULT_HEARTBEAT_MS,
      rotateIntervalMs: config.UPSTREAM_ROTATE_INTERVAL_MS,
      overlapMaxMs: config.UPSTREAM_OVERLAP_MAX_MS,
      backoffInitialMs: config.UPSTREAM_BACKOFF_INITIAL_MS,
      backoffMaxMs: config.UPSTREAM_BACKOFF_MAX_MS,
      logger,
      metrics: {
        message: (kind) => metrics.upstreamMessages.inc({ kind }),
        rotation: (trigger) => metrics.upstreamRotations.inc({ trigger }),
        liveChanged: (live) => metrics.upstreamConnected.set(live ? 1 : 0),
      },
    },
  );
  metrics.upstreamConnected.set(0);

  const health = new HealthMonitor({
    services: [],
    checks: [
      {
        name: 'upstream',
        timeoutMs: 100,
        check: () =>
          feed.isLive ? Promise.resolve() : Promise.reject(new Error('PriceService stream not live')),
      },
      ...(deps.checks ?? []),
    ],
    intervalMs: config.HEALTH_CHECK_INTERVAL_MS,
    logger,
    registry,
  });

  const ws = new WsEndpoint({
    path: '/ws',
    allowedOrigins: config.ALLOWED_ORIGINS,
    trustedProxyHops: config.TRUSTED_PROXY_HOPS,
    maxConnections: config.MAX_CONNECTIONS,
    maxConnectionsPerIp: config.MAX_CONNECTIONS_PER_IP,
    maxConnectionAgeMs: config.MAX_CONNECTION_AGE_MS,
    maxFrameBytes: config.MAX_FRAME_BYTES,
    heartbeatMs: config.HEARTBEAT_MS,
    closeGraceMs: config.SLOW_CLIENT_CLOSE_GRACE_MS,
    lagProbeIntervalMs: config.CLIENT_LAG_PROBE_MS,
    lagProbesPerSecond: config.CLIENT_LAG_PROBES_PER_SECOND,
    fanout,
    metrics,
    logger,
    sessionDeps: {
      authenticator: deps.authenticator,
      upstreamLive: () => feed.isLive,
      limits: {
        maxSubscriptions: config.MAX_SUBSCRIPTIONS_PER_CONNECTION,
        messagesPerSecond: config.CLIENT_MESSAGES_PER_SECOND,
        messagesBurst: config.CLIENT_MESSAGES_BURST,
        floodTolerance: config.CLIENT_FLOOD_TOLERANCE,
        authTimeoutMs: config.AUTH_TIMEOUT_MS,
        maxFrameBytes: config.MAX_FRAME_BYTES,
        heartbeatMs: config.HEARTBEAT_MS,
      },
      metrics: {
        clientMessage: () => metrics.clientMessages.inc(),
        clientError: (code) => metrics.clientErrors.inc({ code }),
        authResult: (result) => metrics.authResults.inc({ result }),
      },
    },
  });

  const server = createServer(
    createHttpHandler({ registry, health, staticFiles: config.SERVE_STATIC ? loadStaticFiles() : undefined }),
  );
  server.on('upgrade', (req, socket, head) => ws.handleUpgrade(req, socket, head));
  server.on('clientError', (_err, socket) => socket.destroy());
  // Slow-loris bounds for plain HTTP; upgraded sockets are not subject to these.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  feed.start();
  await health.start();
  server.listen(config.HTTP_PORT, config.HTTP_HOST);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
  logger.info({ port, authMode: config.AUTH_MODE }, 'gateway listening (HTTP + WebSocket at /ws)');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      health.setShuttingDown();
      await ws.shutdown(Math.max(100, config.SHUTDOWN_TIMEOUT_MS - 1000));
      feed.stop();
      fanout.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      logger.info('gateway stopped');
    })());

  return { port, health, feed, fanout, mirror, ws, metrics, server, stop };
}
