// The public face of @tickmesh/kit: everything a service or a test may use from the
// shared code. Services import from here (and from '@tickmesh/kit/proto' for the
// generated wire types), never from a path inside the package.
export * from './config.js';
export * from './errors.js';
export * from './health.js';
export * from './logger.js';
export * from './metrics.js';
export * from './paths.js';
export * from './service.js';
export * from './shutdown.js';
export * from './deps/nats.js';
export * from './deps/redis.js';
export * from './grpc/auth.js';
export * from './grpc/client.js';
export * from './grpc/handlers.js';
export * from './grpc/middleware/index.js';
export * from './grpc/reflection.js';
export * from './grpc/server.js';
export * from './grpc/tls.js';
export * from './market/decimal.js';
export * from './market/session.js';
export * from './market/symbols.js';
export * from './market/universe.js';
export * from './ticks/contract.js';
