// Test harness: the customers service in-process on port 0 against a given
// MySQL/MariaDB, a generated grpc-js client through the kit's createClient,
// and promise wrappers that keep the trailers of failed calls.
import assert from 'node:assert/strict';
import { Metadata, status, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import knex, { type Knex } from 'knex';
import { parseConfig, createClient, createServiceKit } from '@tickmesh/kit';
import {
  CreateCustomerRequest,
  GetCustomerRequest,
  ListCustomersRequest,
  UpdateCustomerRequest,
  DeleteCustomerRequest,
  GetWatchlistRequest,
  SetWatchlistRequest,
  CreateApiKeyRequest,
  ListApiKeysRequest,
  RevokeApiKeyRequest,
  VerifyApiKeyRequest,
  CustomerServiceClient,
} from '@tickmesh/kit/proto';
import type { RunningGrpcService } from '@tickmesh/kit';
import { customersConfigSpec, type CustomersConfig } from '../src/config.js';
import { CUSTOMER_SERVICE_NAME } from '../src/customer-service.js';
import { startCustomersService } from '../src/customers-server.js';
import { knexConfig } from '../src/db.js';

export interface MysqlTarget {
  host?: string;
  port: number;
  user?: string;
  password?: string;
  database?: string;
}

export function mysqlEnv(db: MysqlTarget): Record<string, string> {
  return {
    MYSQL_HOST: db.host ?? '127.0.0.1',
    MYSQL_PORT: String(db.port),
    ...(db.user !== undefined && { MYSQL_USER: db.user }),
    ...(db.password !== undefined && { MYSQL_PASSWORD: db.password }),
    ...(db.database !== undefined && { MYSQL_DATABASE: db.database }),
  };
}

export function testConfig(db: MysqlTarget, extra: Record<string, string> = {}): CustomersConfig {
  return parseConfig(customersConfigSpec, {
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    HEALTH_CHECK_INTERVAL_MS: '200',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...mysqlEnv(db),
    ...extra,
  });
}

/** An admin knex for the test itself (migrations, direct reads). */
export function adminKnex(db: MysqlTarget): Knex {
  return knex(knexConfig(testConfig(db)));
}

type Method<Req, Res> = (
  req: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;

/** A promise-returning call taking a partial request (defaults filled in by the message's fromPartial). */
function rpc<Req, Res>(
  fn: Method<Req, Res>,
  message: { fromPartial(p: Partial<Req>): Req },
): (req: Partial<Req>) => Promise<Res> {
  return (req) =>
    new Promise<Res>((resolve, reject) => {
      fn(message.fromPartial(req), new Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res)));
    });
}

export function customerApi(client: CustomerServiceClient) {
  return {
    createCustomer: rpc(client.createCustomer.bind(client), CreateCustomerRequest),
    getCustomer: rpc(client.getCustomer.bind(client), GetCustomerRequest),
    listCustomers: rpc(client.listCustomers.bind(client), ListCustomersRequest),
    updateCustomer: rpc(client.updateCustomer.bind(client), UpdateCustomerRequest),
    deleteCustomer: rpc(client.deleteCustomer.bind(client), DeleteCustomerRequest),
    getWatchlist: rpc(client.getWatchlist.bind(client), GetWatchlistRequest),
    setWatchlist: rpc(client.setWatchlist.bind(client), SetWatchlistRequest),
    createApiKey: rpc(client.createApiKey.bind(client), CreateApiKeyRequest),
    listApiKeys: rpc(client.listApiKeys.bind(client), ListApiKeysRequest),
    revokeApiKey: rpc(client.revokeApiKey.bind(client), RevokeApiKeyRequest),
    verifyApiKey: rpc(client.verifyApiKey.bind(client), VerifyApiKeyRequest),
  };
}

export type CustomerApi = ReturnType<typeof customerApi>;

export interface TestService {
  running: RunningGrpcService;
  address: string;
  client: CustomerServiceClient;
  api: CustomerApi;
  /** Base URL of /metrics, /healthz, /readyz. */
  httpBase: string;
  stop(): Promise<void>;
}

export async function startTestService(
  db: MysqlTarget,
  extra: Record<string, string> = {},
): Promise<TestService> {
  const config = testConfig(db, extra);
  const kit = createServiceKit('customers-test', config);
  const running = await startCustomersService(config, kit, { handleSignals: false });
  const address = `127.0.0.1:${running.grpcPort}`;
  const client = createClient(CustomerServiceClient, address, {
    unaryDeadlineMs: 15_000,
    service: CUSTOMER_SERVICE_NAME,
  });
  return {
    running,
    address,
    client,
    api: customerApi(client),
    httpBase: `http://127.0.0.1:${running.metrics!.port}`,
    stop: async () => {
      client.close();
      await running.stop();
    },
  };
}

/** Asserts that `promise` fails with `code` (and, for INVALID_ARGUMENT, names `field` in the trailer). */
export async function expectStatus(
  promise: Promise<unknown>,
  code: status,
  field?: string,
): Promise<ServiceError> {
  let error: ServiceError | undefined;
  try {
    await promise;
  } catch (err) {
    error = err as ServiceError;
  }
  assert.ok(error, `expected ${status[code]}, but the call succeeded`);
  assert.equal(error.code, code, `expected ${status[code]}, got ${status[error.code]}: ${error.details}`);
  if (field !== undefined) {
    assert.equal(error.metadata.get('tickmesh-field')[0], field, `field of: ${error.details}`);
    assert.ok(error.details.startsWith(`${field}:`), `message names the field: ${error.details}`);
  }
  return error;
}

export async function readiness(
  httpBase: string,
): Promise<{ status: number; body: { dependencies?: Record<string, { up: boolean; error?: string }> } }> {
  const res = await fetch(`${httpBase}/readyz`, { signal: AbortSignal.timeout(5000) });
  return {
    status: res.status,
    body: (await res.json()) as { dependencies?: Record<string, { up: boolean; error?: string }> },
  };
}
