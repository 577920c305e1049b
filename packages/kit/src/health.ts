// Health with two meanings (docs/contracts.md, "Health"):
//  - "" and "liveness" speak for the process alone: SERVING while it runs.
//  - each tickmesh service name follows the dependency checks: NOT_SERVING
//    while any dependency (Redis, NATS, MySQL, an upstream) is down.
// Kubernetes liveness probes use the first, readiness the second, so an
// outage takes pods out of rotation without restarting them.
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger.js';

export const LIVENESS_NAMES = ['', 'liveness'] as const;

export interface DependencyCheck {
  /** Short name shown in /readyz and logs, e.g. "redis". */
  name: string;
  /** Resolves when the dependency answers; rejects (or times out) when it does not. */
  check(): Promise<void>;
  /** Default 2000 ms. */
  timeoutMs?: number;
}

export interface HealthReport {
  ok: boolean;
  status: ServingStatus;
  dependencies?: Record<string, { up: boolean; error?: string }>;
}

export class HealthMonitor {
  /** The grpc.health.v1.Health implementation to add to a gRPC server. */
  readonly grpc: HealthImplementation;
  private readonly state = new Map<string, { up: boolean; error?: string }>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private shuttingDown = false;
  private readonly listeners: Array<(ready: boolean) => void> = [];
  private readonly upGauge: Gauge | undefined;

  constructor(
    private readonly opts: {
      /** Service names whose status follows the checks. */
      services: string[];
      checks: DependencyCheck[];
      intervalMs: number;
      logger: Logger;
      registry?: Registry;
    },
  ) {
    const initial: Record<string, ServingStatus> = {};
    for (const name of LIVENESS_NAMES) initial[name] = 'SERVING';
    // Not ready until the first round of checks has passed.
    for (const name of opts.services) initial[name] = 'NOT_SERVING';
    this.grpc = new HealthImplementation(initial);
    for (const c of opts.checks) this.state.set(c.name, { up: false, error: 'not checked yet' });
    if (opts.registry) {
      this.upGauge = new Gauge({
        name: 'tickmesh_dependency_up',
        help: '1 when the dependency answered its last health check',
        labelNames: ['dependency'],
        registers: [opts.registry],
      });
    }
  }

  /** Runs the checks once now, then every intervalMs. */
  async start(): Promise<void> {
    this.running = true;
    await this.runChecks();
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Shutdown: every name NOT_SERVING from now on. */
  setShuttingDown(): void {
    this.shuttingDown = true;
    this.stop();
    for (const name of [...LIVENESS_NAMES, ...this.opts.services]) this.grpc.setStatus(name, 'NOT_SERVING');
    this.notify(false);
  }

  isReady(): boolean {
    return !this.shuttingDown && [...this.state.values()].every((s) => s.up);
  }

  /** Called with the new readiness whenever it changes. */
  onChange(listener: (ready: boolean) => void): void {
    this.listeners.push(listener);
  }

  liveness(): HealthReport {
    return this.shuttingDown ? { ok: false, status: 'NOT_SERVING' } : { ok: true, status: 'SERVING' };
  }

  readiness(): HealthReport {
    const ok = this.isReady();
    return { ok, status: ok ? 'SERVING' : 'NOT_SERVING', dependencies: Object.fromEntries(this.state) };
  }

  /** Runs every check once and updates the statuses. Exposed for tests. */
  async runChecks(): Promise<void> {
    const before = this.isReady();
    await Promise.all(
      this.opts.checks.map(async (c) => {
        const prev = this.state.get(c.name);
        let next: { up: boolean; error?: string };
        try {
          await withTimeout(c.check(), c.timeoutMs ?? 2000, `${c.name} check timed out`);
          next = { up: true };
        } catch (err) {
          next = { up: false, error: err instanceof Error ? err.message : String(err) };
        }
        this.state.set(c.name, next);
        this.upGauge?.set({ dependency: c.name }, next.up ? 1 : 0);
        if (prev?.up !== next.up && prev?.error !== 'not checked yet') {
          if (next.up) this.opts.logger.info({ dependency: c.name }, 'dependency is back');
          else this.opts.logger.warn({ dependency: c.name, error: next.error }, 'dependency is down');
        }
      }),
    );
    if (this.shuttingDown) return;
    const ready = this.isReady();
    for (const name of this.opts.services) this.grpc.setStatus(name, ready ? 'SERVING' : 'NOT_SERVING');
    if (ready !== before) this.notify(ready);
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.runChecks()
        .catch((err: unknown) => this.opts.logger.error({ err }, 'health checks failed'))
        .finally(() => this.schedule());
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  private notify(ready: boolean): void {
    for (const l of this.listeners) l(ready);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
