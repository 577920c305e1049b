// Server metrics as middleware: every call is counted once under its method
// and status code, whichever way it ends (answer, domain error, malformed
// bytes, failed authentication, deadline, cancel, shutdown); unary calls
// observe their duration once; streams are counted when they start.
import { status } from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ServerMiddleware } from './compose.js';
import { statusOf } from './errors.js';

export function metricsMiddleware(registry: Registry): ServerMiddleware {
  const handled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'gRPC calls completed, by method and status code',
    labelNames: ['method', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'Time to answer a unary gRPC call',
    labelNames: ['method'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const streamsStarted = new Counter({
    name: 'grpc_server_streams_started_total',
    help: 'Streaming gRPC calls started, by method',
    labelNames: ['method'],
    registers: [registry],
  });
  return <T>(call: Parameters<ServerMiddleware>[0], next: () => Promise<T>): Promise<T> => {
    const method = call.method;
    const unary = call.kind === 'unary';
    const started = unary ? performance.now() : 0;
    if (!unary) streamsStarted.inc({ method });
    const finish = (code: status) => {
      handled.inc({ method, code: status[code] });
      if (unary) duration.observe({ method }, (performance.now() - started) / 1000);
    };
    return next().then(
      (value) => {
        finish(status.OK);
        return value;
      },
      (err: unknown) => {
        finish(statusOf(err));
        throw err;
      },
    );
  };
}
