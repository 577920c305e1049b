// One load-generator worker process (forked by coordinator.ts): opens its
// share of WebSocket clients, each bound to its source address, paced by a
// connect rate and a cap on handshakes in flight; feeds every frame to the
// client's ClientState; answers the coordinator's measure / mark / stop.
// A client whose handshake fails tries again after a pause, like a real
// client following docs/websocket-protocol.md (connectAttempts in all); the
// failed handshakes are reported beside the clients that never connected.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { LeanWebSocket, type LeanSocketEvents } from './lean-socket.js';
import { summarizeDelivery, type SeqCutoff, type Tally } from '../lib/delivery.js';
import { encodeHistogram, newLatencyHistogram } from '../lib/histogram.js';
import { sourceAddress } from './addresses.js';
import { ClientState, WorkerStats } from './client-state.js';
import { FrameDecoder } from './frame-decoder.js';
import { clientMessageOf } from '../../../services/gateway/src/proto-codec.js';
import type { FromWorker, ToWorker, WorkerConfig, WorkerMark, WorkerProgress } from './messages.js';

/** What a load client needs from its connection (lean-socket.ts, or ws with BENCH_WS_CLIENT=ws). */
interface ClientSocket {
  send(data: string | Uint8Array): void;
  close(code: number, reason: string): void;
  terminate(): void;
}

/**
 * The lean client by default; BENCH_WS_CLIENT=ws runs the same clients on the
 * `ws` package, to compare what the client itself costs (docs/performance.md).
 */
function openSocket(cfg: WorkerConfig, index: number, on: LeanSocketEvents): ClientSocket {
  const localAddress = sourceAddress(index, cfg.maxPerIp);
  const maxPayload = 64 * 1024 * 1024;
  if (process.env.BENCH_WS_CLIENT !== 'ws')
    return new LeanWebSocket(
      cfg.url,
      { protocols: [cfg.subprotocol], localAddress, handshakeTimeoutMs: cfg.handshakeTimeoutMs, maxPayload },
      on,
    );
  const ws = new WebSocket(cfg.url, [cfg.subprotocol], {
    localAddress,
    perMessageDeflate: false,
    handshakeTimeout: cfg.handshakeTimeoutMs,
    maxPayload,
  });
  ws.on('open', on.open);
  ws.on('message', on.message);
  ws.on('error', on.error);
  ws.on('close', on.close);
  return ws;
}

interface Client {
  ws: ClientSocket;
  state: ClientState;
  opened: boolean;
  closed: boolean;
  /** Open (and authenticated, with a token) and waiting for the coordinator's go to subscribe. */
  readyToSubscribe?: () => void;
}

/** With deferSubscribe, clients subscribe only once the coordinator says so (all connected). */
let subscribeReleased = false;

const SUBSCRIBE_ID = '1';
const AUTH_ID = 'auth';
/** The binary encoding of the protocol (protobuf frames), chosen by the subprotocol. */
const PROTO_SUBPROTOCOL = 'tickmesh.v1.proto';

/** An op as the connection's encoding wants it (ids are strings in both). */
function encodeOp(
  binary: boolean,
  op: { op: 'auth' | 'subscribe'; id: string; token?: string; symbols?: string[] },
): string | Uint8Array {
  return binary ? clientMessageOf(op) : JSON.stringify(op);
}

const stats = new WorkerStats();
/** One for all clients of this worker: they receive the same frames. */
const decoder = new FrameDecoder();
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
const clients: Client[] = [];
const connectTimes = newLatencyHistogram();
const closeCodes: Record<string, number> = {};
const socketErrors: Record<string, number> = {};
let config: WorkerConfig | undefined;
let connected = 0;
/** Clients that never connected, after all their attempts. */
let failed = 0;
/** Handshake attempts that failed (a client retried counts once per failure). */
let handshakeFailures = 0;
let closedEarly = 0;
let inFlight = 0;
let stopping = false;
let firstAttemptAt = 0;
let lastOpenAt = 0;
let measureStartedAt = 0;
/** Date.now() minus (timeOrigin + performance.now()), so delays use the wall clock with sub-ms resolution. */
let clockOffsetMs = 0;

const send = (msg: FromWorker) => process.send?.(msg);
const bump = (map: Record<string, number>, key: string) => (map[key] = (map[key] ?? 0) + 1);
const nowUs = () => (performance.timeOrigin + performance.now() + clockOffsetMs) * 1000;

function calibrateClock(): void {
  // Date.now() ticks in whole ms: take the offset right after a tick.
  const start = Date.now();
  while (Date.now() === start) {
    /* spins < 1 ms */
  }
  clockOffsetMs = Date.now() - (performance.timeOrigin + performance.now());
}

function progress(): WorkerProgress {
  // The worst event-loop stall since the last report: a load client that is
  // itself behind measures its own lag, not the server's.
  const loopDelayMaxMs = Math.round(loopDelay.max / 1e6);
  loopDelay.reset();
  return {
    loopDelayMaxMs,
    connected,
    open: clients.filter((c) => c.opened && !c.closed).length,
    subscribed: clients.filter((c) => c.state.subscribed).length,
    failed: handshakeFailures,
    closed: closedEarly,
    frames: stats.frames,
    quotes: stats.quotes,
  };
}

/** Resolves true once the socket is open, false when the handshake failed. */
function openClient(cfg: WorkerConfig, index: number): Promise<boolean> {
  return new Promise((resolve) => {
    const started = performance.now();
    const binary = cfg.subprotocol === PROTO_SUBPROTOCOL;
    const sendSubscribe = () =>
      ws.send(encodeOp(binary, { op: 'subscribe', id: SUBSCRIBE_ID, symbols: cfg.symbols }));
    const subscribe = () => {
      if (!cfg.deferSubscribe || subscribeReleased) sendSubscribe();
      else client.readyToSubscribe = sendSubscribe;
    };
    const state = new ClientState(
      stats,
      SUBSCRIBE_ID,
      (id) => {
        if (id === AUTH_ID) subscribe();
      },
      decoder,
    );
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve(client.opened);
      }
    };
    const ws = openSocket(cfg, index, {
      open: () => {
        client.opened = true;
        connected++;
        lastOpenAt = performance.now();
        connectTimes.recordValue(Math.max(1, Math.round((lastOpenAt - started) * 1000)));
        if (cfg.authToken) ws.send(encodeOp(binary, { op: 'auth', id: AUTH_ID, token: cfg.authToken }));
        else subscribe();
        settle();
      },
      message: (data: Buffer, isBinary: boolean) => {
        if (isBinary !== binary) {
          stats.badFrames++;
          return;
        }
        state.handleFrame(data, nowUs(), binary);
      },
      error: (err: Error & { code?: string }) => {
        bump(socketErrors, (err.code ?? err.message).slice(0, 120));
        if (!client.opened) {
          handshakeFailures++;
          settle();
        }
      },
      close: (code: number) => {
        client.closed = true;
        if (!client.opened) {
          settle();
          return;
        }
        if (!stopping) {
          closedEarly++;
          bump(closeCodes, String(code));
        }
      },
    });
    const client: Client = { ws, state, opened: false, closed: false };
    clients.push(client);
  });
}

async function connectAll(cfg: WorkerConfig): Promise<void> {
  firstAttemptAt = performance.now();
  let todo: number[] = [];
  for (let i = cfg.from; i < cfg.to; i++) todo.push(i);
  for (let attempt = 1; todo.length > 0 && !stopping; attempt++) {
    todo = await connectPass(cfg, todo);
    if (attempt >= cfg.connectAttempts || todo.length === 0) break;
    // Back off before the next attempt (1 s, 2 s, ... with jitter), as a real client would.
    await sleep(1000 * attempt * (0.5 + Math.random()));
  }
  failed = todo.length;
  send({ type: 'connected', workerId: cfg.workerId, progress: progress() });
}

/** Opens the given clients at the connect rate; returns those whose handshake failed. */
async function connectPass(cfg: WorkerConfig, indexes: number[]): Promise<number[]> {
  const start = performance.now();
  const pending = new Set<Promise<void>>();
  const failedNow: number[] = [];
  for (const [k, i] of indexes.entries()) {
    if (stopping) break;
    const due = start + (k / cfg.connectRate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    while (inFlight >= cfg.connectConcurrency) await Promise.race(pending);
    inFlight++;
    const p: Promise<void> = openClient(cfg, i)
      .then((opened) => {
        if (!opened) failedNow.push(i);
      })
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  }
  await Promise.all(pending);
  return failedNow;
}

function maxSeqs(): Record<string, SeqCutoff> {
  const out: Record<string, SeqCutoff> = {};
  for (const c of clients) {
    for (const [symbol, st] of c.state.latest) {
      const cur = out[symbol];
      if (!cur || st.epoch > cur.epoch || (st.epoch === cur.epoch && st.seq > cur.seq))
        out[symbol] = { epoch: st.epoch, seq: st.seq };
    }
  }
  return out;
}

async function stop(msg: Extract<ToWorker, { type: 'stop' }>): Promise<void> {
  const cfg = config!;
  const tallies: Tally[] = clients.filter((c) => c.opened).map((c) => c.state.tally(msg.cutoffs));
  let mismatches = 0;
  const examples: string[] = [];
  if (msg.expectedFinal) {
    for (const [i, c] of clients.entries()) {
      if (!c.opened) continue;
      const diffs = c.state.finalStateDiffs(msg.expectedFinal);
      if (diffs.length > 0) {
        mismatches++;
        if (examples.length < 5) {
          const s = diffs[0]!;
          examples.push(
            `client ${cfg.from + i} ${s}: got ${JSON.stringify(c.state.latest.get(s) ?? null)} want ${JSON.stringify(msg.expectedFinal[s])}`,
          );
        }
      }
    }
  }
  const openAtEnd = clients.filter((c) => c.opened && !c.closed).length;
  stopping = true;
  for (const c of clients) if (!c.closed) c.ws.close(1000, 'bench done');
  const deadline = Date.now() + 3000;
  while (clients.some((c) => !c.closed) && Date.now() < deadline) await sleep(50);
  for (const c of clients) if (!c.closed) c.ws.terminate();
  send({
    type: 'result',
    workerId: cfg.workerId,
    result: {
      workerId: cfg.workerId,
      pid: process.pid,
      clients: cfg.to - cfg.from,
      connected,
      subscribed: clients.filter((c) => c.state.subscribed).length,
      failedToConnect: failed,
      handshakeFailures,
      closedEarly,
      openAtEnd,
      connectSpanMs: Math.round(Math.max(0, lastOpenAt - firstAttemptAt)),
      connectHistogram: encodeHistogram(connectTimes),
      delayHistogram: encodeHistogram(stats.delay),
      mark: markData ?? emptyMark(),
      conflated: stats.conflated,
      snapshots: stats.snapshots,
      heartbeats: stats.heartbeats,
      resnapshots: stats.resnapshots,
      notices: stats.notices,
      badFrames: stats.badFrames,
      protocolErrors: stats.errors,
      socketErrors,
      closeCodes,
      delivery: summarizeDelivery(tallies),
      finalStateMismatches: mismatches,
      finalStateExamples: examples,
    },
  });
  setTimeout(() => process.exit(0), 200);
}

let markData: WorkerMark | undefined;
const emptyMark = (): WorkerMark => ({
  frames: 0,
  quoteFrames: 0,
  quotes: 0,
  bytes: 0,
  measuredMs: 0,
  maxSeq: {},
});

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start':
      config = msg.config;
      loopDelay.enable();
      setInterval(() => {
        const p = progress();
        if (process.env.BENCH_DEBUG)
          process.stderr.write(
            `${new Date().toISOString()} worker ${msg.config.workerId} ${JSON.stringify(p)}\n`,
          );
        send({ type: 'progress', workerId: msg.config.workerId, progress: p });
      }, 1000).unref();
      void connectAll(msg.config).catch((err: unknown) =>
        send({ type: 'fatal', workerId: msg.config.workerId, error: String(err) }),
      );
      break;
    case 'subscribe':
      subscribeReleased = true;
      for (const c of clients) {
        const go = c.readyToSubscribe;
        c.readyToSubscribe = undefined;
        if (go && c.opened && !c.closed) go();
      }
      break;
    case 'measure':
      calibrateClock();
      stats.startMeasuring();
      for (const c of clients) c.state.startMeasuring();
      measureStartedAt = performance.now();
      break;
    case 'mark':
      stats.stopRecordingDelays();
      markData = {
        frames: stats.frames,
        quoteFrames: stats.quoteFrames,
        quotes: stats.quotes,
        bytes: stats.bytes,
        measuredMs: Math.round(performance.now() - measureStartedAt),
        maxSeq: maxSeqs(),
      };
      send({ type: 'mark', workerId: config!.workerId, mark: markData });
      break;
    case 'check-final': {
      const open = clients.filter((c) => c.opened && !c.closed);
      const matching = open.filter((c) => c.state.finalStateDiffs(msg.expected).length === 0).length;
      send({ type: 'final', workerId: config!.workerId, matching, total: open.length });
      break;
    }
    case 'stop':
      void stop(msg);
      break;
  }
});

// The coordinator went away, or ends the run: do not linger (an orderly exit
// also lets --cpu-prof in BENCH_WORKER_NODE_ARGS write its profile).
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
