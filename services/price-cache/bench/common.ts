// Shared by the price-cache benchmarks: private NATS/Redis servers, the tick
// stream, a price-cache process, and small helpers. Each benchmark starts
// what it needs on free ports and stops it at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  freePort,
  startNats,
  startRedis,
  stopAll,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import { projectRoot } from '@tickmesh/kit';

export { freePort, sleep };

export interface Infra {
  nats: NatsTestServer;
  redis: RedisTestServer;
  stop(): Promise<void>;
}

export async function startInfra(): Promise<Infra> {
  const nats = await startNats();
  const redis = await startRedis();
  return { nats, redis, stop: () => stopAll() };
}

/** Runs a TypeScript entry point of the project as a child process (tsx). */
export function runTs(
  entry: string,
  env: Record<string, string>,
  opts: { stdout?: 'pipe' | 'ignore'; args?: string[] } = {},
): ChildProcess {
  // BENCH_NODE_ARGS: extra node flags for the child, e.g. --cpu-prof to profile it.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', entry, ...(opts.args ?? [])], {
    cwd: projectRoot(),
    env: { ...process.env, ...env },
    stdio: ['ignore', opts.stdout ?? 'ignore', 'inherit'],
  });
  return child;
}

export async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

/** Environment of a price-cache process for a benchmark. */
export function priceCacheEnv(
  infra: Infra,
  grpcPort: number,
  metricsPort: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(grpcPort),
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

export async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  let found = false;
  for (const l of text.split('\n')) {
    if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) {
      sum += Number(l.split(' ').at(-1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

export async function waitUntil(
  fn: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
