// The multi-process WebSocket load generator: forks K workers (one per core
// by default), gives each a contiguous share of the clients (spread over
// source addresses 127.0.0.2, ...), and runs the phases
//   connect → warm-up → measure → mark → (grace) → stop
// merging the workers' counters and HDR histograms into one result.
//
//   node --import tsx tests/load/ws-loadgen/coordinator.ts --url ws://127.0.0.1:8080/ws \
//     --clients 1000 [--workers 2] [--symbols '*'] [--duration-ms 20000] [--warmup-ms 3000]
//
// Run under a raised fd limit (`ulimit -n 65536`); Node raises its own soft
// limit to the hard one, so the hard limit is what counts.
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { mergeDelivery, type DeliverySummary, type SeqCutoff } from '../lib/delivery.js';
import { mergeHistograms, summarize, encodeHistogram, type LatencySummary } from '../lib/histogram.js';
import { withTimeout } from '@tickmesh/kit';
import { isMain, printResult } from '../lib/child.js';
import { addressCount, shares } from './addresses.js';
import type { SymbolState } from './client-state.js';
import type { FromWorker, ToWorker, WorkerMark, WorkerProgress, WorkerResult } from './messages.js';

export const SUBPROTOCOL = 'tickmesh.v1.json';
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const CONTROL_TIMEOUT_MS = 120_000;

export interface WsLoadOptions {
  url: string;
  clients: number;
  workers?: number;
  subprotocol?: string;
  /** At most this many clients per source address (the gateway's MAX_CONNECTIONS_PER_IP is 200). */
  maxPerIp?: number;
  /** Default ["*"]. */
  symbols?: string[];
  /** New connections per second over all workers. */
  connectRate?: number;
  /** Handshakes in flight per worker. */
  connectConcurrency?: number;
  handshakeTimeoutMs?: number;
  /** Handshake attempts per client (default 3; a failed one is retried after 1 s, 2 s, ... with jitter). */
  connectAttempts?: number;
  /**
   * Default true: clients connect first and subscribe together once all are
   * connected, so the connect ramp is not starved by the frames of the
   * clients already subscribed (on one machine the load generator itself is
   * the first to saturate). False: each client subscribes as soon as it is open.
   */
  subscribeAfterConnect?: boolean;
  authToken?: string;
  warmupMs: number;
  /** The measured window: a fixed time, or an async action (e.g. producers running). */
  window: number | (() => Promise<void>);
  /** After the window, how long lagging clients may take to receive up to the cut-off. */
  graceMs?: number;
  /** Authoritative final seq per symbol at the end of the window (else: the highest any client saw). */
  cutoffs?: () => Promise<Record<string, SeqCutoff>>;
  /** Runs after the window (e.g. waits for the pipeline to drain). */
  afterWindow?: () => Promise<void>;
  /** Expected final state of every client; polled until all match or finalTimeoutMs. */
  expectedFinal?: () => Promise<Record<string, SymbolState>>;
  finalTimeoutMs?: number;
  onProgress?: (line: string) => void;
  /** Worker pids, as soon as they exist (CPU sampling). */
  onWorkers?: (pids: number[]) => void;
}

export interface WsLoadResult {
  clients: number;
  /** The connect phase ran out of time; the window measured the clients connected by then. */
  connectTimedOut?: boolean;
  workers: number;
  sourceAddresses: number;
  connected: number;
  subscribed: number;
  failedToConnect: number;
  /** Handshake attempts that failed, retried ones included. */
  handshakeFailures: number;
  closedEarly: number;
  openAtEnd: number;
  /** Successful connections per second during the ramp. */
  connectPerSecond: number;
  connectTime: LatencySummary;
  measuredMs: number;
  framesPerSecond: number;
  quoteFramesPerSecond: number;
  quotesPerSecond: number;
  bytesPerSecond: number;
  meanFrameBytes: number;
  quotesPerFrame: number;
  delay: LatencySummary;
  delayHistogram: string;
  delivery: DeliverySummary;
  cutoffSource: 'service' | 'clients';
  conflated: number;
  snapshots: number;
  heartbeats: number;
  resnapshots: number;
  notices: number;
  badFrames: number;
  protocolErrors: Record<string, number>;
  socketErrors: Record<string, number>;
  closeCodes: Record<string, number>;
  finalState?: { checked: boolean; mismatchedClients: number; examples: string[]; settledMs: number };
}

interface Worker {
  id: number;
  child: ChildProcess;
  progress: WorkerProgress;
  connected?: WorkerProgress;
  mark?: WorkerMark;
  final?: { matching: number; total: number };
  result?: WorkerResult;
  fatal?: string;
  exited: boolean;
  lastHeardAt: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
function addCounts(into: Record<string, number>, from: Record<string, number>): Record<string, number> {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

async function until(
  what: string,
  check: () => boolean,
  timeoutMs: number,
  workers: Worker[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const bad = workers.find((w) => w.fatal || (w.exited && !w.result));
    if (bad)
      throw new Error(
        `worker ${bad.id} ${bad.fatal ? `failed: ${bad.fatal}` : 'exited'} while waiting for ${what}`,
      );
    if (Date.now() > deadline) throw new Error(`load generator: ${what} not done within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function runWsLoad(opts: WsLoadOptions): Promise<WsLoadResult> {
  const nWorkers = Math.max(1, Math.min(opts.workers ?? cpus().length, opts.clients));
  const maxPerIp = opts.maxPerIp ?? 100;
  const connectRate = opts.connectRate ?? 1000;
  const log = opts.onProgress ?? (() => undefined);
  const workers: Worker[] = shares(opts.clients, nWorkers).map((share, id) => {
    const child = fork(WORKER, [], {
      // BENCH_WORKER_NODE_ARGS: extra node flags for the workers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean)],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const w: Worker = {
      id,
      child,
      exited: false,
      lastHeardAt: Date.now(),
      progress: {
        loopDelayMaxMs: 0,
        connected: 0,
        open: 0,
        subscribed: 0,
        failed: 0,
        closed: 0,
        frames: 0,
        quotes: 0,
      },
    };
    child.on('message', (msg: FromWorker) => {
      w.lastHeardAt = Date.now();
      if (msg.type === 'progress') w.progress = msg.progress;
      else if (msg.type === 'connected') w.connected = w.progress = msg.progress;
      else if (msg.type === 'mark') w.mark = msg.mark;
      else if (msg.type === 'final') w.final = { matching: msg.matching, total: msg.total };
      else if (msg.type === 'result') w.result = msg.result;
      else if (msg.type === 'fatal') w.fatal = msg.error;
    });
    child.on('exit', () => (w.exited = true));
    child.on('error', (err) => (w.fatal = String(err)));
    const start: ToWorker = {
      type: 'start',
      config: {
        workerId: id,
        url: opts.url,
        subprotocol: opts.subprotocol ?? SUBPROTOCOL,
        from: share.from,
        to: share.to,
        maxPerIp,
        symbols: opts.symbols ?? ['*'],
        connectRate: connectRate / nWorkers,
        connectConcurrency: opts.connectConcurrency ?? 200,
        handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
        connectAttempts: opts.connectAttempts ?? 3,
        deferSubscribe: opts.subscribeAfterConnect ?? true,
        authToken: opts.authToken,
      },
    };
    child.send(start);
    return w;
  });
  opts.onWorkers?.(workers.map((w) => w.child.pid!).filter(Boolean));
  const tell = (msg: ToWorker) => {
    for (const w of workers) if (!w.exited) w.child.send(msg);
  };
  const progressLine = () => {
    const p = workers.map((w) => w.progress);
    const lag = Math.max(...p.map((x) => x.loopDelayMaxMs));
    const silent = Math.max(...workers.map((w) => Date.now() - w.lastHeardAt));
    return (
      `connected ${sum(p.map((x) => x.connected))}/${opts.clients}, subscribed ${sum(p.map((x) => x.subscribed))}, ` +
      `handshakes failed ${sum(p.map((x) => x.failed))}, closed ${sum(p.map((x) => x.closed))}, frames ${sum(p.map((x) => x.frames))}` +
      (lag >= 500 ? `; load-generator event loop stalled ${lag} ms` : '') +
      (silent >= 5000 ? `; a worker silent for ${(silent / 1000).toFixed(0)} s` : '')
    );
  };
  const ticker = setInterval(() => log(progressLine()), 2000);
  let connectTimedOut = false;

  try {
    // Connect: bounded by the ramp time plus the handshake timeout and some slack.
    const rampMs = (opts.clients / connectRate) * 1000;
    // A loaded machine connects slower than asked: allow three times the
    // ramp, then measure with the clients that made it (the result says how
    // many; a scenario decides what too few means).
    try {
      await until(
        'connecting',
        () => workers.every((w) => w.connected),
        rampMs * 3 + (opts.handshakeTimeoutMs ?? 10_000) + 60_000,
        workers,
      );
    } catch (err) {
      const connected = sum(workers.map((w) => w.progress.connected));
      if (connected === 0 || !(err instanceof Error) || !err.message.includes('not done within')) throw err;
      log(`connect phase timed out: measuring with ${connected} of ${opts.clients} clients connected`);
      connectTimedOut = true;
    }
    tell({ type: 'subscribe' });
    // Subscriptions are answered after the open: give them until the end of the warm-up.
    const warmEnd = Date.now() + opts.warmupMs;
    while (Date.now() < warmEnd) await sleep(Math.min(200, warmEnd - Date.now()));
    log(`measuring (${progressLine()})`);

    tell({ type: 'measure' });
    if (typeof opts.window === 'number') await sleep(opts.window);
    else await opts.window();
    workers.forEach((w) => (w.mark = undefined));
    tell({ type: 'mark' });
    // A worker far behind its sockets reads control messages late (it drains
    // megabytes of socket buffers per event-loop turn): be patient, but bounded.
    await until('mark', () => workers.every((w) => w.mark || w.exited), CONTROL_TIMEOUT_MS, workers);
    await opts.afterWindow?.();

    let cutoffs: Record<string, SeqCutoff> = {};
    let cutoffSource: WsLoadResult['cutoffSource'] = 'clients';
    if (opts.cutoffs) {
      cutoffs = await withTimeout(opts.cutoffs(), 15_000, 'cut-off seqs: timed out after 15000 ms');
      cutoffSource = 'service';
    } else {
      for (const w of workers) {
        for (const [s, c] of Object.entries(w.mark?.maxSeq ?? {})) {
          const cur = cutoffs[s];
          if (!cur || c.epoch > cur.epoch || (c.epoch === cur.epoch && c.seq > cur.seq)) cutoffs[s] = c;
        }
      }
    }
    await sleep(opts.graceMs ?? 2000);

    let expectedFinal: Record<string, SymbolState> | undefined;
    let finalState: WsLoadResult['finalState'];
    if (opts.expectedFinal) {
      expectedFinal = await withTimeout(
        opts.expectedFinal(),
        15_000,
        'expected final state: timed out after 15000 ms',
      );
      const settleStart = Date.now();
      const deadline = settleStart + (opts.finalTimeoutMs ?? 15_000);
      for (;;) {
        workers.forEach((w) => (w.final = undefined));
        tell({ type: 'check-final', expected: expectedFinal });
        await until(
          'final-state check',
          () => workers.every((w) => w.final || w.exited),
          CONTROL_TIMEOUT_MS,
          workers,
        );
        const matching = sum(workers.map((w) => w.final?.matching ?? 0));
        const total = sum(workers.map((w) => w.final?.total ?? 0));
        if (matching === total || Date.now() > deadline) {
          log(`final state: ${matching}/${total} clients match the price-cache`);
          finalState = {
            checked: true,
            mismatchedClients: total - matching,
            examples: [],
            settledMs: Date.now() - settleStart,
          };
          break;
        }
        await sleep(250);
      }
    }

    tell({ type: 'stop', cutoffs, expectedFinal });
    await until('results', () => workers.every((w) => w.result || w.exited), CONTROL_TIMEOUT_MS, workers);
    const results = workers.map((w) => w.result).filter((r): r is WorkerResult => r !== undefined);
    if (results.length < workers.length) throw new Error('a load-generator worker exited without its result');
    if (finalState) {
      finalState.mismatchedClients = sum(results.map((r) => r.finalStateMismatches));
      finalState.examples = results.flatMap((r) => r.finalStateExamples).slice(0, 5);
    }
    return { ...merge(opts, results, cutoffSource, finalState, maxPerIp), connectTimedOut };
  } finally {
    clearInterval(ticker);
    for (const w of workers) if (!w.exited) w.child.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (workers.some((w) => !w.exited) && Date.now() < deadline) await sleep(50);
    for (const w of workers) if (!w.exited) w.child.kill('SIGKILL');
  }
}

function merge(
  opts: WsLoadOptions,
  results: WorkerResult[],
  cutoffSource: WsLoadResult['cutoffSource'],
  finalState: WsLoadResult['finalState'],
  maxPerIp: number,
): WsLoadResult {
  const measuredMs = Math.max(...results.map((r) => r.mark.measuredMs), 1);
  // Each worker timed its own window (a busy worker reads `measure` late): sum per-worker rates.
  const rate = (pick: (m: WorkerMark) => number) =>
    Math.round(
      sum(results.map((r) => (r.mark.measuredMs > 0 ? pick(r.mark) / (r.mark.measuredMs / 1000) : 0))),
    );
  const frames = sum(results.map((r) => r.mark.frames));
  const quoteFrames = sum(results.map((r) => r.mark.quoteFrames));
  const quotes = sum(results.map((r) => r.mark.quotes));
  const bytes = sum(results.map((r) => r.mark.bytes));
  const connected = sum(results.map((r) => r.connected));
  const connectSpan = Math.max(...results.map((r) => r.connectSpanMs), 1);
  const delay = mergeHistograms(results.map((r) => r.delayHistogram));
  const connectTimes = mergeHistograms(results.map((r) => r.connectHistogram));
  return {
    clients: opts.clients,
    workers: results.length,
    sourceAddresses: addressCount(opts.clients, maxPerIp),
    connected,
    subscribed: sum(results.map((r) => r.subscribed)),
    failedToConnect: sum(results.map((r) => r.failedToConnect)),
    handshakeFailures: sum(results.map((r) => r.handshakeFailures)),
    closedEarly: sum(results.map((r) => r.closedEarly)),
    openAtEnd: sum(results.map((r) => r.openAtEnd)),
    connectPerSecond: Math.round(connected / (connectSpan / 1000)),
    connectTime: summarize(connectTimes),
    measuredMs,
    framesPerSecond: rate((m) => m.frames),
    quoteFramesPerSecond: rate((m) => m.quoteFrames),
    quotesPerSecond: rate((m) => m.quotes),
    bytesPerSecond: rate((m) => m.bytes),
    meanFrameBytes: frames ? Math.round(bytes / frames) : 0,
    quotesPerFrame: quoteFrames ? Math.round((quotes / quoteFrames) * 100) / 100 : 0,
    delay: summarize(delay),
    delayHistogram: encodeHistogram(delay),
    delivery: mergeDelivery(results.map((r) => r.delivery)),
    cutoffSource,
    conflated: sum(results.map((r) => r.conflated)),
    snapshots: sum(results.map((r) => r.snapshots)),
    heartbeats: sum(results.map((r) => r.heartbeats)),
    resnapshots: sum(results.map((r) => r.resnapshots)),
    notices: sum(results.map((r) => r.notices)),
    badFrames: sum(results.map((r) => r.badFrames)),
    protocolErrors: results.reduce((a, r) => addCounts(a, r.protocolErrors), {}),
    socketErrors: results.reduce((a, r) => addCounts(a, r.socketErrors), {}),
    closeCodes: results.reduce((a, r) => addCounts(a, r.closeCodes), {}),
    ...(finalState ? { finalState } : {}),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:8080/ws' },
      clients: { type: 'string', default: '1000' },
      workers: { type: 'string', default: String(cpus().length) },
      'max-per-ip': { type: 'string', default: '100' },
      symbols: { type: 'string', default: '*' },
      'connect-rate': { type: 'string', default: '1000' },
      'warmup-ms': { type: 'string', default: '3000' },
      'duration-ms': { type: 'string', default: '20000' },
      'grace-ms': { type: 'string', default: '2000' },
    },
  });
  const result = await runWsLoad({
    url: values.url,
    clients: Number(values.clients),
    workers: Number(values.workers),
    maxPerIp: Number(values['max-per-ip']),
    symbols: values.symbols.split(',').filter(Boolean),
    connectRate: Number(values['connect-rate']),
    warmupMs: Number(values['warmup-ms']),
    window: Number(values['duration-ms']),
    graceMs: Number(values['grace-ms']),
    onProgress: (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
  });
  const { delayHistogram: _h, ...shown } = result;
  printResult(shown);
  process.exit(0);
}

if (isMain(import.meta.url)) void main();
