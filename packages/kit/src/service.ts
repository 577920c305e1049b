// The skeleton every gRPC service's main.ts uses: logger and metrics, health
// following the dependency checks, the gRPC server with health and
// reflection, the metrics/health HTTP server, and ordered graceful shutdown.
import type { Registry } from 'prom-client';
import { GrpcServer } from './grpc/server.js';
import { HealthMonitor, type DependencyCheck } from './health.js';
import { createLogger, type Logger } from './logger.js';
import { createMetricsRegistry, startMetricsServer, type MetricsServer } from './metrics.js';
import { onShutdown, type ShutdownStep } from './shutdown.js';
import type { commonConfig, ConfigOf, grpcServerConfig, jwtConfig } from './config.js';
import { jwtAuthenticator } from './grpc/auth.js';
import { serverCredentials } from './grpc/tls.js';

export type CommonConfig = ConfigOf<typeof commonConfig>;
export type GrpcServerConfig = ConfigOf<typeof grpcServerConfig> & Partial<ConfigOf<typeof jwtConfig>>;

export interface ServiceKit {
  logger: Logger;
  registry: Registry;
}

export function createServiceKit(service: string, config: CommonConfig): ServiceKit {
  return { logger: createLogger(service, config.LOG_LEVEL), registry: createMetricsRegistry(service) };
}

export interface RunningGrpcService {
  server: GrpcServer;
  health: HealthMonitor;
  metrics: MetricsServer | undefined;
  grpcPort: number;
  /** Runs the shutdown steps (what SIGTERM does), without exiting. For tests. */
  stop(): Promise<void>;
}

function jwtSettings(config: Partial<ConfigOf<typeof jwtConfig>>) {
  if (!config.GRPC_JWT_SECRET)
    throw new Error('GRPC_AUTH_MODE=jwt needs GRPC_JWT_SECRET (spread jwtConfig into the config spec)');
  return {
    secret: config.GRPC_JWT_SECRET,
    issuer: config.GRPC_JWT_ISSUER,
    audience: config.GRPC_JWT_AUDIENCE,
  };
}

export async function serveGrpc(opts: {
  kit: ServiceKit;
  config: CommonConfig & GrpcServerConfig;
  grpcPort: number;
  /** Fully-qualified names of the services this process serves; their health follows `checks`. */
  services: string[];
  checks: DependencyCheck[];
  /** Registers the service implementations on the server. */
  register: (server: GrpcServer) => void;
  /** Run after the server stopped (stop consumers, close clients), in order. */
  shutdownSteps?: ShutdownStep[];
  /** Install SIGTERM/SIGINT handlers (false in tests). */
  handleSignals?: boolean;
}): Promise<RunningGrpcService> {
  const { kit, config } = opts;
  const health = new HealthMonitor({
    services: opts.services,
    checks: opts.checks,
    intervalMs: config.HEALTH_CHECK_INTERVAL_MS,
    logger: kit.logger,
    registry: kit.registry,
  });
  const server = new GrpcServer({
    logger: kit.logger,
    registry: kit.registry,
    health,
    maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
    maxConnectionAgeGraceMs: config.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
    keepaliveTimeMs: config.GRPC_KEEPALIVE_TIME_MS,
    keepaliveTimeoutMs: config.GRPC_KEEPALIVE_TIMEOUT_MS,
    maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
    reflection: config.GRPC_REFLECTION,
    credentials: serverCredentials({
      certFile: config.GRPC_TLS_CERT_FILE,
      keyFile: config.GRPC_TLS_KEY_FILE,
      clientCaFile: config.GRPC_TLS_CLIENT_CA_FILE,
    }),
    authenticate: config.GRPC_AUTH_MODE === 'jwt' ? jwtAuthenticator(jwtSettings(config)) : undefined,
  });
  opts.register(server);
  const grpcPort = await server.listen(config.GRPC_HOST, opts.grpcPort);
  await health.start();
  const metrics =
    config.METRICS_PORT > 0 || opts.handleSignals === false
      ? await startMetricsServer({
          registry: kit.registry,
          health,
          host: config.METRICS_HOST,
          port: config.METRICS_PORT,
        })
      : undefined;
  const steps: ShutdownStep[] = [
    { name: 'grpc server', run: () => server.shutdown(config.SHUTDOWN_TIMEOUT_MS) },
    ...(opts.shutdownSteps ?? []),
    { name: 'metrics server', run: () => metrics?.close() },
  ];
  if (opts.handleSignals !== false) onShutdown(kit.logger, config.SHUTDOWN_TIMEOUT_MS, steps);
  let stopped: Promise<void> | undefined;
  return {
    server,
    health,
    metrics,
    grpcPort,
    stop: () => {
      stopped ??= (async () => {
        for (const s of steps) await s.run();
      })();
      return stopped;
    },
  };
}
