// The system under test: the running `make up` stack when it answers on its
// fixed ports, otherwise a private stack on free ports (@tickmesh/harness's
// stack launcher: NATS, Redis and MariaDB on free ports, the services as child
// processes from dist/ or, without a build, from source through tsx).
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
import { freePort, httpGet, serviceProcess, startStack, type ServiceProcess } from '@tickmesh/harness';

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

/** From dist/ unless asked for the sources or there is no build. */
function fromDist(o: StackOptions): boolean {
  return !o.fromSource && existsSync(join(o.root, 'dist', 'services', 'ticker', 'src', 'main.js'));
}

/** An open-mode ticker on free ports, on the given NATS (same stream and partitions as the stack's). */
async function startBenchTicker(
  o: StackOptions,
  natsUrl: string,
  name = 'bench-ticker',
): Promise<{ proc: ServiceProcess; target: string }> {
  const grpc = await freePort();
  const metrics = await freePort();
  const proc = serviceProcess({
    name,
    dir: 'ticker',
    entry: 'main',
    env: {
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(grpc),
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: String(metrics),
      NATS_URL: natsUrl,
      INGEST_OPEN_MODE: 'true',
      INGEST_UNARY_PRODUCER_ID: `bench-unary-${process.pid}`,
    },
    httpPort: metrics,
    grpcPort: grpc,
    logDir: o.logDir,
    fromDist: fromDist(o),
  });
  await proc.start();
  o.log(`  ${name}: ready (pid ${proc.pid})`);
  return { proc, target: proc.spec.grpcAddress! };
}

async function reusable(e: ReuseEndpoints): Promise<boolean> {
  const checks = await Promise.all(e.ready.map((u) => httpGet(u, 2000)));
  return checks.every((c) => c.status >= 200 && c.status < 300);
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
  const processes: StackProcess[] = [{ name: 'bench-ticker', pid: bench.proc.pid! }];
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
  const stack = await startStack({
    // The services' own settings, but for the ticker in open mode (BENCH-* symbols).
    testSettings: false,
    env: { ticker: { INGEST_OPEN_MODE: 'true', INGEST_UNARY_PRODUCER_ID: 'bench-unary' } },
    logDir: o.logDir,
    fromDist: fromDist(o),
    log: (line) => o.log(`  ${line}`),
  });
  const { nats, redis, mariadb: db } = stack;
  const processes: StackProcess[] = [
    ...[...stack.services.values()].map((p) => ({ name: p.name, pid: p.pid })),
    { name: 'nats-server', pid: nats.pid },
    { name: 'redis-server', pid: redis.pid },
    { name: 'mariadb', pid: db!.pid },
  ].filter((p): p is StackProcess => p.pid !== undefined);
  const endpoints = {
    price: stack.svc('price-cache').spec.grpcAddress!,
    customers: stack.svc('customers').spec.grpcAddress!,
    ingest: stack.svc('ticker').spec.grpcAddress!,
    benchIngest: stack.svc('ticker').spec.grpcAddress!,
    gateway: stack.wsUrl,
    nats: nats.url,
    redis: redis.url,
    mariadb: `${db!.host}:${db!.port}`,
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
    stop: () => stack.stop(),
  };
}
