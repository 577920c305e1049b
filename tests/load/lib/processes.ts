// Child processes of the benchmark (bare servers, load clients, ghz, the
// services of a private stack) with bounded waits: every start waits for a
// readiness signal with a timeout, every stop escalates SIGTERM → SIGKILL, and
// everything started is remembered so one call (or Ctrl-C) stops it all.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Append stdout+stderr here (besides the in-memory tail). */
  logFile?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  readonly exited: Promise<number | string>;
  readonly isRunning: () => boolean;
  /** The last lines of output, for error messages. */
  tail(lines?: number): string;
  /** Waits for a stdout/stderr line matching `pattern`; rejects on timeout or exit. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Calls `fn` for every later output line (progress, JSON results). Returns an unsubscribe. */
  onLine(fn: (line: string) => void): () => void;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL_LINES = 200;
const running = new Set<ManagedProcess>();

/** Node with the tsx loader, so TypeScript entry points run as they are. */
export function tsxCommand(file: string, args: string[] = []): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', file, ...args] };
}

export function startProcess(opts: StartOptions): ManagedProcess {
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported through 'error' too).
    throw new Error(`${opts.name}: could not start ${opts.command}`);
  }
  const pid = child.pid;
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  let log: WriteStream | undefined;
  if (opts.logFile) log = createWriteStream(opts.logFile, { flags: 'a' });
  let alive = true;
  let spawnError: Error | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
      alive = false;
      resolve('spawn-error');
    });
    child.on('exit', (code, signal) => {
      alive = false;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    log?.write(`${line}\n`);
    for (const l of [...listeners]) l(line);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);

  const proc: ManagedProcess = {
    name: opts.name,
    pid,
    child,
    exited,
    isRunning: () => alive,
    tail: (n = 20) => lines.slice(-n).join('\n'),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    waitForLine(pattern, timeoutMs) {
      for (const line of lines) {
        const m = line.match(pattern);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const done = (err?: Error, m?: RegExpMatchArray) => {
          clearTimeout(timer);
          off();
          if (err) reject(err);
          else resolve(m!);
        };
        const off = proc.onLine((line) => {
          const m = line.match(pattern);
          if (m) done(undefined, m);
        });
        const timer = setTimeout(
          () =>
            done(
              new Error(`${opts.name}: no line matching ${pattern} within ${timeoutMs} ms\n${proc.tail()}`),
            ),
          timeoutMs,
        );
        void exited.then((code) => {
          if (!lines.some((l) => pattern.test(l))) {
            done(
              new Error(
                `${opts.name} exited (${code}${spawnError ? `: ${spawnError.message}` : ''}) before ${pattern}\n${proc.tail()}`,
              ),
            );
          }
        });
      });
    },
    async stop(graceMs = 5000) {
      if (alive) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (alive) child.kill('SIGKILL');
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      running.delete(proc);
      log?.end();
    },
  };
  running.add(proc);
  void exited.then(() => {
    if (!alive) running.delete(proc);
  });
  return proc;
}

/** Stops every process this module started that is still running. */
export async function stopAllProcesses(graceMs = 5000): Promise<void> {
  await Promise.all([...running].map((p) => p.stop(graceMs)));
}

/** Rejects with `what` if `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True when GET `url` answers 2xx within `timeoutMs`. */
export async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Polls until `check` is true; throws after `timeoutMs` (or when `alive` says the process died). */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  opts: { intervalMs?: number; alive?: () => boolean } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (opts.alive && !opts.alive()) throw new Error(`${what}: the process exited`);
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await sleep(opts.intervalMs ?? 250);
  }
}

/** True when a TCP connect to host:port succeeds within `timeoutMs`. */
export function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** A free TCP port on 127.0.0.1 (bound then released: good enough for a private stack). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Children print one line `RESULT <json>` when done; this waits for it (and
 * for the exit), bounded by `timeoutMs`.
 */
export async function resultOf<T>(proc: ManagedProcess, timeoutMs: number): Promise<T> {
  const m = await proc.waitForLine(/^RESULT (.*)$/, timeoutMs);
  await withTimeout(proc.exited, 10_000, `${proc.name} exit after its result`).catch(() => proc.stop(1000));
  return JSON.parse(m[1]!) as T;
}

/** Prints a child's result line (the counterpart of resultOf). */
export function printResult(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** True when the module with this import.meta.url is the process's entry point. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
}
