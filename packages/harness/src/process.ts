/**
 * The process manager: every child process of the tests (infrastructure servers, tickmesh
 * services, load generators, tools) runs under a ManagedProcess.
 *
 * - start() spawns it with its output appended to its log file and, when the spec has a
 *   readiness check, resolves once it passes (failing early, with the log tail, when the
 *   process exits first). restart() brings it back with the same command, ports and
 *   environment (the environment is read at every start, so a test may change it first).
 * - stop() is graceful: SIGTERM, SIGKILL after a deadline. kill() is kill -9. pause() and
 *   resume() freeze and thaw it (SIGSTOP/SIGCONT).
 * - Nothing outlives the test process, even one that was SIGKILLed (./leftovers.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { forgetRecord, installExitHooks, reapLeftovers, writeRecord } from './leftovers.js';
import { allThreadsStopped, procState, readTail } from './procfs.js';

// ------------------------------------------------------------------------------- API

export interface ProcessSpec {
  /** For messages and the tail of errors, e.g. "price-cache" or "redis test server (port 123)". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  /** Added to the test runner's environment (minus node:test's own markers); read at every start. */
  env?: Record<string, string | undefined>;
  /** stdout and stderr of every run are appended here. */
  logFile?: string;
  /**
   * Read the output line by line (waitForLine, onLine, logTail from memory), through pipes,
   * besides appending it to logFile. Otherwise the child writes straight into logFile.
   */
  lines?: boolean;
  /** One readiness check; start() polls it until it answers true. */
  ready?: () => Promise<boolean>;
  readyTimeoutMs?: number;
  readyIntervalMs?: number;
  /** What the not-ready error should say besides the process state, e.g. the last /readyz answer. */
  notReady?: () => string;
  /** Deadline of a graceful stop() before SIGKILL (default 15 s). */
  stopTimeoutMs?: number;
}

export interface ProcessExit {
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the harness asked for it (stop, kill, restart); false for a crash. */
  requested: boolean;
  /** Why it never started (spawn error). */
  error?: string;
}

const DEFAULT_READY_TIMEOUT_MS = 90_000;
const DEFAULT_STOP_TIMEOUT_MS = 15_000;
const TAIL_LINES = 200;

/** Every process the harness made, for stopAll() and the exit hook. */
const registry = new Set<ManagedProcess>();

function killAllSync(): void {
  for (const p of registry) p.killNowSync();
}

export class ManagedProcess<S extends ProcessSpec = ProcessSpec> {
  /** Every end of a run, oldest first. */
  readonly exits: ProcessExit[] = [];
  private child: ChildProcess | undefined;
  private running = false;
  private paused = false;
  private requested = false;
  private exited: Promise<ProcessExit> | undefined;
  private starting: Promise<void> | undefined;
  private record: string | undefined;
  private readonly lines: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  /** Resolves when stdout and stderr of the current run are closed (spec.lines). */
  private outputClosed: Promise<void> = Promise.resolve();

  constructor(readonly spec: S) {
    registry.add(this);
    installExitHooks(killAllSync);
  }

  get name(): string {
    return this.spec.name;
  }

  /** pid of the running process, undefined when it is not running. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get lastExit(): ProcessExit | undefined {
    return this.exits[this.exits.length - 1];
  }

  /** Exits nobody asked for (crashes). */
  get unexpectedExits(): ProcessExit[] {
    return this.exits.filter((e) => !e.requested);
  }

  isRunning(): boolean {
    return this.running;
  }

  /** Spawns the process now, without waiting for readiness (no-op when it runs). */
  launch(): void {
    if (this.running) return;
    const { command, args, cwd, logFile, lines } = this.spec;
    if (logFile)
      fs.appendFileSync(logFile, `\n==== ${new Date().toISOString()} start: ${command} ${args.join(' ')}\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.spec.env };
    delete env.NODE_TEST_CONTEXT; // node:test's marker would turn a node child into a test reporter
    let child: ChildProcess;
    if (lines || !logFile) {
      child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.readLines(child, logFile);
    } else {
      const fd = fs.openSync(logFile, 'a');
      try {
        child = spawn(command, args, { cwd, env, stdio: ['ignore', fd, fd] });
      } finally {
        fs.closeSync(fd);
      }
    }
    // A forgotten child must not keep the test process alive: the exit hook kills it.
    child.unref();
    this.child = child;
    this.running = child.pid !== undefined;
    this.paused = false;
    this.requested = false;
    this.exited = new Promise<ProcessExit>((resolve) => {
      const done = (exit: Omit<ProcessExit, 'at' | 'requested'>) => {
        if (this.child === child) {
          this.running = false;
          this.paused = false;
        }
        const record: ProcessExit = { at: Date.now(), requested: this.requested, ...exit };
        this.exits.push(record);
        forgetRecord(this.record);
        this.record = undefined;
        resolve(record);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (err) => {
        // Never started: no 'exit' follows.
        if (child.pid === undefined) done({ code: null, signal: null, error: err.message });
      });
    });
    if (child.pid !== undefined) this.record = writeRecord(this.name, child.pid);
  }

  /**
   * Spawns the process (no-op when it runs) and waits until its readiness check passes.
   * When it is not ready in time it is killed and the error says why (detail, process
   * state, log tail). Concurrent calls share one start.
   */
  start(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.running && !this.starting) return Promise.resolve();
    this.starting ??= (async () => {
      await reapLeftovers();
      this.launch();
      if (!this.spec.ready) return;
      try {
        await this.waitReady(opts.timeoutMs);
      } catch (err) {
        await this.kill();
        throw err;
      }
    })().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** Polls the readiness check until it passes; resolves with the time it took. Fails early on exit. */
  async waitReady(timeoutMs = this.spec.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS): Promise<number> {
    const ready = this.spec.ready;
    if (!ready) throw new Error(`${this.name} has no readiness check`);
    const started = Date.now();
    const deadline = started + timeoutMs;
    for (;;) {
      if (!this.running) {
        this.child?.ref();
        const exit = await this.exited;
        throw new Error(
          `${this.name} exited before it was ready (${describeExit(exit)}). Log tail:\n${this.logTail(25)}`,
        );
      }
      if (await ready().catch(() => false)) return Date.now() - started;
      if (Date.now() >= deadline) {
        const detail = this.spec.notReady?.();
        throw new Error(
          `${this.name} not ready within ${timeoutMs} ms${detail ? `; ${detail}` : ''}; ` +
            `process: ${procState(this.child?.pid)}. Log tail:\n${this.logTail(25)}`,
        );
      }
      await sleep(this.spec.readyIntervalMs ?? 100);
    }
  }

  /** Resolves when the current run ends (at once when it is not running). */
  async waitExit(): Promise<ProcessExit | undefined> {
    if (!this.running) return this.lastExit;
    this.child?.ref(); // keep the event loop alive while we wait for the exit
    return this.exited;
  }

  /** Graceful: SIGTERM, SIGKILL after timeoutMs; resolves once it is gone. No-op when not running. */
  async stop(timeoutMs = this.spec.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    // A start() still before its spawn: let it spawn, then stop what it started.
    if (this.starting && !this.running) await this.starting.catch(() => undefined);
    const child = this.child;
    if (!child || !this.running) return;
    this.requested = true;
    child.kill('SIGTERM');
    if (this.paused) this.resume(); // a stopped process only acts on SIGTERM once continued
    const timer = setTimeout(() => {
      if (this.running) child.kill('SIGKILL');
    }, timeoutMs);
    await this.waitExit();
    clearTimeout(timer);
  }

  /** kill -9; resolves once it is gone. No-op when not running. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.requested = true;
    child.kill('SIGKILL');
    await this.waitExit();
  }

  /**
   * SIGSTOP: the process stays alive, its ports open, but it answers nothing (a hung
   * process). Resolves once every thread of it has stopped (the signal acts asynchronously).
   */
  async pause(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.name} is not running`);
    this.child!.kill('SIGSTOP');
    this.paused = true;
    const deadline = Date.now() + 5000;
    while (!allThreadsStopped(pid)) {
      if (Date.now() > deadline) throw new Error(`${this.name} did not stop within 5 s of SIGSTOP`);
      await sleep(10);
    }
  }

  /** SIGCONT after pause(). */
  resume(): void {
    if (!this.running) return;
    this.child!.kill('SIGCONT');
    this.paused = false;
  }

  /** stop() (or kill() with kill: true), then start() (or only launch() with wait: false). */
  async restart(opts: { kill?: boolean; wait?: boolean } = {}): Promise<void> {
    if (opts.kill) await this.kill();
    else await this.stop();
    if (opts.wait === false) this.launch();
    else await this.start();
  }

  /** Resident set size in bytes (VmRSS), undefined when it is not running. */
  rss(): number | undefined {
    const pid = this.pid;
    if (pid === undefined) return undefined;
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** The last lines of output (of every run). */
  logTail(lines = 30): string {
    if (this.spec.lines || !this.spec.logFile) return this.lines.slice(-lines).join('\n');
    return readTail(this.spec.logFile, lines);
  }

  /** The whole log file ('' when there is none). */
  log(): string {
    if (!this.spec.logFile) return this.lines.join('\n');
    try {
      return fs.readFileSync(this.spec.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Calls `fn` for every later output line (spec.lines). Returns an unsubscribe. */
  onLine(fn: (line: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Waits for an output line matching `pattern` (spec.lines); rejects on timeout or exit. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(pattern);
      if (m) return Promise.resolve(m);
    }
    const ended = this.exited && Promise.all([this.exited, this.outputClosed]);
    return new Promise((resolve, reject) => {
      const done = (err?: Error, m?: RegExpMatchArray) => {
        clearTimeout(timer);
        off();
        if (err) reject(err);
        else resolve(m!);
      };
      const off = this.onLine((line) => {
        const m = line.match(pattern);
        if (m) done(undefined, m);
      });
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `${this.name}: no line matching ${pattern} within ${timeoutMs} ms\n${this.logTail(20)}`,
            ),
          ),
        timeoutMs,
      );
      void ended?.then(([exit]) => {
        if (!this.lines.some((l) => pattern.test(l)))
          done(
            new Error(`${this.name} exited (${describeExit(exit)}) before ${pattern}\n${this.logTail(20)}`),
          );
      });
    });
  }

  private readLines(child: ChildProcess, logFile: string | undefined): void {
    const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : undefined;
    const onLine = (line: string) => {
      this.lines.push(line);
      if (this.lines.length > TAIL_LINES) this.lines.shift();
      log?.write(`${line}\n`);
      for (const l of [...this.listeners]) l(line);
    };
    const closed = [child.stdout!, child.stderr!].map((stream) => {
      (stream as unknown as { unref?: () => void }).unref?.();
      const rl = createInterface({ input: stream }).on('line', onLine);
      return new Promise<void>((resolve) => rl.once('close', resolve));
    });
    this.outputClosed = Promise.all(closed).then(() => {
      log?.end();
    });
  }

  /** @internal exit hook: SIGKILL now, synchronously. */
  killNowSync(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    forgetRecord(this.record);
  }
}

/** Spawns a one-shot child (a load generator, a tool) now, its output read line by line. */
export function startProcess(spec: ProcessSpec): ManagedProcess {
  const proc = new ManagedProcess({ lines: true, ...spec });
  void reapLeftovers();
  proc.launch();
  return proc;
}

/** node with the tsx loader, so a TypeScript entry point runs as it is. */
export function tsxCommand(file: string, args: string[] = []): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', file, ...args] };
}

/**
 * Stops, in parallel, every process the harness started that still runs (servers,
 * services, children), each gracefully within its own deadline or within `timeoutMs`.
 */
export async function stopAll(timeoutMs?: number): Promise<void> {
  await Promise.all([...registry].map((p) => p.stop(timeoutMs)));
}

export function describeExit(exit: ProcessExit | undefined): string {
  if (!exit) return 'never ran';
  if (exit.error) return exit.error;
  return `exit code ${exit.code ?? '-'}, signal ${exit.signal ?? '-'}`;
}
