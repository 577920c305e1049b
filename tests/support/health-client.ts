// A grpc.health.v1 client for tests, from the proto grpc-health-check ships.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';

const definition = grpc.loadPackageDefinition(
  protoLoader.loadSync(protoPath, { keepCase: true, enums: String }),
);
const Health = (definition.grpc as grpc.GrpcObject).health as grpc.GrpcObject;
const HealthClient = (Health.v1 as grpc.GrpcObject).Health as grpc.ServiceClientConstructor;

export function healthClient(address: string): grpc.Client {
  return new HealthClient(address, grpc.credentials.createInsecure());
}

export function healthStatus(client: grpc.Client, service: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (...a: unknown[]) => void>).check!(
      { service },
      { deadline: Date.now() + timeoutMs },
      (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)),
    );
  });
}

/** Polls until `service` reports `want`, or throws after `timeoutMs`. */
export async function waitForHealth(
  client: grpc.Client,
  service: string,
  want: string,
  timeoutMs = 15_000,
): Promise<number> {
  const started = Date.now();
  let last = '';
  while (Date.now() - started < timeoutMs) {
    try {
      last = await healthStatus(client, service);
      if (last === want) return Date.now() - started;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`health of "${service}" stayed ${last}, wanted ${want}`);
}
