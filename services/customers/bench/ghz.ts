// ghz against CustomerService (GetCustomer, CreateCustomer) and, in the same
// run with the same settings, against a bare grpc-js unary server (no kit,
// no database: tests/load/baselines/bare-grpc-server.ts), so the figures are
// ratios to what this machine can do at all.
//
//   node --import tsx services/customers/bench/ghz.ts [--duration 10] [--warmup 3] [--concurrency 50] [--connections 2]
//        [--mysql-from-env]   use the MYSQL_* variables (an existing database) instead of a private MariaDB
//
// The settings come from tests/load/ghz/{get,create}-customer.json (reflection,
// --insecure; CreateCustomer mints a unique email per call with {{newUUID}}).
// Both servers run as separate processes under the same loader (tsx); ghz
// shares the machine with them, as the design's reference figures do.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Metadata } from '@grpc/grpc-js';
import { parseConfig, createClient, projectPath } from '@tickmesh/kit';
import {
  CreateCustomerRequest,
  CustomerServiceClient,
  type CreateCustomerResponse,
} from '@tickmesh/kit/proto';
import { runGhz, type GhzSummary } from '../../../tests/load/lib/ghz.js';
import { startMariaDb, startProcess, stopAll, tsxCommand, type ManagedProcess } from '@tickmesh/harness';
import { mysqlConfig } from '../src/config.js';
import { CUSTOMER_SERVICE_NAME } from '../src/customer-service.js';
import { createDb } from '../src/db.js';
import { migrateLatest } from '../src/migrator.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '50' },
    connections: { type: 'string', default: '2' },
    'mysql-from-env': { type: 'boolean', default: false },
  },
});
const durationS = Number(args.duration);
const warmupS = Number(args.warmup);
const concurrency = Number(args.concurrency);
const connections = Number(args.connections);
const ghzPath = projectPath('.tools', 'bin', 'ghz');
const GET_CONFIG = projectPath('tests', 'load', 'ghz', 'get-customer.json');
const CREATE_CONFIG = projectPath('tests', 'load', 'ghz', 'create-customer.json');

async function startGrpcChild(
  name: string,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<{ proc: ManagedProcess; port: number }> {
  const { command, args: full } = tsxCommand(projectPath(file), args);
  const proc = startProcess({ name, command, args: full, env: { ...process.env, ...env } });
  const m = await proc.waitForLine(ready, 60_000);
  return { proc, port: Number(m[1]) };
}

function createOne(target: string): Promise<CreateCustomerResponse> {
  const client = createClient(CustomerServiceClient, target, {
    unaryDeadlineMs: 10_000,
    service: CUSTOMER_SERVICE_NAME,
  });
  const req = CreateCustomerRequest.fromPartial({
    firstName: 'Bench',
    lastName: 'Seed',
    email: `seed-${Date.now()}@loadtest.invalid`,
  });
  return new Promise<CreateCustomerResponse>((resolve, reject) =>
    client.createCustomer(req, new Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res))),
  ).finally(() => client.close());
}

function row(label: string, s: GhzSummary, base?: GhzSummary): string {
  const ratio = base
    ? `${((100 * s.rps) / base.rps).toFixed(0)}% of bare rps, p99 x${(s.p99Ms / Math.max(base.p99Ms, 0.01)).toFixed(1)}`
    : 'baseline';
  return `| ${label} | ${s.rps.toFixed(0)} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${s.ok}/${s.count} | ${ratio} |`;
}

async function main(): Promise<void> {
  if (!existsSync(ghzPath)) throw new Error(`${ghzPath} missing: run \`make tools\``);
  let mysqlEnv: Record<string, string>;
  if (args['mysql-from-env']) {
    mysqlEnv = {};
  } else {
    const db = await startMariaDb();
    mysqlEnv = {
      MYSQL_HOST: db.host,
      MYSQL_PORT: String(db.port),
      MYSQL_USER: db.user,
      MYSQL_PASSWORD: db.password,
      MYSQL_DATABASE: db.database,
    };
  }
  const mysql = parseConfig(mysqlConfig, { ...process.env, ...mysqlEnv });
  const db = createDb(mysql);
  await migrateLatest(db.knex);
  await db.close();

  const bare = await startGrpcChild(
    'bare grpc-js',
    'tests/load/baselines/bare-grpc-server.ts',
    ['--port', '0'],
    {},
    /READY \{"port":(\d+)\}/,
  );
  const real = await startGrpcChild(
    'customers',
    'services/customers/src/main.ts',
    [],
    { ...mysqlEnv, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'info' },
    /"port":(\d+),"services":\["tickmesh\.customer\.v1\.CustomerService"\]/,
  );
  const bareTarget = `127.0.0.1:${bare.port}`;
  const realTarget = `127.0.0.1:${real.port}`;
  const seeded = await createOne(realTarget);
  const id = seeded.customer!.id;

  const run = (configPath: string, target: string, data?: unknown, seconds = durationS) =>
    runGhz({ ghzPath, configPath, target, durationS: seconds, concurrency, connections, data });
  process.stderr.write(`ghz ${durationS}s per run, concurrency ${concurrency}, connections ${connections}\n`);
  // Unmeasured warm-up of both servers (JIT, the pool growing to its size, MariaDB's buffer pool).
  if (warmupS > 0) {
    for (const target of [bareTarget, realTarget]) {
      await run(GET_CONFIG, target, { id }, warmupS);
      await run(CREATE_CONFIG, target, undefined, warmupS);
    }
  }
  const getBare = await run(GET_CONFIG, bareTarget, { id });
  const getReal = await run(GET_CONFIG, realTarget, { id });
  const createBare = await run(CREATE_CONFIG, bareTarget);
  const createReal = await run(CREATE_CONFIG, realTarget);

  const lines = [
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, node ${process.version}`,
    `ghz ${durationS}s per run, concurrency ${concurrency}, connections ${connections}; customers on MariaDB via knex/mysql2 (pool ${mysql.MYSQL_POOL_MAX})`,
    '',
    '| run | rps | p50 ms | p99 ms | ok/calls | vs bare grpc-js |',
    '|---|---|---|---|---|---|',
    row('GetCustomer, bare grpc-js', getBare),
    row('GetCustomer, customers', getReal, getBare),
    row('CreateCustomer, bare grpc-js', createBare),
    row('CreateCustomer, customers', createReal, createBare),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  for (const [name, s] of [
    ['GetCustomer', getReal],
    ['CreateCustomer', createReal],
  ] as const) {
    if (s.errors > 0)
      process.stdout.write(
        `${name} errors: ${JSON.stringify(s.statusCodes)} ${JSON.stringify(s.topErrors)}\n`,
      );
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });
