// One way to run a gRPC server: health (two meanings), reflection,
// keepalive, connection ageing (so clients re-resolve and reach new pods),
// safe request decoding, the middleware chain around every service method
// (middleware/), and a bounded graceful shutdown.
import {
  Server,
  ServerCredentials,
  status,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { HealthMonitor } from '../health.js';
import type { Logger } from '../logger.js';
import { withSafeDeserializers } from './decode.js';
import { HandlerFactory } from './handlers.js';
import type { ServerMiddleware } from './middleware/compose.js';
import { createReflectionService } from './reflection.js';
import type { Authenticator } from './auth.js';

export interface GrpcServerOptions {
  logger: Logger;
  registry: Registry;
  health: HealthMonitor;
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  maxMessageBytes: number;
  reflection: boolean;
  credentials?: ServerCredentials;
  /** Checks credentials on every tickmesh call (health and reflection stay open). */
  authenticate?: Authenticator;
  /** Deadline of unary calls that come without one (default DEFAULT_UNARY_DEADLINE_MS). */
  unaryDeadlineMs?: number;
}

export class GrpcServer {
  readonly handlers: HandlerFactory;
  private readonly server: Server;
  private readonly serviceNames: string[] = [];
  private boundPort = 0;

  constructor(private readonly opts: GrpcServerOptions) {
    this.handlers = new HandlerFactory(opts.logger, opts.registry, opts.authenticate, opts.unaryDeadlineMs);
    const channelOptions: Record<string, number> = {
      'grpc.keepalive_time_ms': opts.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
    };
    if (opts.maxConnectionAgeMs > 0) {
      channelOptions['grpc.max_connection_age_ms'] = opts.maxConnectionAgeMs;
      channelOptions['grpc.max_connection_age_grace_ms'] = opts.maxConnectionAgeGraceMs;
    }
    this.server = new Server(channelOptions);
  }

  /**
   * Adds middleware inside the standard chain (metrics, errors, deadline,
   * auth), in order, for every service added after it.
   */
  use(...middleware: ServerMiddleware[]): this {
    this.handlers.use(...middleware);
    return this;
  }

  /** Registers a service; `name` is its fully-qualified name, e.g. tickmesh.price.v1.PriceService. */
  addService<D extends ServiceDefinition>(
    name: string,
    definition: D,
    implementation: UntypedServiceImplementation,
  ): void {
    this.server.addService(withSafeDeserializers(definition), implementation);
    this.serviceNames.push(name);
  }

  get port(): number {
    return this.boundPort;
  }

  /** Adds health and reflection, binds and starts serving. Port 0 picks a free port. */
  async listen(host: string, port: number): Promise<number> {
    this.opts.health.grpc.addToServer(this.server);
    if (this.opts.reflection) createReflectionService(this.serviceNames).addToServer(this.server);
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(
        address,
        this.opts.credentials ?? ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    });
    this.opts.logger.info({ port: this.boundPort, services: this.serviceNames }, 'gRPC server listening');
    return this.boundPort;
  }

  /**
   * Graceful stop: health NOT_SERVING, open streams ended with UNAVAILABLE so
   * clients reconnect elsewhere, in-flight unary calls drained, and a forced
   * stop when `timeoutMs` runs out.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.opts.health.setShuttingDown();
    this.handlers.endAllStreams(status.UNAVAILABLE, 'server shutting down');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.opts.logger.warn('drain timed out: forcing the gRPC server down');
        this.server.forceShutdown();
        resolve();
      }, timeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
