// WebSocket scenarios through the multi-process load generator:
//  - "seed": the simulator's ~100 ticks/s over 30 symbols, N clients each
//    subscribed to everything; quote delay from event time and the share of
//    ticks delivered (a conflated-away seq counts as lost);
//  - "fan-out": frames/s the gateway sends to 1,000 clients under a heavy
//    feed, against a bare `ws` server sending pre-serialized frames of the
//    same size to the same number of clients.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Quote } from '@tickmesh/kit/proto';
import type { SeqCutoff } from '../lib/delivery.js';
import { startProcess, tsxCommand } from '@tickmesh/harness';
import type { ScenarioResult } from '../lib/targets.js';
import { runWsLoad, type WsLoadOptions, type WsLoadResult } from '../ws-loadgen/coordinator.js';
import {
  benchSymbols,
  finite,
  listQuotes,
  measure,
  perCore,
  type BenchContext,
  type Measurement,
} from './context.js';
import { producerArgs, spawnTool } from './streaming.js';

export function cutoffsOf(quotes: Quote[]): Record<string, SeqCutoff> {
  return Object.fromEntries(quotes.map((q) => [q.symbol, { epoch: q.epoch, seq: q.seq }]));
}

/** Ticks applied between two ListQuotes answers (symbols whose epoch changed are left out). */
export function ticksBetween(before: Quote[], after: Quote[]): number {
  const start = new Map(before.map((q) => [q.symbol, q]));
  let n = 0;
  for (const q of after) {
    const b = start.get(q.symbol);
    if (!b) n += q.seq;
    else if (b.epoch === q.epoch) n += q.seq - b.seq;
  }
  return n;
}

function loadOptions(
  ctx: BenchContext,
  m: Measurement,
  url: string,
  clients: number,
): Omit<WsLoadOptions, 'warmupMs' | 'window'> {
  const s = ctx.settings;
  return {
    url,
    clients,
    workers: s.loadgenWorkers,
    maxPerIp: s.maxPerIp,
    symbols: ['*'],
    connectRate: s.connectRate,
    onProgress: (line) => m.log(line),
    onWorkers: (pids) => pids.forEach((pid, i) => m.watch(`ws-loadgen-${i}`, pid)),
  };
}

function wsMetrics(r: WsLoadResult): Record<string, number | undefined> {
  return {
    clients: r.clients,
    clientsConnected: r.connected,
    clientsSubscribed: r.subscribed,
    failedToConnect: r.failedToConnect,
    handshakeFailures: r.handshakeFailures,
    closedEarly: r.closedEarly,
    connectPerSecond: r.connectPerSecond,
    connectP99Ms: r.connectTime.p99Ms,
    sourceAddresses: r.sourceAddresses,
    p50Ms: r.delay.p50Ms,
    p90Ms: r.delay.p90Ms,
    p99Ms: r.delay.p99Ms,
    p999Ms: r.delay.p999Ms,
    maxMs: r.delay.maxMs,
    deliveredShare: r.delivery.share,
    worstClientDeliveredShare: r.delivery.worstClientShare,
    framesPerSecond: r.framesPerSecond,
    quotesPerSecond: r.quotesPerSecond,
    meanFrameBytes: r.meanFrameBytes,
    quotesPerFrame: r.quotesPerFrame,
    conflatedQuotes: r.conflated,
    resnapshots: r.resnapshots,
  };
}

function wsDetails(r: WsLoadResult): Record<string, unknown> {
  const { delayHistogram, ...rest } = r;
  return { ...rest, delayHistogramBase64: delayHistogram };
}

export function runSeed(ctx: BenchContext, clients: number): Promise<ScenarioResult> {
  const id = `ws-seed-${clients}`;
  return measure(
    ctx,
    id,
    `Seed: ${clients.toLocaleString('en-US')} WebSocket clients, all symbols, simulator feed`,
    async (m) => {
      const s = ctx.settings;
      let start: Quote[] = [];
      let end: Quote[] = [];
      let windowMs = 0;
      const r = await runWsLoad({
        ...loadOptions(ctx, m, ctx.stack.gatewayWs, clients),
        subprotocol: s.seedSubprotocol,
        warmupMs: s.seedWarmupMs,
        window: () =>
          m.phase('tickmesh', async () => {
            const t0 = performance.now();
            start = (await listQuotes(ctx)).quotes;
            await sleep(s.seedWindowMs);
            end = (await listQuotes(ctx)).quotes;
            windowMs = performance.now() - t0;
          }),
        // The price-cache's seq at the end of the window: every seq up to it must reach every client.
        cutoffs: async () => cutoffsOf(end),
      });
      const feedTicks = ticksBetween(start, end);
      const ticksPerSecond = feedTicks / (windowMs / 1000);
      // Strict: a client that never got going (not connected, or connected
      // after the window) missed every tick of the window.
      const missingClients = Math.max(0, clients - r.delivery.clientsMeasured);
      const expected = r.delivery.expected + missingClients * feedTicks;
      const deliveredShare = expected > 0 ? r.delivery.received / expected : 1;
      m.log(
        `${r.connected}/${clients} connected; delay p50 ${r.delay.p50Ms} ms, p99 ${r.delay.p99Ms} ms; delivered ${(deliveredShare * 100).toFixed(3)}%; ${r.framesPerSecond} frames/s; feed ${ticksPerSecond.toFixed(0)} ticks/s`,
      );
      if (r.connectTimedOut)
        m.notes.push(`The connect phase timed out: ${r.connected} of ${clients} clients were measured.`);
      if (missingClients > 0)
        m.notes.push(
          `${missingClients} clients received nothing in the window: all their ticks count as not delivered.`,
        );
      if (r.connected === 0) throw new Error(`no client connected: ${JSON.stringify(r.socketErrors)}`);
      if (r.connected < clients)
        m.notes.push(`${clients - r.connected} clients failed to connect: ${JSON.stringify(r.socketErrors)}`);
      if (r.closedEarly > 0)
        m.notes.push(
          `${r.closedEarly} clients were closed by the server during the run: close codes ${JSON.stringify(r.closeCodes)}`,
        );
      m.notes.push(
        `Feed during the window: ${ticksPerSecond.toFixed(0)} ticks/s (simulator) over ${end.length} symbols; cut-offs from ListQuotes at the end of the window.`,
        `Clients' subprotocol: ${s.seedSubprotocol}.`,
      );
      return {
        metrics: finite({
          ...wsMetrics(r),
          deliveredShare,
          deliveredShareOfMeasuredClients: r.delivery.share,
          feedTicksPerSecond: ticksPerSecond,
        }),
        details: wsDetails(r),
      };
    },
  );
}

export function runFanout(ctx: BenchContext): Promise<ScenarioResult> {
  const s = ctx.settings;
  return measure(
    ctx,
    'ws-fanout',
    `Fan-out: frames/s to ${s.fanoutClients.toLocaleString('en-US')} clients vs bare ws`,
    async (m) => {
      const clients = s.fanoutClients;
      const symbols = benchSymbols('F', 30);
      // The feed runs through both phases, so the bare server shares the
      // machine with the same ticker, NATS and price-cache load as the gateway
      // did (only the server under test differs). Each phase: connect,
      // warm-up and window, plus slack; stopped once the bare phase is done.
      const phaseMs = (clients / s.connectRate) * 1000 + 15_000 + s.fanoutWarmupMs + s.fanoutWindowMs + 5000;
      const producer = spawnTool(
        ctx,
        m,
        'producer-fanout',
        'grpc/tick-producer.ts',
        producerArgs({
          target: ctx.stack.benchIngest,
          producerId: `bench-f-${ctx.runId}`,
          symbols,
          rate: s.fanoutTickRate,
          durationMs: 2 * phaseMs + 30_000,
          batch: s.fanoutBatch,
        }),
      );
      let real: WsLoadResult;
      let bare: WsLoadResult;
      try {
        await sleep(1000);
        real = await runWsLoad({
          ...loadOptions(ctx, m, ctx.stack.gatewayWs, clients),
          warmupMs: s.fanoutWarmupMs,
          window: () => m.phase('tickmesh', () => sleep(s.fanoutWindowMs)),
        });
        m.log(
          `gateway: ${real.framesPerSecond} frames/s (${real.meanFrameBytes} B, ${real.quotesPerFrame} quotes each), ${real.quotesPerSecond} quotes/s, p99 ${real.delay.p99Ms} ms`,
        );
        if (real.framesPerSecond === 0) throw new Error('the gateway sent no frames');
        bare = await runBareWs(ctx, m, real, clients);
      } finally {
        await producer.stop(5000);
      }
      m.log(
        `bare ws: ${bare.framesPerSecond} frames/s (${bare.meanFrameBytes} B), p99 ${bare.delay.p99Ms} ms`,
      );
      m.notes.push(
        `Feed: ${s.fanoutTickRate} ticks/s in requests of ${s.fanoutBatch} over ${symbols.length} BENCH-F symbols plus the simulator, through both phases (the bare server shares the machine with the same pipeline load); clients subscribe to "*".`,
        'The gateway batches quotes per frame on an adaptive window, so it trades frames for larger frames under load; quotes/s are shown beside frames/s.',
        "The bare server sends one pre-serialized frame of the gateway's mean frame size per round to every client, as fast as its event loop allows, skipping a client whose backlog passes 256 KiB.",
      );
      const gatewayCpu = m.cpuOf('tickmesh', 'gateway');
      const bareCpu = m.cpuOf('bare', 'bare-ws');
      return {
        metrics: finite({
          clients,
          clientsConnected: real.connected,
          framesPerSecond: real.framesPerSecond,
          quotesPerSecond: real.quotesPerSecond,
          meanFrameBytes: real.meanFrameBytes,
          quotesPerFrame: real.quotesPerFrame,
          p50Ms: real.delay.p50Ms,
          p99Ms: real.delay.p99Ms,
          closedEarly: real.closedEarly,
          baselineFramesPerSecond: bare.framesPerSecond,
          baselineQuotesPerSecond: bare.quotesPerSecond,
          baselineMeanFrameBytes: bare.meanFrameBytes,
          baselineP99Ms: bare.delay.p99Ms,
          framesRatio: bare.framesPerSecond ? real.framesPerSecond / bare.framesPerSecond : undefined,
          quotesRatio: bare.quotesPerSecond ? real.quotesPerSecond / bare.quotesPerSecond : undefined,
          gatewayCpuPct: gatewayCpu,
          baselineCpuPct: bareCpu,
          framesPerCoreSecond: perCore(real.framesPerSecond, gatewayCpu),
          baselineFramesPerCoreSecond: perCore(bare.framesPerSecond, bareCpu),
          framesPerCoreRatio:
            gatewayCpu && bareCpu
              ? perCore(real.framesPerSecond, gatewayCpu)! / perCore(bare.framesPerSecond, bareCpu)!
              : undefined,
        }),
        comparison: {
          label: 'fan-out frames',
          value: real.framesPerSecond,
          baseline: bare.framesPerSecond,
          unit: 'frames/s',
        },
        details: { gateway: wsDetails(real), bare: wsDetails(bare) },
      };
    },
  );
}

/** The bare `ws` server sending frames of the gateway's mean size and quote count, flat out, to `clients` clients. */
async function runBareWs(
  ctx: BenchContext,
  m: Measurement,
  real: WsLoadResult,
  clients: number,
): Promise<WsLoadResult> {
  const s = ctx.settings;
  const cmd = tsxCommand(join(ctx.root, 'tests', 'load', 'baselines', 'bare-ws-server.ts'), [
    '--frame-bytes',
    String(real.meanFrameBytes),
    '--quotes-per-frame',
    String(Math.max(1, Math.round(real.quotesPerFrame))),
    '--rate',
    '0',
    '--expect-clients',
    String(clients),
  ]);
  const bareServer = startProcess({
    name: 'bare-ws',
    command: cmd.command,
    args: cmd.args,
    cwd: ctx.root,
    logFile: join(ctx.stack.logDir, 'bare-ws.log'),
  });
  m.watch('bare-ws', bareServer.pid);
  try {
    const ready = await bareServer.waitForLine(/^READY (.*)$/, 30_000);
    const port = (JSON.parse(ready[1]!) as { port: number }).port;
    return await runWsLoad({
      ...loadOptions(ctx, m, `ws://127.0.0.1:${port}/ws`, clients),
      warmupMs: s.fanoutWarmupMs,
      window: () => m.phase('bare', () => sleep(s.fanoutWindowMs)),
    });
  } finally {
    await bareServer.stop();
  }
}
