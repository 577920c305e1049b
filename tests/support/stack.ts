/**
 * A whole private tickmesh stack for reliability tests: NATS, Redis and MariaDB from
 * tests/support/servers.ts (free ports, own temp dirs), the customers migration, and the
 * services as child processes (`node --import tsx services/<svc>/src/<main>.ts`) on free
 * ports, each killable and restartable on its own, plus health probes, a pausable TCP proxy
 * and process measurements (RSS from /proc).
 *
 * Never touches the servers `make up` or a user started: every port is picked free, every
 * data directory is new. Logs of every service go to `<logDir>/<name>.log` (all runs
 * appended), so tests can grep them (secrets, crashes) and print their tails on failure.
 * The log dir is removed by stop() unless TICKMESH_KEEP_TEST_DATA=1 or stop({ keepLogs }).
 *
 * TICKMESH_TEST_FROM_DIST=1 runs the built services (`make build`, dist/) with plain node,
 * as a container does, instead of tsx: a restart then costs ~1 s rather than 3-5 s of
 * transpiling, which matters when measuring recovery times.
 *
 * Every child is SIGKILLed when the test process exits, whatever the way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { healthClient, healthStatus } from './health-client.js';
import {
  freePort,
  startMariaDb,
  startNats,
  startRedis,
  type MariaDbTestServer,
  type NatsTestServer,
  type RedisTestServer,
} from './servers.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KEEP = process.env.TICKMESH_KEEP_TEST_DATA === '1';
const FROM_DIST = process.env.TICKMESH_TEST_FROM_DIST === '1';

/** Node arguments that run services/<dir>/src/<entry>.ts from source, or its build under FROM_DIST. */
function entryArgs(dir: string, entry: string): string[] {
  if (!FROM_DIST) return ['--import', 'tsx', path.join(ROOT, 'services', dir, 'src', `${entry}.ts`)];
  const built = path.join(ROOT, 'dist', 'services', dir, 'src', `${entry}.js`);
  if (!fs.existsSync(built))
    throw new Error(`TICKMESH_TEST_FROM_DIST=1 but ${built} is missing: run make build`);
  return [built];
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a truthy value; throws `what` after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

/** GET a URL; resolves with the status code (0 when unreachable or timed out). */
/** One GET: its status and the start of its body, or status 0 and why there was no answer. */
export function httpGet(
  url: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    fetch(url, { signal: ac.signal })
      .then(async (res) => {
        const body = await res.text().catch(() => '');
        resolve({ status: res.status, body: body.slice(0, 500) });
      })
      .catch((err: unknown) => {
        const e = err as { name?: string; message?: string; cause?: { code?: string } };
        const why =
          e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
        resolve({ status: 0, body: '', error: why ?? String(err) });
      })
      .finally(() => clearTimeout(timer));
  });
}

export async function httpStatus(url: string, timeoutMs = 2000): Promise<number> {
  return (await httpGet(url, timeoutMs)).status;
}

/** The kernel's view of a process (state, threads, CPU ticks), to tell a busy or stuck one from a waiting one. */
function procState(pid: number | undefined): string {
  if (pid === undefined) return 'no pid';
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const pick = (key: string) => status.match(new RegExp(`^${key}:\\s*(.*)$`, 'm'))?.[1] ?? '?';
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return `state ${pick('State')}, threads ${pick('Threads')}, utime+stime ${Number(stat[11]) + Number(stat[12])} ticks`;
  } catch {
    return 'not in /proc';
  }
}

/** GET a URL's body as text (throws when unreachable or not 2xx). */
export async function httpText(url: string, timeoutMs = 5000): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return body;
}

/** Resident set size of a process in bytes (VmRSS), undefined when it is gone. */
export function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One value of a Prometheus text exposition (first sample whose name and labels match). */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}

// ------------------------------------------------------------------ child processes

const children = new Set<ChildProcess>();

/** The test runner's environment minus what would confuse a service (node:test's own markers). */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}
function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killChildren);
// A test run interrupted by a signal (Ctrl-C, a CI timeout) must not leave services behind.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  const onSignal = () => {
    killChildren();
    process.removeListener(sig, onSignal);
    // Re-raise with the default action unless someone else (servers.ts) handles it.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.on(sig, onSignal);
}

export interface ExitRecord {
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the stack asked for it (stop, kill9, restart). */
  requested: boolean;
}

export interface ServiceSpec {
  name: string;
  /** services/<dir>/src/<entry>.ts */
  dir: string;
  entry: string;
  args?: string[];
  env: Record<string, string>;
  /** URL answering 200 when the service is ready (its /readyz). */
  readyUrl?: string;
  /** URL of liveness (/healthz). */
  liveUrl?: string;
  metricsUrl?: string;
  /** host:port of its gRPC server. */
  grpcAddress?: string;
  /** Fully-qualified gRPC service whose health is readiness. */
  grpcService?: string;
}

/** One service process: started, killed, restarted with the same ports and environment. */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private requestedExit = false;
  readonly exits: ExitRecord[] = [];
  readonly logFile: string;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: ServiceSpec,
    logDir: string,
  ) {
    this.logFile = path.join(logDir, `${spec.name}.log`);
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.isRunning() ? this.child?.pid : undefined;
  }

  isRunning(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Exits nobody asked for (crashes). */
  get unexpectedExits(): ExitRecord[] {
    return this.exits.filter((e) => !e.requested);
  }

  /** Starts the process (no-op when running); waits for readiness unless `wait: false`. */
  async start(opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.isRunning()) return;
    const args = entryArgs(this.spec.dir, this.spec.entry);
    fs.appendFileSync(this.logFile, `\n==== start ${new Date().toISOString()}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [...args, ...(this.spec.args ?? [])], {
      cwd: ROOT,
      env: childEnv(this.spec.env),
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    this.child = child;
    this.requestedExit = false;
    children.add(child);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        this.exits.push({ at: Date.now(), code, signal, requested: this.requestedExit });
        resolve();
      });
    });
    if (opts.wait === false || !this.spec.readyUrl) return;
    await this.waitReady(opts.timeoutMs ?? 90_000);
  }

  /** Waits until /readyz answers 200; fails early when the process dies. */
  async waitReady(timeoutMs = 90_000): Promise<number> {
    const started = Date.now();
    const url = this.spec.readyUrl;
    if (!url) throw new Error(`${this.name} has no readiness URL`);
    const deadline = started + timeoutMs;
    for (;;) {
      if (!this.isRunning()) throw new Error(`${this.name} exited before it was ready:\n${this.logTail(25)}`);
      const last = await httpGet(url, 1500);
      if (last.status === 200) break;
      if (Date.now() >= deadline) {
        // What the endpoint said last and what the process was doing: a dependency
        // it waits for, an event loop that does not answer, or a process that never ran.
        const answer = last.status ? `${last.status} ${last.body}` : `none (${last.error})`;
        throw new Error(
          `${this.name} not ready at ${url} within ${timeoutMs} ms; last answer: ${answer}; ` +
            `process: ${procState(this.child?.pid)}\n${this.logTail(25)}`,
        );
      }
      await sleep(150);
    }
    return Date.now() - started;
  }

  /** SIGKILL (kill -9); resolves once it is gone. */
  async kill9(): Promise<void> {
    if (!this.isRunning()) return;
    this.requestedExit = true;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after timeoutMs; resolves once it is gone. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.isRunning()) return;
    this.requestedExit = true;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGSTOP: the process stays alive but does nothing (a frozen process). */
  pause(): void {
    if (this.isRunning()) this.child!.kill('SIGSTOP');
  }

  resume(): void {
    if (this.isRunning()) this.child!.kill('SIGCONT');
  }

  async restart(opts: { kill?: boolean; wait?: boolean } = {}): Promise<void> {
    if (opts.kill) await this.kill9();
    else await this.stop();
    await this.start({ wait: opts.wait });
  }

  rss(): number | undefined {
    return rssBytes(this.pid);
  }

  logTail(lines = 30): string {
    try {
      return fs
        .readFileSync(this.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async metrics(): Promise<string> {
    if (!this.spec.metricsUrl) throw new Error(`${this.name} has no metrics URL`);
    return httpText(this.spec.metricsUrl);
  }
}

// ------------------------------------------------------------------------- the stack

export type ServiceName = 'ticker' | 'simulator' | 'price-cache' | 'customers' | 'gateway';
const ORDER: ServiceName[] = ['ticker', 'simulator', 'price-cache', 'customers', 'gateway'];

export interface StackOptions {
  /** Services to start (default: all five). MariaDB starts only with customers. */
  services?: ServiceName[];
  /** Extra environment per service (overrides the stack's defaults). */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Environment for every service. */
  commonEnv?: Record<string, string>;
  /** Route the gateway's PRICE_SERVICE_TARGET through a TcpProxy (stack.priceProxy). */
  priceProxy?: boolean;
  /** Simulator rate (SIM_TICKS_PER_SECOND); default 1000. */
  simRate?: number;
  logLevel?: string;
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
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickmesh-stack-'));
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
  const level = opts.logLevel ?? 'warn';
  const base: Record<string, string> = {
    LOG_LEVEL: level,
    GRPC_HOST: '127.0.0.1',
    METRICS_HOST: '127.0.0.1',
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    SHUTDOWN_TIMEOUT_MS: '5000',
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
  const local = (port: number) => `127.0.0.1:${port}`;
  const specs: Record<ServiceName, ServiceSpec> = {
    ticker: {
      name: 'ticker',
      dir: 'ticker',
      entry: 'main',
      env: { ...base, GRPC_PORT: String(p.ticker.grpc), METRICS_PORT: String(p.ticker.http) },
      grpcAddress: local(p.ticker.grpc),
      grpcService: 'tickmesh.ingest.v1.IngestService',
    },
    simulator: {
      name: 'simulator',
      dir: 'ticker',
      entry: 'simulator-main',
      env: {
        ...base,
        METRICS_PORT: String(p.simulator.http),
        SIM_TICKS_PER_SECOND: String(opts.simRate ?? 1000),
        SIM_SEED: '42',
      },
    },
    'price-cache': {
      name: 'price-cache',
      dir: 'price-cache',
      entry: 'main',
      env: { ...base, GRPC_PORT: String(p['price-cache'].grpc), METRICS_PORT: String(p['price-cache'].http) },
      grpcAddress: local(p['price-cache'].grpc),
      grpcService: 'tickmesh.price.v1.PriceService',
    },
    customers: {
      name: 'customers',
      dir: 'customers',
      entry: 'main',
      env: {
        ...base,
        ...mysqlEnv,
        GRPC_PORT: String(p.customers.grpc),
        METRICS_PORT: String(p.customers.http),
      },
      grpcAddress: local(p.customers.grpc),
      grpcService: 'tickmesh.customer.v1.CustomerService',
    },
    gateway: {
      name: 'gateway',
      dir: 'gateway',
      entry: 'main',
      env: {
        ...base,
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(p.gateway.http),
        METRICS_PORT: '0',
        PRICE_SERVICE_TARGET: local(p['price-cache'].grpc),
        CUSTOMER_SERVICE_TARGET: local(p.customers.grpc),
        AUTH_MODE: 'none',
      },
    },
  };
  for (const name of ORDER) {
    const s = specs[name];
    const http = p[name].http;
    s.readyUrl = `http://127.0.0.1:${http}/readyz`;
    s.liveUrl = `http://127.0.0.1:${http}/healthz`;
    s.metricsUrl = `http://127.0.0.1:${http}/metrics`;
    Object.assign(s.env, opts.env?.[name] ?? {});
  }

  let priceProxy: TcpProxy | undefined;
  if (opts.priceProxy) {
    priceProxy = await TcpProxy.start({ host: '127.0.0.1', port: p['price-cache'].grpc });
    specs.gateway.env.PRICE_SERVICE_TARGET = local(priceProxy.port);
  }

  const services = new Map<ServiceName, ServiceProcess>();
  for (const name of ORDER) if (wanted.has(name)) services.set(name, new ServiceProcess(specs[name], logDir));

  const healthClients = new Map<string, grpc.Client>();
  const stack: Stack = {
    nats,
    redis,
    mariadb,
    services,
    priceProxy,
    logDir,
    wsUrl: `ws://127.0.0.1:${p.gateway.http}/ws`,
    gatewayHttp: `http://127.0.0.1:${p.gateway.http}`,
    svc(name) {
      const s = services.get(name);
      if (!s) throw new Error(`the stack does not run ${name}`);
      return s;
    },
    has: (name) => services.has(name),
    kill9: (name) => stack.svc(name).kill9(),
    restart: (name, o) => stack.svc(name).restart(o),
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
      if (!KEEP && !o.keepLogs) fs.rmSync(logDir, { recursive: true, force: true });
    },
  };

  try {
    if (mariadb) await migrate(specs.customers.env, logDir);
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

async function migrate(env: Record<string, string>, logDir: string): Promise<void> {
  const logFile = path.join(logDir, 'customers-migrate.log');
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [...entryArgs('customers', 'migrate-main'), 'latest'], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  children.add(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  children.delete(child);
  if (code !== 0)
    throw new Error(`customers migration failed (${code}):\n${fs.readFileSync(logFile, 'utf8')}`);
}

// ------------------------------------------------------------------------- TCP proxy

interface ProxiedPair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

/**
 * A TCP proxy in front of one address, for network faults between two services:
 *  - `blackhole()`: a partition. Nothing passes in either direction (sockets stop being
 *    read, as with packets dropped and retransmitted later); new connections are accepted
 *    but not forwarded. `heal()` lets everything flow again, nothing lost, like TCP after
 *    a partition heals.
 *  - `reset()`: every connection is destroyed (RST) and new ones are refused until heal().
 */
export class TcpProxy {
  private readonly pairs = new Set<ProxiedPair>();
  private mode: 'pass' | 'blackhole' | 'refuse' = 'pass';
  private readonly held: ProxiedPair[] = [];

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }, listenPort = 0): Promise<TcpProxy> {
    // Connections are accepted only once listening, so the proxy exists by the time one arrives.
    const ref: { proxy?: TcpProxy } = {};
    const server = net.createServer({ pauseOnConnect: true }, (socket) => ref.proxy!.accept(socket));
    server.listen(listenPort || (await freePort()), '127.0.0.1');
    await once(server, 'listening');
    ref.proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, target);
    return ref.proxy;
  }

  get state(): string {
    return this.mode;
  }

  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    const pair: ProxiedPair = { client, upstream: undefined };
    client.on('error', () => this.drop(pair));
    client.on('close', () => this.drop(pair));
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    this.pairs.add(pair);
    if (this.mode === 'blackhole') {
      this.held.push(pair);
      return;
    }
    this.dial(pair);
  }

  private dial(pair: ProxiedPair): void {
    const upstream = net.connect(this.target);
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    // pipe() honours backpressure both ways; pause()/resume() below stop and restart it.
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    if (this.mode === 'pass') pair.client.resume();
  }

  private drop(pair: ProxiedPair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }

  /** A network partition: nothing passes until heal(). */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const pair of this.pairs) {
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** Destroys every connection with a RST and refuses new ones until heal(). */
  reset(): void {
    this.mode = 'refuse';
    for (const pair of [...this.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream?.resetAndDestroy();
      this.pairs.delete(pair);
    }
    this.held.length = 0;
  }

  heal(): void {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'pass';
    if (!wasBlackhole) return;
    for (const pair of this.pairs) {
      if (!pair.upstream) continue;
      pair.client.resume();
      pair.upstream.resume();
    }
    for (const pair of this.held.splice(0)) if (this.pairs.has(pair)) this.dial(pair);
  }

  close(): void {
    this.server.close();
    for (const pair of [...this.pairs]) this.drop(pair);
  }
}

// ---------------------------------------------------------------------- health timeline

export type ProbeResult = 'SERVING' | 'NOT_SERVING' | 'UNREACHABLE' | 'TIMEOUT' | 'UNKNOWN';

export interface Probe {
  /** e.g. "price-cache readiness" */
  name: string;
  run(): Promise<ProbeResult>;
}

export interface Sample {
  at: number;
  probe: string;
  result: ProbeResult;
}

/** A gRPC health probe (`service` "" or "liveness" = process, a service name = readiness). */
export function grpcProbe(stack: Stack, svc: ServiceName, service: string, name: string): Probe {
  return {
    name,
    run: async () => {
      if (!stack.svc(svc).isRunning()) return 'UNREACHABLE';
      try {
        const s = await stack.grpcHealth(svc, service, 2000);
        return s === 'SERVING' ? 'SERVING' : s === 'NOT_SERVING' ? 'NOT_SERVING' : 'UNKNOWN';
      } catch (err) {
        const code = (err as { code?: number }).code;
        return code === 4 ? 'TIMEOUT' : 'UNREACHABLE';
      }
    },
  };
}

/** An HTTP probe: 200 = SERVING, 503 = NOT_SERVING. */
export function httpProbe(url: string, name: string): Probe {
  return {
    name,
    run: async () => {
      const code = await httpStatus(url, 2000);
      return code === 200 ? 'SERVING' : code === 503 ? 'NOT_SERVING' : code === 0 ? 'UNREACHABLE' : 'UNKNOWN';
    },
  };
}

/** The standard probes of a stack: liveness and readiness of every service it runs. */
export function stackProbes(stack: Stack): Probe[] {
  const probes: Probe[] = [];
  for (const [name, s] of stack.services) {
    if (s.spec.grpcAddress && s.spec.grpcService) {
      probes.push(grpcProbe(stack, name, '', `${name} liveness`));
      probes.push(grpcProbe(stack, name, s.spec.grpcService, `${name} readiness`));
    } else {
      probes.push(httpProbe(s.spec.liveUrl!, `${name} liveness`));
      probes.push(httpProbe(s.spec.readyUrl!, `${name} readiness`));
    }
  }
  return probes;
}

/**
 * Samples probes every intervalMs (each probe at most one request in flight), keeping a
 * bounded timeline to check "NOT_SERVING during the outage, SERVING after, liveness
 * SERVING throughout".
 */
export class HealthTimeline {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private static readonly MAX_SAMPLES = 500_000;

  constructor(
    private readonly probes: Probe[],
    private readonly intervalMs = 150,
  ) {}

  start(): this {
    this.timer ??= setInterval(() => this.round(), this.intervalMs);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private round(): void {
    for (const p of this.probes) {
      if (this.busy.has(p.name)) continue;
      this.busy.add(p.name);
      void p
        .run()
        .catch((): ProbeResult => 'UNKNOWN')
        .then((result) => {
          this.busy.delete(p.name);
          if (this.samples.length >= HealthTimeline.MAX_SAMPLES) this.samples.shift();
          this.samples.push({ at: Date.now(), probe: p.name, result });
        });
    }
  }

  between(probe: string, from: number, to: number): Sample[] {
    return this.samples.filter((s) => s.probe === probe && s.at >= from && s.at <= to);
  }

  /** First time at or after `from` when the probe answered `result`. */
  firstAfter(probe: string, result: ProbeResult, from: number): number | undefined {
    return this.samples.find((s) => s.probe === probe && s.at >= from && s.result === result)?.at;
  }

  /** The time from which the probe answered `result` on every sample up to now (undefined if not now). */
  steadySince(probe: string, result: ProbeResult, from: number): number | undefined {
    const list = this.samples.filter((s) => s.probe === probe && s.at >= from);
    if (list.length === 0 || list[list.length - 1]!.result !== result) return undefined;
    let i = list.length - 1;
    while (i > 0 && list[i - 1]!.result === result) i--;
    return list[i]!.at;
  }

  /** Counts of each result of a probe in a window. */
  summary(probe: string, from: number, to: number): Partial<Record<ProbeResult, number>> {
    const out: Partial<Record<ProbeResult, number>> = {};
    for (const s of this.between(probe, from, to)) out[s.result] = (out[s.result] ?? 0) + 1;
    return out;
  }

  /** Compact "SERVING x12 -> NOT_SERVING x30 -> SERVING x8" of a probe in a window. */
  transitions(probe: string, from: number, to: number): string {
    const runs: Array<[ProbeResult, number]> = [];
    for (const s of this.between(probe, from, to)) {
      const last = runs[runs.length - 1];
      if (last && last[0] === s.result) last[1]++;
      else runs.push([s.result, 1]);
    }
    return runs.map(([r, n]) => `${r} x${n}`).join(' -> ') || '(no samples)';
  }
}
