// What every scenario gets: the stack, the settings of this run (full or
// quick), progress output, gRPC clients with deadlines, and `measure()`,
// which runs a scenario under CPU sampling and turns any failure into a
// "failed" result instead of ending the whole run.
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@tickmesh/kit';
import { CustomerServiceClient, PriceServiceClient } from '@tickmesh/kit/proto';
import type { Quote } from '@tickmesh/kit/proto';
import { CpuSampler, type CpuReport } from '../lib/cpu.js';
import type { ScenarioResult } from '../lib/targets.js';
import type { Stack } from '../stack.js';

export interface BenchSettings {
  ghzDurationS: number;
  /** Unrecorded ghz run before each measured one (JIT, connection set-up). */
  ghzWarmupS: number;
  streams: number;
  streamWarmupMs: number;
  streamDurationMs: number;
  /** Ticks/s fed to the BENCH-S symbols while StreamQuotes is measured. */
  streamTickRate: number;
  publishWarmupMs: number;
  publishDurationMs: number;
  seedClients: number[];
  /** The seed clients' subprotocol: tickmesh.v1.json, or tickmesh.v1.proto (the binary encoding). */
  seedSubprotocol: string;
  seedWarmupMs: number;
  seedWindowMs: number;
  fanoutClients: number;
  fanoutTickRate: number;
  /** Ticks per PublishTicks request of the fan-out feed. */
  fanoutBatch: number;
  fanoutWarmupMs: number;
  fanoutWindowMs: number;
  ingestDurationMs: number;
  ingestProducers: number;
  ingestClients: number;
  loadgenWorkers: number;
  maxPerIp: number;
  connectRate: number;
}

export const FULL: BenchSettings = {
  ghzDurationS: 10,
  ghzWarmupS: 2,
  streams: 100,
  streamWarmupMs: 3000,
  streamDurationMs: 15_000,
  streamTickRate: 1000,
  publishWarmupMs: 2000,
  publishDurationMs: 12_000,
  seedClients: [1000, 5000],
  seedSubprotocol: 'tickmesh.v1.json',
  seedWarmupMs: 5000,
  seedWindowMs: 30_000,
  fanoutClients: 1000,
  fanoutTickRate: 300,
  fanoutBatch: 1,
  fanoutWarmupMs: 3000,
  fanoutWindowMs: 20_000,
  ingestDurationMs: 30_000,
  ingestProducers: 2,
  ingestClients: 100,
  loadgenWorkers: Math.max(2, cpus().length),
  maxPerIp: 100,
  connectRate: 1000,
};

/** `make bench-quick`: every scenario once, briefly; no 5,000-client run. */
export const QUICK: BenchSettings = {
  ...FULL,
  ghzDurationS: 2,
  ghzWarmupS: 0,
  streamWarmupMs: 1500,
  streamDurationMs: 3000,
  publishWarmupMs: 500,
  publishDurationMs: 3000,
  seedClients: [1000],
  seedSubprotocol: 'tickmesh.v1.json',
  seedWarmupMs: 2000,
  seedWindowMs: 5000,
  fanoutClients: 300,
  fanoutWarmupMs: 1000,
  fanoutWindowMs: 4000,
  ingestDurationMs: 5000,
  ingestClients: 20,
};

export interface BenchContext {
  quick: boolean;
  settings: BenchSettings;
  root: string;
  ghzPath: string;
  stack: Stack;
  /** host:port of the bare grpc-js server (trivial handlers). */
  bareGrpc: string;
  barePid: number | undefined;
  runId: string;
  log: (line: string) => void;
  price: PriceServiceClient;
  customers: CustomerServiceClient;
}

export function serviceClients(stack: Stack): {
  price: PriceServiceClient;
  customers: CustomerServiceClient;
} {
  return {
    price: createClient(PriceServiceClient, stack.price, {
      unaryDeadlineMs: 5000,
      service: 'tickmesh.price.v1.PriceService',
    }),
    customers: createClient(CustomerServiceClient, stack.customers, {
      unaryDeadlineMs: 5000,
      service: 'tickmesh.customer.v1.CustomerService',
    }),
  };
}

/** Symbols outside the market that only the benchmark writes, per scenario. */
export function benchSymbols(tag: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `BENCH-${tag}${String(i).padStart(2, '0')}`);
}

export function listQuotes(
  ctx: BenchContext,
  symbols: string[] = [],
): Promise<{ quotes: Quote[]; missing: string[] }> {
  return new Promise((resolve, reject) =>
    ctx.price.listQuotes({ symbols }, (err, res) =>
      err ? reject(new Error(`ListQuotes: ${err.message}`)) : resolve(res),
    ),
  );
}

export interface Measurement {
  /** Watch one more process's CPU (load clients, bare servers). */
  watch(name: string, pid: number | undefined): void;
  log(line: string): void;
  notes: string[];
  /**
   * Runs `fn` under its own CPU sampling (details.cpuPhases[label]), so the
   * bare and the tickmesh halves of a scenario are judged apart; the
   * "tickmesh" phase decides what the scenario was limited by.
   */
  phase<T>(label: string, fn: () => Promise<T>): Promise<T>;
  /** Average CPU (% of one core) of a watched process during a finished phase. */
  cpuOf(label: string, process: string): number | undefined;
}

export type ScenarioBody = (
  m: Measurement,
) => Promise<Omit<ScenarioResult, 'id' | 'title' | 'status' | 'durationMs'>>;

/** Runs one scenario under CPU sampling; a failure becomes a failed result. */
export async function measure(
  ctx: BenchContext,
  id: string,
  title: string,
  body: ScenarioBody,
): Promise<ScenarioResult> {
  const watched: Array<[string, number | undefined]> = [
    ...ctx.stack.processes.map((p): [string, number] => [p.name, p.pid]),
    ['bare-grpc', ctx.barePid],
    ['bench-runner', process.pid],
  ];
  const sampler = new CpuSampler(cpus().length, 500);
  const active = new Set<CpuSampler>([sampler]);
  for (const [name, pid] of watched) sampler.add(name, pid);
  const phases: Record<string, CpuReport> = {};
  const notes: string[] = [];
  const m: Measurement = {
    watch: (name, pid) => {
      watched.push([name, pid]);
      for (const s of active) s.add(name, pid);
    },
    log: (line) => ctx.log(`[${id}] ${line}`),
    notes,
    phase: async (label, fn) => {
      const ps = new CpuSampler(cpus().length, 500);
      for (const [name, pid] of watched) ps.add(name, pid);
      active.add(ps);
      ps.start();
      try {
        return await fn();
      } finally {
        active.delete(ps);
        phases[label] = ps.stop();
      }
    },
    cpuOf: (label, name) => phases[label]?.processes.find((p) => p.name === name)?.avgPct,
  };
  const started = performance.now();
  ctx.log(`[${id}] ${title}`);
  sampler.start();
  let cpu: CpuReport | undefined;
  try {
    const r = await body(m);
    cpu = sampler.stop();
    const result: ScenarioResult = {
      id,
      title,
      status: 'ok',
      durationMs: Math.round(performance.now() - started),
      ...r,
      limitedBy: r.limitedBy ?? phases.tickmesh?.verdict ?? cpu.verdict,
      details: { ...r.details, cpu, cpuPhases: phases, ...(notes.length ? { notes } : {}) },
    };
    ctx.log(`[${id}] done in ${(result.durationMs / 1000).toFixed(1)} s; ${result.limitedBy}`);
    return result;
  } catch (err) {
    cpu ??= sampler.stop();
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    ctx.log(`[${id}] FAILED: ${err instanceof Error ? err.message : String(err)}`);
    return {
      id,
      title,
      status: 'failed',
      error: message,
      durationMs: Math.round(performance.now() - started),
      metrics: {},
      details: { cpu, cpuPhases: phases, ...(notes.length ? { notes } : {}) },
    };
  }
}

/**
 * Waits until the price-cache has caught up with what earlier scenarios
 * wrote (a backlog in JetStream would delay every quote of the next one):
 * the newest quote is fresh (the simulator ticks all the time) and the
 * BENCH-* symbols stopped moving. Bounded; returns what it saw.
 */
export async function settle(
  ctx: BenchContext,
  timeoutMs = 300_000,
): Promise<{ waitedMs: number; settled: boolean }> {
  const started = Date.now();
  let lastBench = -1;
  let lastLog = started;
  for (;;) {
    const { quotes } = await listQuotes(ctx);
    const now = Date.now();
    const newest = Math.max(0, ...quotes.map((q) => q.eventTimeMs));
    const bench = quotes.filter((q) => q.symbol.startsWith('BENCH-')).reduce((a, q) => a + q.seq, 0);
    const fresh = newest > 0 && now - newest < 3000;
    if (fresh && bench === lastBench) return { waitedMs: now - started, settled: true };
    if (now - started > timeoutMs) return { waitedMs: now - started, settled: false };
    if (now - lastLog >= 10_000) {
      lastLog = now;
      ctx.log(
        `waiting for the price-cache to catch up: newest quote ${((now - newest) / 1000).toFixed(1)} s old`,
      );
    }
    lastBench = bench;
    await sleep(1000);
  }
}

/** Throughput per core-second of CPU a process used (a capacity estimate robust to a shared machine). */
export function perCore(rate: number, cpuPct: number | undefined): number | undefined {
  return cpuPct && cpuPct > 1 ? rate / (cpuPct / 100) : undefined;
}

export function skipped(id: string, title: string, why: string): ScenarioResult {
  return { id, title, status: 'skipped', error: why, durationMs: 0, metrics: {} };
}

/** Drops undefined / non-finite values so the report stays valid JSON numbers. */
export function finite(metrics: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics))
    if (v !== undefined && Number.isFinite(v)) out[k] = Math.round(v * 1000) / 1000;
  return out;
}
