// The system under test: the running `make up` stack when it answers on its
// fixed ports, otherwise a private stack on free ports (NATS, Redis and
// MariaDB from tests/support/servers.ts, the services as child processes
// from dist/ or, without a build, from source through tsx).
//
// Load that writes ticks goes to symbols outside the market (BENCH-*),
// through a ticker in open mode (INGEST_OPEN_MODE=true), so the benchmark
// never moves the prices of real instruments. With a reused stack that is a
// private extra ticker on the same NATS; in a private stack the one ticker
// runs in open mode.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  freePort,
  httpOk,
  startProcess,
  tsxCommand,
  waitUntil,
  withTimeout,
  type ManagedProcess,
} from './lib/processes.js';

const execFileP = promisify(execFile);

export interface StackProcess {
  name: string;
  pid: number;
}

export interface Stack {
  mode: 'reused' | 'private';
  /** host:port of PriceService. */
  price: string;
  customers: string;
  /** IngestService of the make-up stack (closed mode: market symbols only). */
  ingest: string;
  /** IngestService in open mode, for BENCH-* symbols. */
  benchIngest: string;
  gatewayWs: string;
  natsUrl: string;
  /** Every process of the system under test, for CPU sampling. */
  processes: StackProcess[];
  endpoints: Record<string, string>;
  notes: string[];
  logDir: string;
  stop(): Promise<void>;
}

export interface StackOptions {
  mode: 'auto' | 'reuse' | 'private';
  reuse?: ReuseEndpoints;
  root: string;
  logDir: string;
  fromSource: boolean;
  log: (line: string) => void;
}

/**
 * Where the running stack answers: the fixed ports of `make up` by default;
 * `--reuse-endpoints '<json>'` overrides any of these (a stack on other
 * ports, e.g. a port-forwarded cluster).
 */
export interface ReuseEndpoints {
  ingest: string;
  price: string;
  customers: string;
  gateway: string;
  natsUrl: string;
  /** Readiness URLs that must answer 2xx before the stack is reused. */
  ready: string[];
  /** TCP ports whose listening processes are CPU-sampled, by name. */
  ports: Record<string, number>;
}

export const MAKE_UP_ENDPOINTS: ReuseEndpoints = {
  ingest: '127.0.0.1:50051',
  price: '127.0.0.1:50052',
  customers: '127.0.0.1:50053',
  gateway: 'ws://127.0.0.1:8080/ws',
  natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  ready: [
    'http://127.0.0.1:9101/readyz',
    'http://127.0.0.1:9102/readyz',
    'http://127.0.0.1:9103/readyz',
    'http://127.0.0.1:8080/readyz',
  ],
  ports: {
    ticker: 50051,
    simulator: 9105,
    'price-cache': 50052,
    customers: 50053,
    gateway: 8080,
    'nats-server': 4222,
    'redis-server': 6379,
    mariadb: 3306,
  },
};

/** MAKE_UP_ENDPOINTS with the fields of a JSON object replaced (unknown fields are refused). */
export function reuseEndpoints(json: string | undefined): ReuseEndpoints {
  if (!json) return MAKE_UP_ENDPOINTS;
  const o = JSON.parse(json) as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!(k in MAKE_UP_ENDPOINTS)) throw new Error(`--reuse-endpoints: unknown field ${k}`);
  return { ...MAKE_UP_ENDPOINTS, ...(o as Partial<ReuseEndpoints>) };
}

/** pid listening on a TCP port, from `ss -ltnp` (for CPU sampling of a reused stack). */
export async function pidOnPort(port: number): Promise<number | undefined> {
  try {
    const { stdout } = await execFileP('ss', ['-ltnpH', `sport = :${port}`], { timeout: 5000 });
    const m = /pid=(\d+)/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function serviceCommand(
  root: string,
  fromSource: boolean,
  service: string,
  entry: string,
  args: string[] = [],
) {
  const built = join(root, 'dist', 'services', service, 'src', `${entry}.js`);
  if (!fromSource && existsSync(built))
    return { command: process.execPath, args: ['--enable-source-maps', built, ...args] };
  return tsxCommand(join(root, 'services', service, 'src', `${entry}.ts`), args);
}

async function startService(
  o: StackOptions,
  name: string,
  service: string,
  entry: string,
  env: Record<string, string>,
  readyUrl: string,
): Promise<ManagedProcess> {
  const cmd = serviceCommand(o.root, o.fromSource, service, entry);
  const proc = startProcess({
    name,
    command: cmd.command,
    args: cmd.args,
    cwd: o.root,
    env: { ...process.env, ...env },
    logFile: join(o.logDir, `${name}.log`),
  });
  try {
    await waitUntil(`${name} ready at ${readyUrl}`, () => httpOk(readyUrl, 1000), 90_000, {
      intervalMs: 300,
      alive: proc.isRunning,
    });
  } catch (err) {
    await proc.stop(5000);
    throw new Error(`${(err as Error).message}\n--- last lines of ${name} ---\n${proc.tail(15)}`, {
      cause: err,
    });
  }
  o.log(`  ${name}: ready (pid ${proc.pid})`);
  return proc;
}

/** An open-mode ticker on free ports, on the given NATS (same stream and partitions as the stack's). */
async function startBenchTicker(
  o: StackOptions,
  natsUrl: string,
  name = 'bench-ticker',
): Promise<{ proc: ManagedProcess; target: string }> {
  const grpc = await freePort();
  const metrics = await freePort();
  const proc = await startService(
    o,
    name,
    'ticker',
    'main',
    {
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(grpc),
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: String(metrics),
      NATS_URL: natsUrl,
      INGEST_OPEN_MODE: 'true',
      INGEST_UNARY_PRODUCER_ID: `bench-unary-${process.pid}`,
    },
    `http://127.0.0.1:${metrics}/readyz`,
  );
  return { proc, target: `127.0.0.1:${grpc}` };
}

async function reusable(e: ReuseEndpoints): Promise<boolean> {
  const checks = await Promise.all(e.ready.map((u) => httpOk(u, 2000)));
  return checks.every(Boolean);
}

export async function startOrReuseStack(o: StackOptions): Promise<Stack> {
  mkdirSync(o.logDir, { recursive: true });
  const e = o.reuse ?? MAKE_UP_ENDPOINTS;
  if (o.mode === 'private') return privateStack(o);
  if (await reusable(e)) return reuseStack(o, e);
  if (o.mode === 'reuse')
    throw new Error(`--stack reuse: the stack is not ready (${e.ready.join(', ')}); start it with make up`);
  return privateStack(o);
}

async function reuseStack(o: StackOptions, e: ReuseEndpoints): Promise<Stack> {
  o.log(`stack: reusing the running stack (${e.price}, ${e.customers}, ${e.ingest}, ${e.gateway})`);
  const bench = await startBenchTicker(o, e.natsUrl);
  const processes: StackProcess[] = [{ name: 'bench-ticker', pid: bench.proc.pid }];
  for (const [name, port] of Object.entries(e.ports)) {
    const pid = await pidOnPort(port);
    if (pid !== undefined && !processes.some((p) => p.pid === pid)) processes.push({ name, pid });
  }
  o.log(`  sampling CPU of ${processes.map((p) => `${p.name} (${p.pid})`).join(', ')}`);
  const endpoints = {
    price: e.price,
    customers: e.customers,
    ingest: e.ingest,
    benchIngest: bench.target,
    gateway: e.gateway,
    nats: e.natsUrl,
  };
  return {
    mode: 'reused',
    price: e.price,
    customers: e.customers,
    ingest: e.ingest,
    benchIngest: bench.target,
    gatewayWs: e.gateway,
    natsUrl: e.natsUrl,
    processes,
    endpoints,
    notes: [
      'Reused the running stack; load that writes ticks went through an extra open-mode ticker (bench-ticker) on the same NATS, to BENCH-* symbols only.',
      'CreateCustomer runs leave customers with emails bench-<uuid>@loadtest.invalid in the database.',
    ],
    logDir: o.logDir,
    stop: async () => {
      await bench.proc.stop(10_000);
    },
  };
}

async function privateStack(o: StackOptions): Promise<Stack> {
  o.log('stack: starting a private stack on free ports (NATS, Redis, MariaDB and the services)');
  // Imported here: the module reaps leftovers of crashed runs when it loads.
  const servers = await import('../support/servers.js');
  const started: ManagedProcess[] = [];
  const stopAll = async () => {
    for (const p of [...started].reverse()) await p.stop(15_000);
    await servers.stopAll();
  };
  try {
    const [nats, redis, db] = await withTimeout(
      Promise.all([servers.startNats(), servers.startRedis(), servers.startMariaDb()]),
      180_000,
      'starting NATS, Redis and MariaDB',
    );
    o.log(`  infrastructure: NATS :${nats.port}, Redis :${redis.port}, MariaDB :${db.port}`);
    const mysqlEnv = {
      MYSQL_HOST: db.host,
      MYSQL_PORT: String(db.port),
      MYSQL_USER: db.user,
      MYSQL_PASSWORD: db.password,
      MYSQL_DATABASE: db.database,
    };
    const migrate = serviceCommand(o.root, o.fromSource, 'customers', 'migrate-main', ['latest']);
    const m = startProcess({
      name: 'customers-migrate',
      command: migrate.command,
      args: migrate.args,
      cwd: o.root,
      env: { ...process.env, ...mysqlEnv },
      logFile: join(o.logDir, 'customers-migrate.log'),
    });
    const code = await withTimeout(m.exited, 120_000, 'customers migration');
    if (code !== 0) throw new Error(`customers migration failed (${code}):\n${m.tail(15)}`);

    const port = async () => String(await freePort());
    const [
      tickerGrpc,
      tickerMetrics,
      simMetrics,
      priceGrpc,
      priceMetrics,
      custGrpc,
      custMetrics,
      gatewayHttp,
    ] = await Promise.all(Array.from({ length: 8 }, port));
    const common = {
      GRPC_HOST: '127.0.0.1',
      METRICS_HOST: '127.0.0.1',
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
    };
    const ticker = await startService(
      o,
      'ticker',
      'ticker',
      'main',
      {
        ...common,
        GRPC_PORT: tickerGrpc!,
        METRICS_PORT: tickerMetrics!,
        INGEST_OPEN_MODE: 'true',
        INGEST_UNARY_PRODUCER_ID: 'bench-unary',
      },
      `http://127.0.0.1:${tickerMetrics}/readyz`,
    );
    started.push(ticker);
    const sim = await startService(
      o,
      'simulator',
      'ticker',
      'simulator-main',
      { ...common, METRICS_PORT: simMetrics! },
      `http://127.0.0.1:${simMetrics}/readyz`,
    );
    started.push(sim);
    const price = await startService(
      o,
      'price-cache',
      'price-cache',
      'main',
      { ...common, GRPC_PORT: priceGrpc!, METRICS_PORT: priceMetrics! },
      `http://127.0.0.1:${priceMetrics}/readyz`,
    );
    started.push(price);
    const customers = await startService(
      o,
      'customers',
      'customers',
      'main',
      { ...common, ...mysqlEnv, GRPC_PORT: custGrpc!, METRICS_PORT: custMetrics! },
      `http://127.0.0.1:${custMetrics}/readyz`,
    );
    started.push(customers);
    const gateway = await startService(
      o,
      'gateway',
      'gateway',
      'main',
      {
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: gatewayHttp!,
        METRICS_PORT: '0',
        PRICE_SERVICE_TARGET: `127.0.0.1:${priceGrpc}`,
        CUSTOMER_SERVICE_TARGET: `127.0.0.1:${custGrpc}`,
        AUTH_MODE: 'none',
      },
      `http://127.0.0.1:${gatewayHttp}/readyz`,
    );
    started.push(gateway);
    const processes: StackProcess[] = [
      ...started.map((p) => ({ name: p.name, pid: p.pid })),
      ...(
        [
          ['nats-server', nats.pid],
          ['redis-server', redis.pid],
          ['mariadb', db.pid],
        ] as Array<[string, number | undefined]>
      )
        .filter((x): x is [string, number] => x[1] !== undefined)
        .map(([name, pid]) => ({ name, pid })),
    ];
    const endpoints = {
      price: `127.0.0.1:${priceGrpc}`,
      customers: `127.0.0.1:${custGrpc}`,
      ingest: `127.0.0.1:${tickerGrpc}`,
      benchIngest: `127.0.0.1:${tickerGrpc}`,
      gateway: `ws://127.0.0.1:${gatewayHttp}/ws`,
      nats: nats.url,
      redis: redis.url,
      mariadb: `${db.host}:${db.port}`,
    };
    return {
      mode: 'private',
      price: endpoints.price,
      customers: endpoints.customers,
      ingest: endpoints.ingest,
      benchIngest: endpoints.benchIngest,
      gatewayWs: endpoints.gateway,
      natsUrl: nats.url,
      processes,
      endpoints,
      notes: [
        `Private stack with default service settings except INGEST_OPEN_MODE=true on the ticker (BENCH-* symbols); logs in ${o.logDir}.`,
      ],
      logDir: o.logDir,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
