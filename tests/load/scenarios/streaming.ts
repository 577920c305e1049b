// Streaming calls, measured by the project's counting clients (ghz counts
// calls, not messages), each against a bare grpc-js server in the same run:
//  - StreamQuotes: quote messages/s to 100 streams while a producer feeds
//    the BENCH-S symbols;
//  - PublishTicks: ticks/s acked to one producer.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StreamCountResult } from '../grpc/stream-counter.js';
import type { ProducerResult } from '../grpc/tick-producer.js';
import { withTimeout } from '@tickmesh/kit';
import { startProcess, tsxCommand, type ManagedProcess } from '@tickmesh/harness';
import type { ScenarioResult } from '../lib/targets.js';
import { benchSymbols, finite, measure, perCore, type BenchContext, type Measurement } from './context.js';

export function spawnTool(
  ctx: BenchContext,
  m: Measurement,
  name: string,
  file: string,
  args: string[],
): ManagedProcess {
  const cmd = tsxCommand(join(ctx.root, 'tests', 'load', file), args);
  // BENCH_TOOL_NODE_ARGS: extra node flags for these tools, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  cmd.args.unshift(...(process.env.BENCH_TOOL_NODE_ARGS ?? '').split(' ').filter(Boolean));
  const proc = startProcess({
    name,
    command: cmd.command,
    args: cmd.args,
    cwd: ctx.root,
    logFile: join(ctx.stack.logDir, `${name}.log`),
  });
  m.watch(name, proc.pid);
  return proc;
}

/** Waits for a tool's `RESULT <json>` line (lib/child.ts) and for its exit, bounded by `timeoutMs`. */
export async function resultOf<T>(proc: ManagedProcess, timeoutMs: number): Promise<T> {
  const m = await proc.waitForLine(/^RESULT (.*)$/, timeoutMs);
  await withTimeout(
    proc.waitExit(),
    10_000,
    `${proc.name} exit after its result: timed out after 10000 ms`,
  ).catch(() => proc.stop(1000));
  return JSON.parse(m[1]!) as T;
}

export function producerArgs(o: {
  target: string;
  producerId: string;
  symbols: string[];
  rate: number;
  durationMs: number;
  warmupMs?: number;
  batch?: number;
  window?: number;
}): string[] {
  return [
    '--target',
    o.target,
    '--producer-id',
    o.producerId,
    '--symbols',
    o.symbols.join(','),
    '--rate',
    String(o.rate),
    '--duration-ms',
    String(o.durationMs),
    '--warmup-ms',
    String(o.warmupMs ?? 0),
    '--batch',
    String(o.batch ?? 100),
    '--window',
    String(o.window ?? 10_000),
  ];
}

async function countStreams(
  ctx: BenchContext,
  m: Measurement,
  label: string,
  target: string,
  symbols: string[],
): Promise<StreamCountResult> {
  const s = ctx.settings;
  const counter = spawnTool(ctx, m, `stream-counter-${label}`, 'grpc/stream-counter.ts', [
    '--target',
    target,
    '--streams',
    String(s.streams),
    ...(symbols.length ? ['--symbols', symbols.join(',')] : ['--all']),
    '--warmup-ms',
    String(s.streamWarmupMs),
    '--duration-ms',
    String(s.streamDurationMs),
  ]);
  counter.onLine((line) => {
    if (line.startsWith('PROGRESS ')) {
      const p = JSON.parse(line.slice(9)) as { elapsedMs: number; quotes: number; open: number };
      if (Math.round(p.elapsedMs / 1000) % 5 === 0)
        m.log(`${label}: ${(p.elapsedMs / 1000).toFixed(0)} s, ${p.quotes} quotes, ${p.open} streams open`);
    }
  });
  return resultOf<StreamCountResult>(counter, s.streamWarmupMs + s.streamDurationMs + 60_000);
}

export function runStreamQuotes(ctx: BenchContext): Promise<ScenarioResult> {
  return measure(
    ctx,
    'stream-StreamQuotes',
    `StreamQuotes: quote messages/s to ${ctx.settings.streams} streams vs bare grpc-js`,
    async (m) => {
      const s = ctx.settings;
      const symbols = benchSymbols('S', 30);
      // Feed the symbols for the whole measurement (plus a head start so they exist).
      const headStartMs = 2000;
      const producer = spawnTool(
        ctx,
        m,
        'producer-streamquotes',
        'grpc/tick-producer.ts',
        producerArgs({
          target: ctx.stack.benchIngest,
          producerId: `bench-s-${ctx.runId}`,
          symbols,
          rate: s.streamTickRate,
          durationMs: headStartMs + s.streamWarmupMs + s.streamDurationMs + 3000,
          batch: 20,
        }),
      );
      await sleep(headStartMs);
      const real = await m.phase('tickmesh', () =>
        countStreams(ctx, m, 'tickmesh', ctx.stack.price, symbols),
      );
      const fed = await resultOf<ProducerResult>(producer, 90_000);
      m.log(
        `tickmesh: ${real.quotesPerSecond} quotes/s in ${real.responsesPerSecond} messages/s (${real.quotesPerResponse} per message), ${real.streamsOpenAtEnd}/${real.streams} streams open`,
      );
      if (real.streamsReady === 0) throw new Error(`no stream started: ${JSON.stringify(real.errors)}`);

      // The bare server batches as many quotes per message as tickmesh did, and sends flat out.
      const perMessage = Math.max(1, Math.round(real.quotesPerResponse || 1));
      const cmd = tsxCommand(join(ctx.root, 'tests', 'load', 'baselines', 'bare-grpc-server.ts'), [
        '--quotes-per-message',
        String(perMessage),
      ]);
      const bareServer = startProcess({
        name: 'bare-grpc-stream',
        command: cmd.command,
        args: cmd.args,
        cwd: ctx.root,
      });
      m.watch('bare-grpc-stream', bareServer.pid);
      let bare: StreamCountResult;
      try {
        const ready = await bareServer.waitForLine(/^READY (.*)$/, 30_000);
        const port = (JSON.parse(ready[1]!) as { port: number }).port;
        bare = await m.phase('bare', () => countStreams(ctx, m, 'bare', `127.0.0.1:${port}`, symbols));
      } finally {
        await bareServer.stop();
      }
      m.log(`bare grpc-js: ${bare.quotesPerSecond} quotes/s (${perMessage} per message)`);
      m.notes.push(
        `Feed: ${s.streamTickRate} ticks/s over ${symbols.length} BENCH-S symbols (offered ${s.streamTickRate * s.streams} quote deliveries/s); ${fed.acked} ticks acked.`,
        'Quotes are counted whether or not they were conflated; deliveredShare counts seqs that arrived (a conflated-away seq is missing).',
      );
      return {
        metrics: finite({
          streams: real.streams,
          streamsOpenAtEnd: real.streamsOpenAtEnd,
          quotesPerSecond: real.quotesPerSecond,
          messagesPerSecond: real.responsesPerSecond,
          quotesPerMessage: real.quotesPerResponse,
          conflatedShare: real.quotes ? real.conflatedQuotes / real.quotes : 0,
          deliveredShare: real.delivery.share,
          delayP50Ms: real.delay.p50Ms,
          delayP99Ms: real.delay.p99Ms,
          offeredTicksPerSecond: s.streamTickRate,
          baselineQuotesPerSecond: bare.quotesPerSecond,
          baselineMessagesPerSecond: bare.responsesPerSecond,
          ratio: bare.quotesPerSecond ? real.quotesPerSecond / bare.quotesPerSecond : undefined,
          serverCpuPct: m.cpuOf('tickmesh', 'price-cache'),
          baselineCpuPct: m.cpuOf('bare', 'bare-grpc-stream'),
          quotesPerCoreSecond: perCore(real.quotesPerSecond, m.cpuOf('tickmesh', 'price-cache')),
          baselineQuotesPerCoreSecond: perCore(bare.quotesPerSecond, m.cpuOf('bare', 'bare-grpc-stream')),
        }),
        comparison: {
          label: 'StreamQuotes',
          value: real.quotesPerSecond,
          baseline: bare.quotesPerSecond,
          unit: 'quotes/s',
        },
        details: { tickmesh: omitHistogram(real), bare: omitHistogram(bare), feed: omitProducerDetail(fed) },
      };
    },
  );
}

export function runPublishTicks(ctx: BenchContext): Promise<ScenarioResult> {
  return measure(
    ctx,
    'stream-PublishTicks',
    'PublishTicks: ticks/s acked to one producer vs bare grpc-js',
    async (m) => {
      const s = ctx.settings;
      const symbols = benchSymbols('P', 30);
      const run = async (label: string, target: string) => {
        const p = spawnTool(
          ctx,
          m,
          `producer-${label}`,
          'grpc/tick-producer.ts',
          producerArgs({
            target,
            producerId: `bench-p-${label}-${ctx.runId}`,
            symbols,
            rate: 0,
            durationMs: s.publishWarmupMs + s.publishDurationMs,
            warmupMs: s.publishWarmupMs,
          }),
        );
        const r = await resultOf<ProducerResult>(p, s.publishWarmupMs + s.publishDurationMs + 90_000);
        m.log(
          `${label}: ${r.ackedPerSecond} ticks/s acked (ack p99 ${r.ackLatency.p99Ms} ms), ${r.unacked} unacked, ${r.rejected} rejected`,
        );
        return r;
      };
      const bare = await m.phase('bare', () => run('bare', ctx.bareGrpc));
      const real = await m.phase('tickmesh', () => run('tickmesh', ctx.stack.benchIngest));
      if (real.acked === 0) throw new Error(`nothing acked: ${JSON.stringify(real.errors)}`);
      const ticker = ctx.stack.mode === 'reused' ? 'bench-ticker' : 'ticker';
      m.notes.push(
        'One producer process, batches of 100 ticks, at most 10,000 unacked; the bare server acks each batch as it arrives.',
      );
      return {
        metrics: finite({
          ticksPerSecond: real.ackedPerSecond,
          ackP50Ms: real.ackLatency.p50Ms,
          ackP99Ms: real.ackLatency.p99Ms,
          acked: real.acked,
          rejected: real.rejected,
          unacked: real.unacked,
          reconnects: real.reconnects,
          baselineTicksPerSecond: bare.ackedPerSecond,
          ratio: bare.ackedPerSecond ? real.ackedPerSecond / bare.ackedPerSecond : undefined,
          serverCpuPct: m.cpuOf('tickmesh', ticker),
          baselineCpuPct: m.cpuOf('bare', 'bare-grpc'),
          ticksPerCoreSecond: perCore(real.ackedPerSecond, m.cpuOf('tickmesh', ticker)),
          baselineTicksPerCoreSecond: perCore(bare.ackedPerSecond, m.cpuOf('bare', 'bare-grpc')),
        }),
        comparison: {
          label: 'PublishTicks',
          value: real.ackedPerSecond,
          baseline: bare.ackedPerSecond,
          unit: 'ticks/s',
        },
        details: { tickmesh: omitProducerDetail(real), bare: omitProducerDetail(bare) },
      };
    },
  );
}

function omitHistogram(r: StreamCountResult): Omit<StreamCountResult, 'delayHistogram'> {
  const { delayHistogram: _h, ...rest } = r;
  return rest;
}

export function omitProducerDetail(
  r: ProducerResult,
): Omit<ProducerResult, 'ackLatencyHistogram' | 'perSymbol'> {
  const { ackLatencyHistogram: _h, perSymbol: _p, ...rest } = r;
  return rest;
}
