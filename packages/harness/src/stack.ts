/**
 * The stack launcher: a whole private tickmesh stack on free ports. NATS, Redis and MariaDB
 * from ./servers (own temporary directories), the customers migration, and the services as
 * child processes, each a ManagedProcess: killable, pausable and restartable on its own
 * with the same ports and environment.
 *
 * Never touches the servers `make up` or a user started: every port is picked free, every
 * data directory is new. Every service logs to `<logDir>/<name>.log` (all runs appended),
 * so tests can grep the logs (secrets, crashes) and print their tails on failure. A log dir
 * the stack made itself is removed by stop() unless TICKMESH_KEEP_TEST_DATA=1 or
 * stop({ keepLogs }).
 *
 * The services run from source through tsx, or with TICKMESH_TEST_FROM_DIST=1 (or
 * fromDist) from the build in dist/ with plain node, as a container does: a restart then
 * costs ~1 s rather than 3-5 s of transpiling, which matters when measuring recovery times.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { projectRoot, withTimeout } from '@tickmesh/kit';
import { healthClient, healthStatus } from './health-client.js';
import { httpGet, type HttpAnswer } from './http.js';
import { freePort, LOOPBACK } from './ports.js';
import { KEEP_TEST_DATA } from './leftovers.js';
import { describeExit, ManagedProcess, type ProcessSpec } from './process.js';
import { startMariaDb, type MariaDbTestServer } from './servers/mariadb.js';
import { startNats, type NatsTestServer } from './servers/nats.js';
import { startRedis, type RedisTestServer } from './servers/redis.js';
import { TcpProxy } from './tcp-proxy.js';

/** The repository's root directory. */
export const ROOT = projectRoot();
const FROM_DIST = process.env.TICKMESH_TEST_FROM_DIST === '1';

export type ServiceName = 'ticker' | 'simulator' | 'price-cache' | 'customers' | 'gateway';
const ORDER: ServiceName[] = ['ticker', 'simulator', 'price-cache', 'customers', 'gateway'];

export interface ServiceSpec extends ProcessSpec {
  env: Record<string, string>;
  /** Its /readyz: 200 when ready. */
  readyUrl: string;
  /** Its /healthz. */
  liveUrl: string;
  metricsUrl: string;
  /** host:port of its gRPC server. */
  grpcAddress?: string;
  /** Fully-qualified gRPC service whose health is readiness. */
  grpcService?: string;
}

export type ServiceProcess = ManagedProcess<ServiceSpec>;

export interface ServiceOptions {
  name: string;
  /** services/<dir>/src/<entry>.ts */
  dir: string;
  entry: string;
  args?: string[];
  env: Record<string, string>;
  /** Port of its /readyz, /healthz and /metrics (the gateway's HTTP port). */
  httpPort: number;
  grpcPort?: number;
  grpcService?: string;
  /** Its log is <logDir>/<name>.log. */
  logDir: string;
  fromDist?: boolean;
}

/** How to run services/<dir>/src/<entry>.ts: from source through tsx, or its build in dist/. */
function serviceCommand(dir: string, entry: string, fromDist: boolean): string[] {
  if (!fromDist) return ['--import', 'tsx', path.join(ROOT, 'services', dir, 'src', `${entry}.ts`)];
  const built = path.join(ROOT, 'dist', 'services', dir, 'src', `${entry}.js`);
  if (!fs.existsSync(built))
    throw new Error(`the services should run from dist/, but ${built} is missing: make build`);
  return ['--enable-source-maps', built];
}

/** One tickmesh service as a child process, not started yet; start() waits for its /readyz. */
export function serviceProcess(o: ServiceOptions): ServiceProcess {
  const http = `http://${LOOPBACK}:${o.httpPort}`;
  const readyUrl = `${http}/readyz`;
  let last: HttpAnswer = { status: 0, body: '', error: 'not asked yet' };
  return new ManagedProcess<ServiceSpec>({
    name: o.name,
    command: process.execPath,
    args: [...serviceCommand(o.dir, o.entry, o.fromDist ?? FROM_DIST), ...(o.args ?? [])],
    cwd: ROOT,
    env: o.env,
    logFile: path.join(o.logDir, `${o.name}.log`),
    readyUrl,
    liveUrl: `${http}/healthz`,
    metricsUrl: `${http}/metrics`,
    grpcAddress: o.grpcPort === undefined ? undefined : `${LOOPBACK}:${o.grpcPort}`,
    grpcService: o.grpcService,
    ready: async () => {
      last = await httpGet(readyUrl, 1500);
      return last.status === 200;
    },
    // What the endpoint said last: a dependency it waits for, or no answer at all.
    notReady: () =>
      `last answer from ${readyUrl}: ${last.status ? `${last.status} ${last.body.slice(0, 500)}` : `none (${last.error})`}`,
    readyIntervalMs: 150,
    readyTimeoutMs: 90_000,
  });
}

export interface StackOptions {
  /** Services to start (default: all five). MariaDB starts only with customers. */
  services?: ServiceName[];
  /** Extra environment per service (overrides the stack's defaults). */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Environment for every service. */
  commonEnv?: Record<string, string>;
  /** Route the gateway's PRICE_SERVICE_TARGET through a TcpProxy (stack.priceProxy). */
  priceProxy?: boolean;
  /**
   * Settings for tests (default true): LOG_LEVEL=warn, SHUTDOWN_TIMEOUT_MS=5000, the
   * simulator at 1,000 ticks/s with SIM_SEED=42. false: the services' own defaults.
   */
  testSettings?: boolean;
  /** Simulator rate (SIM_TICKS_PER_SECOND). */
  simRate?: number;
  logLevel?: string;
  /** Where the logs go (and stay); default a new temporary directory. */
  logDir?: string;
  /** Run the build in dist/ (default: TICKMESH_TEST_FROM_DIST=1). */
  fromDist?: boolean;
  /** Called with progress lines (e.g. t.diagnostic). */
  log?: (line: string) => void;
}

export interface Stack {
  nats: NatsTestServer;
  redis: RedisTestServer;
  mariadb: MariaDbTestServer | undefined;
  services: Map<ServiceName, ServiceProcess>;
  priceProxy: TcpProxy | undefined;
  logDir: string;
  /** The service, or a thrown error when the stack does not run it. */
  svc(name: ServiceName): ServiceProcess;
  has(name: ServiceName): boolean;
  /** ws://127.0.0.1:<port>/ws */
  wsUrl: string;
  gatewayHttp: string;
  kill9(name: ServiceName): Promise<void>;
  restart(name: ServiceName, opts?: { kill?: boolean; wait?: boolean }): Promise<void>;
  /** A service's Prometheus exposition (throws unless it answers 200). */
  metrics(name: ServiceName): Promise<string>;
  /** gRPC health of a service name ("" = liveness) on one of the gRPC services. */
  grpcHealth(name: ServiceName, service: string, timeoutMs?: number): Promise<string>;
  /** Every service's unexpected exits, for a final assertion. */
  crashes(): string[];
  /** Lines of every log matching a regular expression (for "never crashed", "no secret"). */
  grepLogs(re: RegExp): Array<{ service: string; line: string }>;
  stop(opts?: { keepLogs?: boolean }): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const wanted = new Set(opts.services ?? ORDER);
  const log = opts.log ?? (() => undefined);
  const ownLogDir = opts.logDir === undefined;
  const logDir = opts.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tickmesh-stack-'));
  const fromDist = opts.fromDist ?? FROM_DIST;
  const testSettings = opts.testSettings ?? true;
  const needDb = wanted.has('customers');
  const t0 = Date.now();
  const [nats, redis, mariadb] = await Promise.all([
    startNats(),
    startRedis(),
    needDb ? startMariaDb() : Promise.resolve(undefined),
  ]);
  log(
    `infrastructure: NATS :${nats.port}, Redis :${redis.port}${mariadb ? `, MariaDB :${mariadb.port}` : ''} (${Date.now() - t0} ms)`,
  );
  const mysqlEnv: Record<string, string> = mariadb
    ? {
        MYSQL_HOST: mariadb.host,
        MYSQL_PORT: String(mariadb.port),
        MYSQL_USER: mariadb.user,
        MYSQL_PASSWORD: mariadb.password,
        MYSQL_DATABASE: mariadb.database,
      }
    : {};
  const logLevel = opts.logLevel ?? (testSettings ? 'warn' : undefined);
  const simRate = opts.simRate ?? (testSettings ? 1000 : undefined);
  const base: Record<string, string> = {
    ...(logLevel ? { LOG_LEVEL: logLevel } : {}),
    GRPC_HOST: LOOPBACK,
    METRICS_HOST: LOOPBACK,
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    ...(testSettings ? { SHUTDOWN_TIMEOUT_MS: '5000' } : {}),
    ...opts.commonEnv,
  };
  const ports = async () => ({ grpc: await freePort(), http: await freePort() });
  const p: Record<ServiceName, { grpc: number; http: number }> = {
    ticker: await ports(),
    simulator: await ports(),
    'price-cache': await ports(),
    customers: await ports(),
    gateway: await ports(),
  };
  const local = (port: number) => `${LOOPBACK}:${port}`;
  const grpcEnv = (name: ServiceName) => ({
    GRPC_PORT: String(p[name].grpc),
    METRICS_PORT: String(p[name].http),
  });
  const defs: Record<ServiceName, Omit<ServiceOptions, 'name' | 'httpPort' | 'logDir'>> = {
    ticker: {
      dir: 'ticker',
      entry: 'main',
      env: { ...base, ...grpcEnv('ticker') },
      grpcPort: p.ticker.grpc,
      grpcService: 'tickmesh.ingest.v1.IngestService',
    },
    simulator: {
      dir: 'ticker',
      entry: 'simulator-main',
      env: {
        ...base,
        METRICS_PORT: String(p.simulator.http),
        ...(simRate !== undefined ? { SIM_TICKS_PER_SECOND: String(simRate) } : {}),
        ...(testSettings ? { SIM_SEED: '42' } : {}),
      },
    },
    'price-cache': {
      dir: 'price-cache',
      entry: 'main',
      env: { ...base, ...grpcEnv('price-cache') },
      grpcPort: p['price-cache'].grpc,
      grpcService: 'tickmesh.price.v1.PriceService',
    },
    customers: {
      dir: 'customers',
      entry: 'main',
      env: { ...base, ...mysqlEnv, ...grpcEnv('customers') },
      grpcPort: p.customers.grpc,
      grpcService: 'tickmesh.customer.v1.CustomerService',
    },
    gateway: {
      dir: 'gateway',
      entry: 'main',
      env: {
        ...base,
        HTTP_HOST: LOOPBACK,
        HTTP_PORT: String(p.gateway.http),
        METRICS_PORT: '0',
        PRICE_SERVICE_TARGET: local(p['price-cache'].grpc),
        CUSTOMER_SERVICE_TARGET: local(p.customers.grpc),
        AUTH_MODE: 'none',
      },
    },
  };
  for (const name of ORDER) Object.assign(defs[name].env, opts.env?.[name] ?? {});

  let priceProxy: TcpProxy | undefined;
  if (opts.priceProxy) {
    priceProxy = await TcpProxy.start({ host: LOOPBACK, port: p['price-cache'].grpc });
    defs.gateway.env.PRICE_SERVICE_TARGET = local(priceProxy.port);
  }

  const services = new Map<ServiceName, ServiceProcess>();
  for (const name of ORDER)
    if (wanted.has(name))
      services.set(name, serviceProcess({ ...defs[name], name, httpPort: p[name].http, logDir, fromDist }));

  const healthClients = new Map<string, grpc.Client>();
  const stack: Stack = {
    nats,
    redis,
    mariadb,
    services,
    priceProxy,
    logDir,
    wsUrl: `ws://${LOOPBACK}:${p.gateway.http}/ws`,
    gatewayHttp: `http://${LOOPBACK}:${p.gateway.http}`,
    svc(name) {
      const s = services.get(name);
      if (!s) throw new Error(`the stack does not run ${name}`);
      return s;
    },
    has: (name) => services.has(name),
    kill9: (name) => stack.svc(name).kill(),
    restart: (name, o) => stack.svc(name).restart(o),
    async metrics(name) {
      const url = stack.svc(name).spec.metricsUrl;
      const res = await httpGet(url, 5000);
      if (res.status !== 200) throw new Error(`GET ${url}: ${res.status || res.error}`);
      return res.body;
    },
    grpcHealth(name, service, timeoutMs = 2000) {
      const address = stack.svc(name).spec.grpcAddress;
      if (!address) throw new Error(`${name} serves no gRPC`);
      let client = healthClients.get(address);
      if (!client) {
        client = healthClient(address);
        healthClients.set(address, client);
      }
      return healthStatus(client, service, timeoutMs);
    },
    crashes() {
      const out: string[] = [];
      for (const s of services.values())
        for (const e of s.unexpectedExits)
          out.push(`${s.name} exited unexpectedly (code ${e.code}, signal ${e.signal}):\n${s.logTail(15)}`);
      return out;
    },
    grepLogs(re) {
      const out: Array<{ service: string; line: string }> = [];
      for (const s of services.values())
        for (const line of s.log().split('\n')) if (re.test(line)) out.push({ service: s.name, line });
      return out;
    },
    async stop(o = {}) {
      for (const c of healthClients.values()) c.close();
      healthClients.clear();
      // Reverse start order: clients before their servers.
      for (const name of [...ORDER].reverse()) await services.get(name)?.stop(10_000);
      priceProxy?.close();
      await Promise.all([nats.stop(), redis.stop(), mariadb?.stop()]);
      if (ownLogDir && !KEEP_TEST_DATA && !o.keepLogs) fs.rmSync(logDir, { recursive: true, force: true });
    },
  };

  try {
    if (mariadb) await migrate(defs.customers.env, logDir, fromDist);
    // The ticker creates the TICKS stream; the rest wait for it or need it.
    if (services.has('ticker')) await stack.svc('ticker').start();
    await Promise.all(
      (['simulator', 'price-cache', 'customers'] as const)
        .filter((n) => services.has(n))
        .map((n) => stack.svc(n).start()),
    );
    if (services.has('gateway')) await stack.svc('gateway').start();
    log(`services ready: ${[...services.keys()].join(', ')} (${Date.now() - t0} ms); logs in ${logDir}`);
  } catch (err) {
    await stack.stop({ keepLogs: true });
    throw err;
  }
  return stack;
}

/** The customers migration (`migrate-main latest`), bounded by two minutes. */
async function migrate(env: Record<string, string>, logDir: string, fromDist: boolean): Promise<void> {
  const m = new ManagedProcess({
    name: 'customers-migrate',
    command: process.execPath,
    args: [...serviceCommand('customers', 'migrate-main', fromDist), 'latest'],
    cwd: ROOT,
    env,
    logFile: path.join(logDir, 'customers-migrate.log'),
  });
  m.launch();
  const exit = await withTimeout(
    m.waitExit(),
    120_000,
    'customers migration: timed out after 120000 ms',
  ).catch(async (err: unknown) => {
    await m.kill();
    throw err;
  });
  if (exit?.code !== 0) throw new Error(`customers migration failed (${describeExit(exit)}):\n${m.log()}`);
}
