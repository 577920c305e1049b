// End-to-end ingest: producers → ticker → JetStream → price-cache → Redis →
// gateway → WebSocket clients, at the highest rate the producers get acked.
// Figures: ticks/s acked and applied, apply lag over time, and the loss
// check: for every BENCH-E symbol, the ticks its producer was told were
// stored are applied exactly once (seq advanced by exactly that count;
// volume and trades by their sum and count on the same trading day; last =
// price of the producer's last acked tick), and every client's final state
// equals the price-cache's (read from Redis by ListQuotes).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Quote } from '@tickmesh/kit/proto';
import type { ProducerResult, SymbolTally } from '../grpc/tick-producer.js';
import type { ScenarioResult } from '../lib/targets.js';
import { runWsLoad } from '../ws-loadgen/coordinator.js';
import type { SymbolState } from '../ws-loadgen/client-state.js';
import { benchSymbols, finite, listQuotes, measure, type BenchContext } from './context.js';
import { omitProducerDetail, producerArgs, resultOf, spawnTool } from './streaming.js';
import { cutoffsOf } from './websocket.js';

export interface SymbolCheck {
  symbol: string;
  acked: number;
  applied: number;
  problems: string[];
}

interface Base {
  seq: number;
  epoch: number;
  volume: number;
  trades: number;
  sessionDate: string;
}

/** Compares what producers were acked with what the price-cache holds, per symbol. */
export function checkApplied(
  before: Map<string, Base>,
  after: Quote[],
  acked: Record<string, SymbolTally>,
): SymbolCheck[] {
  const now = new Map(after.map((q) => [q.symbol, q]));
  return Object.entries(acked).map(([symbol, want]) => {
    const b = before.get(symbol) ?? { seq: 0, epoch: 0, volume: 0, trades: 0, sessionDate: '' };
    const q = now.get(symbol);
    const problems: string[] = [];
    if (!q) {
      if (want.count > 0) problems.push(`no quote, ${want.count} ticks acked`);
      return { symbol, acked: want.count, applied: 0, problems };
    }
    const applied = q.seq - b.seq;
    if (applied !== want.count) problems.push(`seq advanced by ${applied}, ${want.count} ticks acked`);
    if (b.epoch !== 0 && q.epoch !== b.epoch)
      problems.push(`epoch changed ${b.epoch} → ${q.epoch} during the run`);
    const sameDay = b.sessionDate === '' || b.sessionDate === q.sessionDate;
    if (sameDay) {
      if (q.volume - b.volume !== want.volume)
        problems.push(`volume advanced by ${q.volume - b.volume}, acked ${want.volume}`);
      if (q.trades - b.trades !== want.count)
        problems.push(`trades advanced by ${q.trades - b.trades}, acked ${want.count}`);
    }
    if (want.count > 0 && q.last !== want.lastPrice)
      problems.push(`last ${q.last}, last acked price ${want.lastPrice}`);
    return { symbol, acked: want.count, applied, problems };
  });
}

/**
 * Ticks applied per second while the producers were sending: from the last
 * sample before the first ack to the last sample within the sending time
 * after it (producer start-up is not counted; the drain after it is not either).
 */
export function appliedRate(
  series: Array<{ tMs: number; acked: number; applied: number }>,
  sendingMs: number,
): number {
  const first = series.findIndex((x) => x.acked > 0);
  if (first < 0) return 0;
  const start = series[Math.max(0, first - 1)]!;
  let end = start;
  for (const x of series) if (x.tMs > start.tMs && x.tMs <= start.tMs + sendingMs) end = x;
  return end.tMs > start.tMs ? (end.applied - start.applied) / ((end.tMs - start.tMs) / 1000) : 0;
}

export function runIngest(ctx: BenchContext): Promise<ScenarioResult> {
  const s = ctx.settings;
  return measure(
    ctx,
    'e2e-ingest',
    `End-to-end ingest: ${s.ingestProducers} producers → … → ${s.ingestClients} WebSocket clients, loss check`,
    async (m) => {
      const symbols = benchSymbols('E', 32);
      const initial = await listQuotes(ctx, symbols);
      const before = new Map<string, Base>(
        initial.quotes.map((q) => [
          q.symbol,
          { seq: q.seq, epoch: q.epoch, volume: q.volume, trades: q.trades, sessionDate: q.sessionDate },
        ]),
      );
      const shares = Array.from({ length: s.ingestProducers }, (_, p) =>
        symbols.filter((_, i) => i % s.ingestProducers === p),
      );
      const acked = new Array<number>(s.ingestProducers).fill(0);
      const series: Array<{
        tMs: number;
        acked: number;
        applied: number;
        backlog: number;
        applyLagMs: number;
        freshnessMs: number;
      }> = [];
      let results: ProducerResult[] = [];
      let drainMs = 0;
      const applied = (quotes: Quote[]) =>
        quotes.reduce((n, q) => n + (q.seq - (before.get(q.symbol)?.seq ?? 0)), 0);

      const load = await runWsLoad({
        url: ctx.stack.gatewayWs,
        clients: s.ingestClients,
        workers: Math.min(2, s.loadgenWorkers),
        maxPerIp: s.maxPerIp,
        symbols,
        connectRate: s.connectRate,
        warmupMs: 1000,
        onProgress: (line) => m.log(line),
        onWorkers: (pids) => pids.forEach((pid, i) => m.watch(`ws-loadgen-${i}`, pid)),
        window: () =>
          m.phase('tickmesh', async () => {
            const procs = shares.map((share, p) => {
              const proc = spawnTool(
                ctx,
                m,
                `producer-ingest-${p}`,
                'grpc/tick-producer.ts',
                producerArgs({
                  target: ctx.stack.benchIngest,
                  producerId: `bench-e${p}-${ctx.runId}`,
                  symbols: share,
                  rate: 0,
                  durationMs: s.ingestDurationMs,
                }),
              );
              proc.onLine((line) => {
                if (line.startsWith('PROGRESS '))
                  acked[p] = (JSON.parse(line.slice(9)) as { acked: number }).acked;
              });
              return proc;
            });
            const t0 = performance.now();
            // Only this run's ticks count: a quote left from before (a rebuild
            // replayed it, say) has an old event time and a new applied time.
            const startedWallMs = Date.now() - 1000;
            // Lag over time, while the producers run and until they finish.
            const done = Promise.all(
              procs.map((p) => resultOf<ProducerResult>(p, s.ingestDurationMs + 120_000)),
            );
            let finished = false;
            void done.then(
              () => (finished = true),
              () => (finished = true),
            );
            let lastLog = 0;
            while (!finished) {
              const tMs = performance.now() - t0;
              const quotes = (await listQuotes(ctx, symbols)).quotes;
              const now = Date.now();
              const ap = applied(quotes);
              const ak = acked.reduce((a, b) => a + b, 0);
              const newest = Math.max(0, ...quotes.map((q) => q.eventTimeMs));
              series.push({
                tMs: Math.round(tMs),
                acked: ak,
                applied: ap,
                backlog: Math.max(0, ak - ap),
                applyLagMs: Math.max(
                  0,
                  ...quotes
                    .filter((q) => q.eventTimeMs >= startedWallMs)
                    .map((q) => q.appliedTimeMs - q.eventTimeMs),
                ),
                freshnessMs: newest ? now - newest : 0,
              });
              if (tMs - lastLog >= 5000) {
                lastLog = tMs;
                m.log(
                  `${(tMs / 1000).toFixed(0)} s: ${ak} acked, ${ap} applied, backlog ${Math.max(0, ak - ap)}`,
                );
              }
              await sleep(500);
            }
            results = await done;
          }),
        afterWindow: async () => {
          // Drain: wait until the price-cache applied everything acked, as
          // long as it makes progress (a stall of 30 s ends the wait; so do 10 minutes).
          const want = results.reduce((a, r) => a + r.acked, 0);
          const started = Date.now();
          let last = -1;
          let progressAt = Date.now();
          let logAt = Date.now();
          for (;;) {
            const now = applied((await listQuotes(ctx, symbols)).quotes);
            if (now >= want || Date.now() - started > 600_000) break;
            if (now > last) {
              last = now;
              progressAt = Date.now();
            } else if (Date.now() - progressAt > 30_000) {
              m.log(`the price-cache stopped applying at ${now} of ${want} acked ticks`);
              break;
            }
            if (Date.now() - logAt >= 10_000) {
              logAt = Date.now();
              m.log(`draining: ${now} of ${want} acked ticks applied`);
            }
            await sleep(250);
          }
          drainMs = Date.now() - started;
        },
        cutoffs: async () => cutoffsOf((await listQuotes(ctx, symbols)).quotes),
        expectedFinal: async () => {
          const out: Record<string, SymbolState> = {};
          for (const q of (await listQuotes(ctx, symbols)).quotes)
            out[q.symbol] = { epoch: q.epoch, seq: q.seq, last: q.last, volume: q.volume };
          return out;
        },
        finalTimeoutMs: 20_000,
      });

      const final = (await listQuotes(ctx, symbols)).quotes;
      const ackedPerSymbol: Record<string, SymbolTally> = Object.assign(
        {},
        ...results.map((r) => r.perSymbol),
      );
      const checks = checkApplied(before, final, ackedPerSymbol);
      const bad = checks.filter((c) => c.problems.length > 0);
      const ticksAcked = results.reduce((a, r) => a + r.acked, 0);
      const ticksApplied = checks.reduce((a, c) => a + c.applied, 0);
      const countDiff = checks.reduce((a, c) => a + Math.abs(c.applied - c.acked), 0);
      const unacked = results.reduce((a, r) => a + r.unacked, 0);
      const ackedPerSecond = results.reduce((a, r) => a + r.ackedPerSecond, 0);
      const appliedPerSecond = appliedRate(series, s.ingestDurationMs);
      const clientsMismatched = load.finalState?.mismatchedClients ?? 0;
      m.log(
        `${ticksAcked} acked (${ackedPerSecond} ticks/s), ${ticksApplied} applied (${appliedPerSecond.toFixed(0)} ticks/s in the window); ${bad.length} symbols off; ${clientsMismatched}/${load.connected} clients off`,
      );
      for (const c of bad.slice(0, 5)) m.notes.push(`${c.symbol}: ${c.problems.join('; ')}`);
      for (const e of load.finalState?.examples ?? []) m.notes.push(`client mismatch: ${e}`);
      if (unacked > 0)
        m.notes.push(
          `${unacked} ticks were sent but never acked (not counted as acked; they may or may not be stored).`,
        );
      m.notes.push(
        `${s.ingestProducers} producer processes (batches of 100, ≤10,000 unacked each) over ${symbols.length} BENCH-E symbols for ${s.ingestDurationMs / 1000} s; ticks/s = the lower of acked/s and applied/s in that window.`,
        'Final state is read through ListQuotes, which the price-cache serves from Redis.',
      );
      const maxLag = Math.max(0, ...series.map((x) => x.applyLagMs));
      return {
        metrics: finite({
          ticksPerSecond: Math.min(ackedPerSecond, appliedPerSecond),
          ackedPerSecond,
          appliedPerSecond,
          ticksAcked,
          ticksApplied,
          ticksRejected: results.reduce((a, r) => a + r.rejected, 0),
          ticksUnacked: unacked,
          symbolsMismatched: bad.length,
          clientsMismatched,
          clientsConnected: load.connected,
          lossOrDuplicates: countDiff + bad.length + clientsMismatched,
          maxLagMs: maxLag,
          maxBacklog: Math.max(0, ...series.map((x) => x.backlog)),
          drainMs,
          clientP50Ms: load.delay.p50Ms,
          clientP99Ms: load.delay.p99Ms,
          ackP99Ms: Math.max(0, ...results.map((r) => r.ackLatency.p99Ms)),
        }),
        details: {
          lagSeries: series,
          producers: results.map(omitProducerDetail),
          symbolChecks: checks,
          clients: {
            connected: load.connected,
            closedEarly: load.closedEarly,
            closeCodes: load.closeCodes,
            finalState: load.finalState,
            delay: load.delay,
          },
        },
      };
    },
  );
}
