// A grpc.health.v1 client for tests, from the proto grpc-health-check ships.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { waitUntil } from './wait.js';

const definition = grpc.loadPackageDefinition(
  protoLoader.loadSync(protoPath, { keepCase: true, enums: String }),
);
const Health = (definition.grpc as grpc.GrpcObject).health as grpc.GrpcObject;
const HealthClient = (Health.v1 as grpc.GrpcObject).Health as grpc.ServiceClientConstructor;

/** A plaintext Health client for host:port. */
export function healthClient(address: string): grpc.Client {
  return new HealthClient(address, grpc.credentials.createInsecure());
}

/** The status ("SERVING", "NOT_SERVING", ...) of `service` ("" = the server as a whole). */
export function healthStatus(client: grpc.Client, service: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (...a: unknown[]) => void>).check!(
      { service },
      { deadline: Date.now() + timeoutMs },
      (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)),
    );
  });
}

/** Polls until `service` reports `want`; resolves with the time it took. */
export async function waitForHealth(
  client: grpc.Client,
  service: string,
  want: string,
  timeoutMs = 15_000,
): Promise<number> {
  const started = Date.now();
  await waitUntil(
    async () => {
      const status = await healthStatus(client, service);
      if (status !== want) throw new Error(`it is ${status}`);
      return true;
    },
    { timeoutMs, intervalMs: 100, what: `health of "${service}" to be ${want}` },
  );
  return Date.now() - started;
}
