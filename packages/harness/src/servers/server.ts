// What the private infrastructure servers share: one ManagedProcess each, in its own
// instance directory, on a free port it keeps across restarts.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort, LOOPBACK } from '../ports.js';
import { makeInstanceDir } from '../leftovers.js';
import { ManagedProcess, type ProcessExit } from '../process.js';

export interface TestServer {
  readonly port: number;
  /** The instance directory: data, server.log. */
  readonly dataDir: string;
  /** Graceful stop (SIGTERM, SIGKILL after 30 s); resolves once the process has exited. No-op when not running. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once the process has exited. No-op when not running. */
  kill(): Promise<void>;
  /** (Re)start on the SAME port and data dir; resolves when the server answers. No-op when running. */
  start(): Promise<void>;
  isRunning(): boolean;
  /** pid of the running server process, undefined when stopped. */
  readonly pid: number | undefined;
  /** How the last run ended, undefined before the first exit. */
  readonly lastExit: ProcessExit | undefined;
  /** File with the server's stdout/stderr (all runs appended). */
  readonly logFile: string;
  /** Last lines of logFile. */
  logTail(lines?: number): string;
  /**
   * SIGSTOP: the process stays alive with its port open but answers nothing (a "hung"
   * server). Resolves once every thread of it has stopped.
   */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
}

const READY_TIMEOUT_MS = Number(process.env.TICKMESH_TEST_SERVER_TIMEOUT_MS ?? '') || 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** The base of NatsServer, RedisServer and MariaDbServer. */
export abstract class ManagedServer implements TestServer {
  readonly logFile: string;
  private readonly proc: ManagedProcess;

  constructor(
    protected readonly kind: string,
    public port: number,
    readonly dataDir: string,
    readyTimeoutMs = READY_TIMEOUT_MS,
  ) {
    this.logFile = path.join(dataDir, 'server.log');
    this.proc = new ManagedProcess({
      name: kind,
      command: '',
      args: [],
      cwd: dataDir,
      logFile: this.logFile,
      ready: () => this.ready(),
      readyTimeoutMs,
      readyIntervalMs: 25,
      stopTimeoutMs: STOP_TIMEOUT_MS,
    });
  }

  protected abstract command(): { file: string; args: string[] };
  /** One readiness check; true when the server is ready to be used. */
  protected abstract ready(): Promise<boolean>;

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get lastExit(): ProcessExit | undefined {
    return this.proc.lastExit;
  }

  isRunning(): boolean {
    return this.proc.isRunning();
  }

  logTail(lines = 30): string {
    return this.proc.logTail(lines);
  }

  start(): Promise<void> {
    const { file, args } = this.command();
    Object.assign(this.proc.spec, {
      name: `${this.kind} test server (port ${this.port}, dir ${this.dataDir})`,
      command: file,
      args,
    });
    return this.proc.start();
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }

  kill(): Promise<void> {
    return this.proc.kill();
  }

  pause(): Promise<void> {
    return this.proc.pause();
  }

  resume(): void {
    this.proc.resume();
  }

  /**
   * First start: if the port was taken between freePort() and bind, move to another port
   * (only before the server has ever run; restarts always keep the port).
   */
  async firstStart(): Promise<this> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return this;
      } catch (err) {
        const inUse = /address already in use|error: 98/i.test(String((err as Error).message));
        if (!inUse || attempt >= 3) throw err;
        this.port = await freePort();
      }
    }
  }
}

/** A new instance directory for a server of this kind, and a free port for it. */
export async function newInstance(kind: string): Promise<{ port: number; dir: string }> {
  return { dir: await makeInstanceDir(kind), port: await freePort() };
}

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

const binaryCache = new Map<string, string>();

/** Absolute path of an executable, looking in PATH and the sbin directories. */
export function findBinary(name: string, aptPackage: string): string {
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

/**
 * Connect to 127.0.0.1:port and feed what the server sends first to `judge` until it returns
 * true/false (undefined = need more bytes). Any error or the timeout counts as false.
 */
export function greets(
  port: number,
  judge: (received: Buffer) => boolean | undefined,
  timeoutMs = 1_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: LOOPBACK, port });
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
    sock.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const verdict = judge(received);
      if (verdict !== undefined) finish(verdict);
    });
    sock.once('error', () => finish(false));
    sock.once('close', () => finish(false));
  });
}
