/**
 * Private NATS / Redis / MariaDB servers for integration tests.
 *
 * Every start*() call launches a NEW server process on a free loopback port with its own
 * temporary directory (under os.tmpdir()), so a test may stop, kill, pause or restart it
 * without touching anyone else's servers. nats-server is the pinned build in .tools/bin
 * (`make tools`); redis-server and mariadb-server come from the Debian packages. When a
 * binary is missing the error says how to install it.
 *
 * Layout of one instance directory (`dataDir`):
 *   server.log        stdout + stderr of every (re)start
 *   owner.json        who started it (lets a later run clean up after a crashed test process)
 *   jetstream/        NATS JetStream store
 *   db/, mysqld.sock  MariaDB data dir (copied from a per-machine template) and socket
 *
 * Clean-up: stopAll() stops everything this process started (graceful). On process exit every
 * server still running gets SIGKILL and the instance directories are removed (set
 * TICKMESH_KEEP_TEST_DATA=1 to keep them). Servers left behind by a test process that was
 * itself SIGKILLed are reaped by the next process that starts a server.
 *
 * Only node builtins are used.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

// ------------------------------------------------------------------------------- API

export interface TestServer {
  readonly port: number;
  readonly dataDir: string;
  /** Graceful stop (SIGTERM); resolves once the process has exited. No-op when not running. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once the process has exited. No-op when not running. */
  kill(): Promise<void>;
  /** (Re)start on the SAME port and data dir; resolves when the server answers. No-op when running. */
  start(): Promise<void>;
  isRunning(): boolean;

  // Extras (beyond the agreed API):
  /** pid of the running server process, undefined when stopped. */
  readonly pid: number | undefined;
  /** How the last run ended (exit code or signal), undefined before the first exit. */
  readonly lastExit: ServerExit | undefined;
  /** File with the server's stdout/stderr (all runs appended). */
  readonly logFile: string;
  /** Last lines of logFile. */
  logTail(lines?: number): string;
  /**
   * SIGSTOP: the process stays alive with its port open but answers nothing
   * (a "hung" server). Resolves once every thread of it has stopped, since the
   * signal takes effect asynchronously.
   */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
}

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** nats://127.0.0.1:PORT, JetStream enabled (unless jetstream: false) with its store in dataDir. */
export interface NatsTestServer extends TestServer {
  readonly url: string;
}

/** redis://127.0.0.1:PORT; no persistence, so start() after stop() gives an EMPTY redis. */
export interface RedisTestServer extends TestServer {
  readonly url: string;
  flushAll(): Promise<void>;
}

/**
 * MariaDB on TCP 127.0.0.1:port with `database` created and `user`/`password` granted ALL
 * PRIVILEGES ON *.* (so tests may create scratch databases too).
 */
export interface MariaDbTestServer extends TestServer {
  readonly host: string;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Unix socket of the server (extra). */
  readonly socketPath: string;
}

// --------------------------------------------------------------------------- settings

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = Number(process.env.TICKMESH_TEST_SERVER_TIMEOUT_MS ?? '') || 30_000;
const MARIADB_READY_TIMEOUT_MS = Math.max(READY_TIMEOUT_MS, 60_000);
const STOP_TIMEOUT_MS = 30_000;
const KEEP_DATA = process.env.TICKMESH_KEEP_TEST_DATA === '1';
const TMP = os.tmpdir();
const DIR_PREFIX = 'tickmesh-';
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

const MARIADB_USER = 'tickmesh';
const MARIADB_PASSWORD = 'tickmesh';
const MARIADB_DATABASE = 'tickmesh';
/** Bump when the template's contents (SQL, install options) change. */
const MARIADB_TEMPLATE_FORMAT = 1;
/** Options that shape the files on disk: identical at install time and at every start. */
const MARIADB_FILE_OPTS = ['--innodb-log-file-size=8M'];

// ---------------------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    readonly aptPackage: string,
  ) {
    super(
      `${binary} not found (searched PATH and /usr/sbin). Install it: ` +
        `apt-get install -y ${aptPackage}  (Debian/Ubuntu; as root, or with sudo)`,
    );
    this.name = 'MissingBinaryError';
  }
}

/** The pinned nats-server (deploy/versions.env) that `make tools` builds: the one deployed. */
const PINNED_NATS_SERVER = fileURLToPath(new URL('../../.tools/bin/nats-server', import.meta.url));

function natsServerBinary(): string {
  try {
    fs.accessSync(PINNED_NATS_SERVER, fs.constants.X_OK);
    return PINNED_NATS_SERVER;
  } catch {
    throw new Error(
      `${PINNED_NATS_SERVER} not found: the tests run the pinned nats-server. ` +
        'Build it with `make tools` (or bash deploy/install-tools.sh nats-server).',
    );
  }
}

const binaryCache = new Map<string, string>();

/** Absolute path of an executable, looking in PATH and the sbin directories. */
function findBinary(name: string, aptPackage: string): string {
  const cached = binaryCache.get(name);
  if (cached) return cached;
  const dirs = [
    ...(process.env.PATH ?? '').split(path.delimiter),
    '/usr/local/sbin',
    '/usr/sbin',
    '/sbin',
  ].filter((d) => d.length > 0);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) {
        binaryCache.set(name, candidate);
        return candidate;
      }
    } catch {
      // not here
    }
  }
  throw new MissingBinaryError(name, aptPackage);
}

/** Running (a zombie waiting to be reaped by its new parent counts as gone). */
function processRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return pidAlive(pid);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readTail(file: string, lines: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n')
        .trimEnd();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '(no log)';
  }
}

let mysqlIds: { uid: number; gid: number } | undefined;
/** uid/gid of the `mysql` system user (mariadbd drops to it when started as root). */
function mysqlUser(): { uid: number; gid: number } {
  if (mysqlIds) return mysqlIds;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('mysql:'));
  const parts = line?.split(':');
  if (!parts || parts.length < 4) {
    throw new Error(
      "running as root, but there is no 'mysql' system user for mariadbd to run as " +
        '(it comes with the mariadb-server package: apt-get install -y mariadb-server)',
    );
  }
  mysqlIds = { uid: Number(parts[2]), gid: Number(parts[3]) };
  return mysqlIds;
}

// --------------------------------------------------------------------------- freePort

const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    if (Number.isInteger(n) && n > 12_000) return n;
  } catch {
    // not Linux
  }
  return 32_768;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: HOST, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * Ports fetch() (undici) and browsers refuse to connect to, from the Fetch standard's "bad
 * port" list: only 10080 lies in the range freePort draws from. A stack whose gateway drew
 * it was healthy while every readiness poll failed with "bad port" (a CI flake, about one
 * run in a hundred), and Chromium would refuse its live page too.
 */
export const FETCH_REFUSED_PORTS: ReadonlySet<number> = new Set([10080]);

/**
 * A currently free TCP port on 127.0.0.1. Ports are picked at random BELOW the kernel's
 * ephemeral range, so outgoing connections never sit on a port a stopped test server wants
 * back on restart; never the same port twice within one process.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  const low = 10_000;
  for (let i = 0; i < 100; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || FETCH_REFUSED_PORTS.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  // Fall back to the kernel's choice.
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => {
        handedOut.add(addr.port);
        resolve(addr.port);
      });
    });
  });
}

// ----------------------------------------------------------------------------- probes

/**
 * Connect to 127.0.0.1:port, optionally send bytes, and feed what arrives to `judge` until it
 * returns true/false (undefined = need more bytes). Any error or the timeout counts as false.
 */
function probe(
  port: number,
  send: string | undefined,
  judge: (received: Buffer) => boolean | undefined,
  timeoutMs = 1_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.once('connect', () => {
      if (send !== undefined) sock.write(send);
    });
    sock.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const verdict = judge(received);
      if (verdict !== undefined) finish(verdict);
    });
    sock.once('error', () => finish(false));
    sock.once('close', () => finish(false));
  });
}

function firstLine(buf: Buffer): string | undefined {
  const i = buf.indexOf('\r\n');
  return i < 0 ? undefined : buf.subarray(0, i).toString('utf8');
}

/** One Redis command over a fresh connection (RESP); resolves with the first reply line. */
function redisCommand(port: number, ...args: string[]): Promise<string> {
  const payload = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis on port ${port}: no reply to ${args[0]} within 5s`));
    }, 5_000);
    sock.once('connect', () => sock.write(payload));
    sock.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const line = firstLine(received);
      if (line === undefined) return;
      clearTimeout(timer);
      sock.destroy();
      if (line.startsWith('-')) reject(new Error(`redis ${args[0]}: ${line.slice(1)}`));
      else resolve(line);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// ------------------------------------------------------------------ process registry

const allServers = new Set<ManagedServer>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const s of allServers) s.killNowSync();
    if (!KEEP_DATA) for (const s of allServers) s.removeDirSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const s of allServers) s.killNowSync();
      if (!KEEP_DATA) for (const s of allServers) s.removeDirSync();
      process.removeListener(sig, onSignal);
      // Re-raise with the default action unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Stops (gracefully, in parallel) every server this process started. */
export async function stopAll(): Promise<void> {
  await Promise.all([...allServers].map((s) => s.stop()));
}

interface OwnerRecord {
  ownerPid: number;
  keep?: boolean;
  serverPid?: number;
  comm: string;
  port: number;
}

let janitorRan = false;

/**
 * Reap instances left behind by test processes that died without their exit hook
 * (SIGKILL, OOM): kill their server if it still runs (checked by binary name and port/dir
 * in its command line) and delete the directory. Instances of live processes are untouched.
 */
async function reapOrphans(): Promise<void> {
  if (janitorRan) return;
  janitorRan = true;
  let entries: string[];
  try {
    entries = await fsp.readdir(TMP);
  } catch {
    return;
  }
  const hourAgo = Date.now() - 3_600_000;
  for (const name of entries) {
    const m = /^tickmesh-(nats|redis|mariadb)-(?!template-)[A-Za-z0-9]{6}$/.exec(name);
    const staging = /^tickmesh-mariadb-template-staging-/.test(name);
    if (!m && !staging) continue;
    const dir = path.join(TMP, name);
    try {
      const st = await fsp.stat(dir);
      if (typeof process.getuid === 'function' && st.uid !== process.getuid() && !IS_ROOT) continue;
      if (staging) {
        if (st.mtimeMs < hourAgo) await fsp.rm(dir, { recursive: true, force: true });
        continue;
      }
      let owner: OwnerRecord | undefined;
      try {
        owner = JSON.parse(await fsp.readFile(path.join(dir, 'owner.json'), 'utf8')) as OwnerRecord;
      } catch {
        owner = undefined;
      }
      if (!owner) {
        if (st.mtimeMs < hourAgo) await fsp.rm(dir, { recursive: true, force: true });
        continue;
      }
      if (owner.ownerPid === process.pid || pidAlive(owner.ownerPid)) continue;
      if (owner.serverPid && pidAlive(owner.serverPid)) {
        const comm = (await fsp.readFile(`/proc/${owner.serverPid}/comm`, 'utf8').catch(() => '')).trim();
        const cmdline = (await fsp.readFile(`/proc/${owner.serverPid}/cmdline`, 'utf8').catch(() => ''))
          .split('\0')
          .join(' ');
        if (comm === owner.comm && (cmdline.includes(dir) || cmdline.includes(`:${owner.port}`))) {
          process.kill(owner.serverPid, 'SIGKILL');
          for (let i = 0; i < 100 && processRunning(owner.serverPid); i++) await sleep(20);
        }
      }
      if (owner.keep) {
        // kept for debugging (TICKMESH_KEEP_TEST_DATA=1): the server is gone, the files stay
        await fsp.writeFile(path.join(dir, 'owner.json'), JSON.stringify({ ...owner, serverPid: undefined }));
        continue;
      }
      await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort
    }
  }
}

// ---------------------------------------------------------------------- base server

abstract class ManagedServer implements TestServer {
  port: number;
  readonly dataDir: string;
  readonly logFile: string;
  lastExit: ServerExit | undefined;

  private child: ChildProcess | undefined;
  private alive = false;
  private exited: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private paused = false;

  protected abstract readonly kind: string;
  /** Process name as in /proc/PID/comm. */
  protected abstract readonly comm: string;
  protected readyTimeoutMs = READY_TIMEOUT_MS;

  constructor(port: number, dataDir: string) {
    this.port = port;
    this.dataDir = dataDir;
    this.logFile = path.join(dataDir, 'server.log');
    allServers.add(this);
    installExitHooks();
  }

  protected abstract command(): { file: string; args: string[] };
  /** One readiness check; true when the server is ready to be used. */
  protected abstract ready(): Promise<boolean>;

  get pid(): number | undefined {
    return this.isRunning() ? this.child?.pid : undefined;
  }

  isRunning(): boolean {
    return this.alive;
  }

  logTail(lines = 30): string {
    return readTail(this.logFile, lines);
  }

  start(): Promise<void> {
    if (this.isRunning() && !this.starting) return Promise.resolve();
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private describe(): string {
    return `${this.kind} test server (port ${this.port}, dir ${this.dataDir})`;
  }

  private async doStart(): Promise<void> {
    const { file, args } = this.command();
    fs.appendFileSync(this.logFile, `\n==== ${new Date().toISOString()} start: ${file} ${args.join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(file, args, { stdio: ['ignore', fd, fd], cwd: this.dataDir });
    } finally {
      fs.closeSync(fd);
    }
    child.unref(); // a forgotten server must not keep the test process alive (the exit hook kills it)
    this.child = child;
    this.alive = child.pid !== undefined;
    this.paused = false;
    let spawnError: Error | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.alive = false;
        this.lastExit = { code, signal };
        resolve();
      });
      child.once('error', (err) => {
        spawnError = err;
        if (child.pid === undefined) {
          // never started: no 'exit' will follow
          this.alive = false;
          this.lastExit = { code: null, signal: null };
          resolve();
        }
      });
    });
    await this.writeOwner(child.pid);

    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (!this.isRunning() || spawnError) {
        child.ref();
        await this.exited;
        const how = spawnError
          ? spawnError.message
          : `exit code ${this.lastExit?.code ?? '-'}, signal ${this.lastExit?.signal ?? '-'}`;
        throw new Error(`${this.describe()} exited during start-up (${how}). Log tail:\n${this.logTail()}`);
      }
      if (await this.ready()) return;
      if (Date.now() > deadline) {
        const tail = this.logTail();
        await this.kill();
        throw new Error(
          `${this.describe()} was not ready within ${this.readyTimeoutMs} ms (killed it). Log tail:\n${tail}`,
        );
      }
      await sleep(25);
    }
  }

  private async writeOwner(serverPid: number | undefined): Promise<void> {
    const rec: OwnerRecord = { ownerPid: process.pid, comm: this.comm, port: this.port, keep: KEEP_DATA };
    if (serverPid !== undefined) rec.serverPid = serverPid;
    await fsp.writeFile(path.join(this.dataDir, 'owner.json'), JSON.stringify(rec));
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (!child || !this.isRunning()) return;
    child.ref(); // keep the event loop alive while we wait for the exit
    child.kill('SIGTERM');
    if (this.paused) this.resume(); // a stopped process only acts on SIGTERM once continued
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited!.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.isRunning()) return;
    child.ref(); // keep the event loop alive while we wait for the exit
    child.kill('SIGKILL');
    await this.exited;
    this.paused = false;
  }

  async pause(): Promise<void> {
    if (!this.isRunning()) throw new Error(`${this.describe()} is not running`);
    const pid = this.child!.pid!;
    this.child!.kill('SIGSTOP');
    this.paused = true;
    const deadline = Date.now() + 5000;
    while (!allThreadsStopped(pid)) {
      if (Date.now() > deadline) throw new Error(`${this.describe()} did not stop within 5 s of SIGSTOP`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  resume(): void {
    if (!this.isRunning()) return;
    this.child!.kill('SIGCONT');
    this.paused = false;
  }

  /** @internal exit hook */
  killNowSync(): void {
    if (this.isRunning() && this.child?.pid !== undefined) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** @internal exit hook */
  removeDirSync(): void {
    try {
      fs.rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
    } catch {
      // best effort
    }
  }

  /**
   * First start: if the port was taken between freePort() and bind, move to another port
   * (only before the server has ever run; restarts always keep the port).
   */
  async firstStart(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (err) {
        const inUse = /address already in use|error: 98/i.test(String((err as Error).message));
        if (!inUse || attempt >= 3) throw err;
        this.port = await freePort();
      }
    }
  }
}

async function makeInstanceDir(kind: string): Promise<string> {
  await reapOrphans();
  return fsp.mkdtemp(path.join(TMP, `${DIR_PREFIX}${kind}-`));
}

// ------------------------------------------------------------------------------- NATS

class NatsServer extends ManagedServer implements NatsTestServer {
  protected override readonly kind = 'nats';
  protected override readonly comm = 'nats-server';
  private readonly binary: string;

  constructor(
    port: number,
    dataDir: string,
    private readonly jetstream: boolean,
  ) {
    super(port, dataDir);
    this.binary = natsServerBinary();
  }

  get url(): string {
    return `nats://${HOST}:${this.port}`;
  }

  protected override command() {
    const args = ['-a', HOST, '-p', String(this.port), '-n', `tickmesh-test-${this.port}`];
    if (this.jetstream) args.push('-js', '-sd', this.dataDir);
    return { file: this.binary, args };
  }

  protected override ready(): Promise<boolean> {
    return probe(this.port, undefined, (buf) => {
      const line = firstLine(buf);
      if (line === undefined) return undefined;
      return line.startsWith('INFO ') && (!this.jetstream || line.includes('"jetstream":true'));
    });
  }
}

export async function startNats(opts?: { jetstream?: boolean }): Promise<NatsTestServer> {
  natsServerBinary();
  const server = new NatsServer(await freePort(), await makeInstanceDir('nats'), opts?.jetstream ?? true);
  await server.firstStart();
  return server;
}

// ------------------------------------------------------------------------------ Redis

class RedisServer extends ManagedServer implements RedisTestServer {
  protected override readonly kind = 'redis';
  protected override readonly comm = 'redis-server';
  private readonly binary: string;

  constructor(port: number, dataDir: string) {
    super(port, dataDir);
    this.binary = findBinary('redis-server', 'redis-server');
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  protected override command() {
    return {
      file: this.binary,
      // A cache by design: no RDB, no AOF, so a restart starts empty.
      args: [
        '--port',
        String(this.port),
        '--bind',
        HOST,
        '--dir',
        this.dataDir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--logfile',
        '',
      ],
    };
  }

  protected override ready(): Promise<boolean> {
    return probe(this.port, 'PING\r\n', (buf) => {
      const line = firstLine(buf);
      return line === undefined ? undefined : line === '+PONG';
    });
  }

  async flushAll(): Promise<void> {
    if (!this.isRunning()) throw new Error(`redis test server on port ${this.port} is not running`);
    await redisCommand(this.port, 'FLUSHALL');
  }
}

export async function startRedis(): Promise<RedisTestServer> {
  findBinary('redis-server', 'redis-server');
  const server = new RedisServer(await freePort(), await makeInstanceDir('redis'));
  await server.firstStart();
  return server;
}

// ---------------------------------------------------------------------------- MariaDB

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function templateSql(): string {
  const pw = sqlString(MARIADB_PASSWORD);
  const lines = [
    // mariadb-install-db bootstraps with grant tables off: load them so CREATE USER works.
    'FLUSH PRIVILEGES;',
    `CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
  ];
  // TCP logins from 127.0.0.1 match user@'localhost' unless name resolution is off: cover all.
  for (const host of ['localhost', '127.0.0.1', '%']) {
    lines.push(`CREATE USER IF NOT EXISTS '${MARIADB_USER}'@'${host}' IDENTIFIED BY ${pw};`);
    lines.push(`GRANT ALL PRIVILEGES ON *.* TO '${MARIADB_USER}'@'${host}' WITH GRANT OPTION;`);
  }
  return lines.join('\n') + '\n';
}

let mariadbVersion: Promise<string> | undefined;
function getMariadbVersion(mariadbd: string): Promise<string> {
  mariadbVersion ??= execFileP(mariadbd, ['--version']).then(({ stdout }) => {
    const m = /Ver\s+(\S+)/.exec(stdout);
    return (m?.[1] ?? 'unknown').replace(/[^A-Za-z0-9.+_-]/g, '_');
  });
  return mariadbVersion;
}

let templatePromise: Promise<string> | undefined;

/**
 * A fully initialised data dir (system tables, database, user), built once per machine, user
 * and MariaDB version under os.tmpdir(). Built in a staging dir and published with an atomic
 * rename, so concurrent test processes never see a half-built template (a loser of the race
 * just discards its copy).
 */
function mariadbTemplate(): Promise<string> {
  templatePromise ??= buildTemplate().catch((err: unknown) => {
    templatePromise = undefined;
    throw err;
  });
  return templatePromise;
}

async function buildTemplate(): Promise<string> {
  const mariadbd = findBinary('mariadbd', 'mariadb-server');
  const installDb = findBinary('mariadb-install-db', 'mariadb-server');
  const version = await getMariadbVersion(mariadbd);
  const owner = IS_ROOT ? 'mysql' : String(process.getuid?.() ?? 'user');
  const template = path.join(
    TMP,
    `${DIR_PREFIX}mariadb-template-${version}-${owner}-v${MARIADB_TEMPLATE_FORMAT}`,
  );
  const marker = path.join(template, '.tickmesh-template-ok');
  if (fs.existsSync(marker)) return template;
  if (fs.existsSync(template)) {
    // Not ours or damaged: move it out of the way (atomic), then rebuild.
    await fsp.rename(template, `${template}.broken-${process.pid}-${Date.now()}`).catch(() => undefined);
  }

  const staging = await fsp.mkdtemp(path.join(TMP, `${DIR_PREFIX}mariadb-template-staging-`));
  try {
    await fsp.chmod(staging, 0o755);
    const sqlFile = path.join(staging, 'init.sql');
    await fsp.writeFile(sqlFile, templateSql(), { mode: 0o644 });
    const dataDir = path.join(staging, 'data');
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=socket',
      '--skip-test-db',
      '--skip-name-resolve',
      `--extra-file=${sqlFile}`,
      // mariadbd would otherwise use $TMPDIR, which the mysql user may not be able to write
      `--tmpdir=${staging}`,
      ...MARIADB_FILE_OPTS,
    ];
    if (IS_ROOT) {
      const { uid, gid } = mysqlUser();
      await fsp.chown(staging, uid, gid);
      args.push('--user=mysql');
    } else {
      args.push(`--auth-root-socket-user=${os.userInfo().username}`);
    }
    try {
      await execFileP(installDb, args, { cwd: staging, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      const out = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
      throw new Error(`mariadb-install-db failed while building the test template:\n${out}`, { cause: err });
    }
    await fsp.rm(sqlFile, { force: true });
    await fsp.writeFile(path.join(staging, '.tickmesh-template-ok'), `${version}\n`);
    try {
      await fsp.rename(staging, template);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !fs.existsSync(marker)) throw err;
      // Another process published the template first: use theirs.
      await fsp.rm(staging, { recursive: true, force: true });
    }
    return template;
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

class MariaDbServer extends ManagedServer implements MariaDbTestServer {
  protected override readonly kind = 'mariadb';
  protected override readonly comm = 'mariadbd';
  protected override readyTimeoutMs = MARIADB_READY_TIMEOUT_MS;
  readonly host = HOST;
  readonly user = MARIADB_USER;
  readonly password = MARIADB_PASSWORD;
  readonly database = MARIADB_DATABASE;
  readonly socketPath: string;
  private readonly binary: string;

  constructor(port: number, dataDir: string) {
    super(port, dataDir);
    this.binary = findBinary('mariadbd', 'mariadb-server');
    const sock = path.join(dataDir, 'mysqld.sock');
    // unix socket paths are limited to 107 bytes
    this.socketPath = sock.length < 100 ? sock : path.join('/tmp', `${path.basename(dataDir)}.sock`);
  }

  protected override command() {
    const args = [
      '--no-defaults',
      `--datadir=${path.join(this.dataDir, 'db')}`,
      `--socket=${this.socketPath}`,
      `--pid-file=${path.join(this.dataDir, 'mariadbd.pid')}`,
      `--tmpdir=${this.dataDir}`,
      `--port=${this.port}`,
      `--bind-address=${HOST}`,
      '--skip-name-resolve',
      ...MARIADB_FILE_OPTS,
      '--innodb-buffer-pool-size=64M',
      // commits reach the OS at once: they survive kill(), not a machine crash (fine for tests)
      '--innodb-flush-log-at-trx-commit=2',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      '--max-connections=500',
    ];
    if (IS_ROOT) args.splice(1, 0, '--user=mysql');
    return { file: this.binary, args };
  }

  protected override ready(): Promise<boolean> {
    // The server speaks first: 3-byte length, sequence id 0, protocol version 10.
    return probe(this.port, undefined, (buf) =>
      buf.length < 5 ? undefined : buf[3] === 0 && buf[4] === 0x0a,
    );
  }
}

export async function startMariaDb(): Promise<MariaDbTestServer> {
  findBinary('mariadbd', 'mariadb-server');
  findBinary('mariadb-install-db', 'mariadb-server');
  const template = await mariadbTemplate();
  const dir = await makeInstanceDir('mariadb');
  await fsp.chmod(dir, 0o755);
  if (IS_ROOT) {
    const { uid, gid } = mysqlUser();
    await fsp.chown(dir, uid, gid);
  }
  // cp -a keeps ownership (mysql) and modes; reflinks where the filesystem can.
  await execFileP('cp', ['-a', path.join(template, 'data'), path.join(dir, 'db')]);
  const server = new MariaDbServer(await freePort(), dir);
  await server.firstStart();
  return server;
}

/** True when every thread of `pid` is in the stopped state (T) per /proc. */
function allThreadsStopped(pid: number): boolean {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
    });
  } catch {
    return false;
  }
}
