// ghz against each unary call, with the committed config, and the same
// config against the bare grpc-js server in the same run: every figure is
// also a ratio (rps and p99).
import { join } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { runGhz, type GhzSummary } from '../lib/ghz.js';
import { waitUntil } from '@tickmesh/harness';
import type { ScenarioResult } from '../lib/targets.js';
import { finite, measure, perCore, type BenchContext, type Measurement } from './context.js';

export interface UnaryCase {
  method: string;
  config: string;
  target: (ctx: BenchContext) => string;
  /** The process that serves it (its CPU gives the per-core figure). */
  server: (ctx: BenchContext) => string;
  /** Data known only at run time (e.g. an existing customer id). */
  prepare?: (ctx: BenchContext, m: Measurement) => Promise<unknown>;
}

async function waitForQuote(ctx: BenchContext, symbol: string): Promise<void> {
  await waitUntil(
    () =>
      new Promise<boolean>((resolve) =>
        ctx.price.getQuote({ symbol }, (err: ServiceError | null) => resolve(err === null)),
      ),
    { timeoutMs: 60_000, intervalMs: 500, what: `a quote for ${symbol}` },
  );
}

export const UNARY_CASES: UnaryCase[] = [
  {
    method: 'GetQuote',
    config: 'get-quote.json',
    target: (ctx) => ctx.stack.price,
    server: () => 'price-cache',
    prepare: async (ctx) => {
      await waitForQuote(ctx, 'THYAO');
      return undefined;
    },
  },
  {
    method: 'ListQuotes',
    config: 'list-quotes.json',
    target: (ctx) => ctx.stack.price,
    server: () => 'price-cache',
    prepare: async (ctx) => {
      await waitForQuote(ctx, 'THYAO');
      return undefined;
    },
  },
  {
    method: 'GetCustomer',
    config: 'get-customer.json',
    target: (ctx) => ctx.stack.customers,
    server: () => 'customers',
    prepare: async (ctx, m) => {
      const id = await new Promise<string>((resolve, reject) =>
        ctx.customers.createCustomer(
          {
            firstName: 'Bench',
            lastName: 'Reader',
            email: `bench-get-${ctx.runId.toLowerCase()}-${process.pid}@loadtest.invalid`,
          },
          (err, res) =>
            err ? reject(new Error(`CreateCustomer: ${err.message}`)) : resolve(res.customer!.id),
        ),
      );
      m.log(`reading customer ${id}`);
      return { id };
    },
  },
  {
    method: 'CreateCustomer',
    config: 'create-customer.json',
    target: (ctx) => ctx.stack.customers,
    server: () => 'customers',
  },
  {
    method: 'PublishTick',
    config: 'publish-tick.json',
    target: (ctx) => ctx.stack.benchIngest,
    server: (ctx) => (ctx.stack.mode === 'reused' ? 'bench-ticker' : 'ticker'),
  },
];

export function runUnary(ctx: BenchContext, c: UnaryCase): Promise<ScenarioResult> {
  return measure(ctx, `ghz-${c.method}`, `${c.method}: ghz vs bare grpc-js`, async (m) => {
    const s = ctx.settings;
    const configPath = join(ctx.root, 'tests', 'load', 'ghz', c.config);
    const data = await c.prepare?.(ctx, m);
    const run = async (target: string, label: string, durationS: number): Promise<GhzSummary> => {
      const r = await runGhz({
        ghzPath: ctx.ghzPath,
        configPath,
        target,
        durationS,
        data,
        onStart: (pid) => m.watch(`ghz (${label})`, pid),
      });
      return r;
    };
    // Bare first, then tickmesh, each after an unrecorded warm-up with the same settings.
    if (s.ghzWarmupS > 0) await run(ctx.bareGrpc, 'bare', s.ghzWarmupS);
    const bare = await m.phase('bare', () => run(ctx.bareGrpc, 'bare', s.ghzDurationS));
    m.log(`bare grpc-js: ${bare.rps.toFixed(0)} rps, p99 ${bare.p99Ms} ms`);
    if (s.ghzWarmupS > 0) await run(c.target(ctx), 'tickmesh', s.ghzWarmupS);
    const real = await m.phase('tickmesh', () => run(c.target(ctx), 'tickmesh', s.ghzDurationS));
    m.log(
      `tickmesh: ${real.rps.toFixed(0)} rps, p99 ${real.p99Ms} ms (${((real.rps / bare.rps) * 100).toFixed(0)}% of bare)`,
    );
    const errorShare = real.count ? real.errors / real.count : 1;
    if (errorShare > 0.01) {
      throw new Error(
        `${(errorShare * 100).toFixed(1)}% of calls failed: ${real.topErrors[0]?.message ?? JSON.stringify(real.statusCodes)}`,
      );
    }
    if (bare.errors > bare.count * 0.01)
      throw new Error(`the bare server failed calls: ${bare.topErrors[0]?.message}`);
    const serverCpu = m.cpuOf('tickmesh', c.server(ctx));
    const bareCpu = m.cpuOf('bare', 'bare-grpc');
    return {
      metrics: finite({
        rps: real.rps,
        p50Ms: real.p50Ms,
        p90Ms: real.p90Ms,
        p99Ms: real.p99Ms,
        calls: real.count,
        errors: real.errors,
        baselineRps: bare.rps,
        baselineP50Ms: bare.p50Ms,
        baselineP99Ms: bare.p99Ms,
        rpsRatio: real.rps / bare.rps,
        p99Ratio: bare.p99Ms > 0 ? real.p99Ms / bare.p99Ms : undefined,
        concurrency: real.concurrency,
        connections: real.connections,
        serverCpuPct: serverCpu,
        baselineCpuPct: bareCpu,
        rpsPerCore: perCore(real.rps, serverCpu),
        baselineRpsPerCore: perCore(bare.rps, bareCpu),
        rpsPerCoreRatio:
          serverCpu && bareCpu ? perCore(real.rps, serverCpu)! / perCore(bare.rps, bareCpu)! : undefined,
      }),
      comparison: { label: c.method, value: real.rps, baseline: bare.rps, unit: 'rps' },
      details: { ghz: real, ghzBaseline: bare, config: `tests/load/ghz/${c.config}` },
    };
  });
}
