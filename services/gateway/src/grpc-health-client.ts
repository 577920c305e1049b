// A dependency check that asks a gRPC server's grpc.health.v1.Health about
// one service name (the customer service follows MySQL), over an existing
// channel so it sees exactly what the real calls see.
import { makeClientConstructor, type Client, credentials } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { DependencyCheck } from '@tickmesh/kit';

type HealthClient = Client & {
  check(
    req: { service: string },
    options: { deadline: number },
    cb: (err: Error | null, res?: { status: string | number }) => void,
  ): void;
};

const HealthClientCtor = makeClientConstructor(
  healthService as unknown as Parameters<typeof makeClientConstructor>[0],
  'grpc.health.v1.Health',
) as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options: object,
) => HealthClient;

export function grpcHealthCheck(
  name: string,
  channelOf: Client,
  serviceName: string,
  deadlineMs: number,
): DependencyCheck {
  const client = new HealthClientCtor('unused', credentials.createInsecure(), {
    channelOverride: channelOf.getChannel(),
  });
  return {
    name,
    timeoutMs: deadlineMs + 200,
    check: () =>
      new Promise<void>((resolve, reject) => {
        client.check({ service: serviceName }, { deadline: Date.now() + deadlineMs }, (err, res) => {
          if (err) reject(new Error(`${name}: ${err.message}`));
          else if (res?.status !== 'SERVING' && res?.status !== 1)
            reject(new Error(`${name}: ${String(res?.status)}`));
          else resolve();
        });
      }),
  };
}
