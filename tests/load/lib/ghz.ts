// ghz, the gRPC load tool users run, driven from the committed configs in
// tests/load/ghz/ (call, data, concurrency, connections, duration) with
// reflection and --insecure; its `--format json` report is parsed here.
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withTimeout } from '@tickmesh/kit';
import { describeExit, startProcess } from '@tickmesh/harness';

export interface GhzSummary {
  /** Calls made (including failed ones). */
  count: number;
  ok: number;
  errors: number;
  rps: number;
  averageMs: number;
  fastestMs: number;
  slowestMs: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  durationMs: number;
  endReason: string;
  statusCodes: Record<string, number>;
  /** The most frequent error messages (ghz groups them). */
  topErrors: Array<{ message: string; count: number }>;
  concurrency: number;
  connections: number;
}

interface GhzJson {
  count?: number;
  total?: number;
  average?: number;
  fastest?: number;
  slowest?: number;
  rps?: number;
  endReason?: string;
  errorDistribution?: Record<string, number> | null;
  statusCodeDistribution?: Record<string, number> | null;
  latencyDistribution?: Array<{ percentage: number; latency: number }> | null;
  options?: { concurrency?: number; connections?: number };
}

const nsToMs = (ns: number | undefined) => Math.round((ns ?? 0) / 1e4) / 100;

/** Parses ghz's `--format json` report (durations in nanoseconds). */
export function parseGhzReport(raw: string | unknown): GhzSummary {
  const j = (typeof raw === 'string' ? JSON.parse(raw) : raw) as GhzJson;
  if (typeof j !== 'object' || j === null || typeof j.count !== 'number' || typeof j.rps !== 'number') {
    throw new Error('not a ghz JSON report (no count/rps)');
  }
  const statusCodes = j.statusCodeDistribution ?? {};
  const ok = statusCodes.OK ?? 0;
  const pct = (p: number) => nsToMs(j.latencyDistribution?.find((d) => d.percentage === p)?.latency);
  const topErrors = Object.entries(j.errorDistribution ?? {})
    .map(([message, count]) => ({ message, count }))
    .sort((a, b) => b.count - a.count)
    .slice(0, 5);
  return {
    count: j.count,
    ok,
    errors: j.count - ok,
    rps: Math.round(j.rps * 10) / 10,
    averageMs: nsToMs(j.average),
    fastestMs: nsToMs(j.fastest),
    slowestMs: nsToMs(j.slowest),
    p50Ms: pct(50),
    p90Ms: pct(90),
    p95Ms: pct(95),
    p99Ms: pct(99),
    durationMs: nsToMs(j.total),
    endReason: j.endReason ?? '',
    statusCodes,
    topErrors,
    concurrency: j.options?.concurrency ?? 0,
    connections: j.options?.connections ?? 0,
  };
}

export interface GhzRun {
  ghzPath: string;
  /** A committed config, e.g. tests/load/ghz/get-quote.json. */
  configPath: string;
  /** host:port */
  target: string;
  /** Overrides of the config for this run (quick mode, ids known only at run time). */
  durationS?: number;
  data?: unknown;
  concurrency?: number;
  connections?: number;
  /** Lets the caller watch the process (CPU sampling). */
  onStart?: (pid: number) => void;
}

/** Runs ghz once; resolves with its parsed report. Bounded by the run's duration plus 60 s. */
export async function runGhz(run: GhzRun): Promise<GhzSummary> {
  const config = JSON.parse(await readFile(run.configPath, 'utf8')) as { duration?: string };
  const out = join(
    tmpdir(),
    `tickmesh-ghz-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.json`,
  );
  const args = ['--config', run.configPath, '--format', 'json', '--output', out];
  if (run.durationS !== undefined) args.push('--duration', `${run.durationS}s`);
  if (run.data !== undefined) args.push('--data', JSON.stringify(run.data));
  if (run.concurrency !== undefined) args.push('--concurrency', String(run.concurrency));
  if (run.connections !== undefined) args.push('--connections', String(run.connections));
  args.push(run.target);
  const seconds = run.durationS ?? parseDurationS(config.duration ?? '10s');
  const proc = startProcess({ name: `ghz ${run.configPath}`, command: run.ghzPath, args });
  if (proc.pid !== undefined) run.onStart?.(proc.pid);
  try {
    const exit = await withTimeout(
      proc.waitExit(),
      (seconds + 60) * 1000,
      `ghz ${run.configPath}: timed out after ${seconds + 60} s`,
    );
    if (exit?.code !== 0) throw new Error(`ghz exited (${describeExit(exit)}): ${proc.logTail(5)}`);
    return parseGhzReport(await readFile(out, 'utf8'));
  } finally {
    await proc.stop(1000);
    await rm(out, { force: true });
  }
}

/** "10s", "1m", "500ms" → seconds. */
export function parseDurationS(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d.trim());
  if (!m) throw new Error(`bad ghz duration ${JSON.stringify(d)}`);
  const v = Number(m[1]);
  return m[2] === 'ms' ? v / 1000 : m[2] === 's' ? v : m[2] === 'm' ? v * 60 : v * 3600;
}
