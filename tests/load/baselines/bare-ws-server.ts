// The bare `ws` baseline of the fan-out figure: speaks just enough of
// tickmesh.v1.json (welcome, subscribe reply, snapshot, quotes frames, pong)
// for the same load generator, and broadcasts one pre-serialized frame per
// round to every subscribed client (one Buffer, sent to all, as the gateway
// does), optionally padded to a given frame size. Quotes carry real seqs and
// event times, so delay and delivered share are measured the same way. A
// client whose socket backlog passes the high-water mark skips the round
// (and so misses those seqs): no unbounded buffering here either.
//
//   node --import tsx tests/load/baselines/bare-ws-server.ts [--port 0] [--frame-bytes 0]
//     [--quotes-per-frame 1] [--rate 0 (rounds/s, 0 = as fast as possible)] [--expect-clients 0]
//
// Prints `READY {"port":N}`; on SIGTERM prints `RESULT {rounds, sends, skipped}`.
import { parseArgs } from 'node:util';
import { WebSocketServer, WebSocket } from 'ws';
import { loadUniverse } from '@tickmesh/kit';
import { isMain, printResult } from '../lib/child.js';

export interface BareWsOptions {
  host?: string;
  port?: number;
  symbols?: string[];
  quotesPerFrame?: number;
  /** Pad every quotes frame to this many bytes (0: natural size). */
  frameBytes?: number;
  /** Broadcast rounds per second (0: as fast as the event loop allows). */
  rate?: number;
  highWaterBytes?: number;
  /** Refuse this many handshakes first (HTTP 503): exercises the load generator's retry. */
  refuseHandshakes?: number;
  /**
   * Hold the broadcast until this many clients subscribed (or 60 s passed
   * since the first), so the connect ramp is not starved by a flat-out loop.
   */
  expectClients?: number;
}

export interface BareWsServer {
  port: number;
  stats: { rounds: number; sends: number; skipped: number; clients: number; sourceAddresses: string[] };
  stop(): Promise<void>;
}

interface SymbolState {
  symbol: string;
  seq: number;
  last: number;
  volume: number;
}

/** The gateway's quote JSON shape (services/gateway/src/quote-json.ts), field for field. */
export function bareQuoteJson(s: SymbolState, ts: number): string {
  const last = s.last;
  return JSON.stringify({
    symbol: s.symbol,
    seq: s.seq,
    epoch: 1,
    last,
    bid: Math.round((last - 0.05) * 100) / 100,
    ask: Math.round((last + 0.05) * 100) / 100,
    open: last,
    high: last,
    low: last,
    prevClose: last,
    volume: s.volume,
    change: 0,
    changePct: 0,
    lastSize: 100,
    ts,
  });
}

/** `{"type":"quotes","quotes":[...]}`, padded with a `pad` field up to `frameBytes`. */
export function quotesFrame(quoteJsons: string[], frameBytes = 0): string {
  const plain = `{"type":"quotes","quotes":[${quoteJsons.join(',')}]}`;
  const padBytes = frameBytes - plain.length - ',"pad":""'.length;
  if (padBytes <= 0) return plain;
  return `${plain.slice(0, -1)},"pad":"${'x'.repeat(padBytes)}"}`;
}

export async function startBareWsServer(opts: BareWsOptions = {}): Promise<BareWsServer> {
  const symbols = opts.symbols?.length
    ? opts.symbols
    : loadUniverse('bist30').instruments.map((i) => i.symbol);
  const states: SymbolState[] = symbols.map((symbol, i) => ({ symbol, seq: 1, last: 100 + i, volume: 1000 }));
  const perFrame = Math.max(1, opts.quotesPerFrame ?? 1);
  const highWater = opts.highWaterBytes ?? 262_144;
  const stats = { rounds: 0, sends: 0, skipped: 0, clients: 0, sourceAddresses: [] as string[] };
  const subscribed = new Set<WebSocket>();
  let toRefuse = opts.refuseHandshakes ?? 0;
  const wss = new WebSocketServer({
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    perMessageDeflate: false,
    maxPayload: 4096,
    verifyClient: (_info, done) => (toRefuse > 0 ? (toRefuse--, done(false, 503)) : done(true)),
    handleProtocols: (offered) => (offered.has('tickmesh.v1.json') ? 'tickmesh.v1.json' : false),
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', (ws, req) => {
    stats.clients++;
    const from = req.socket.remoteAddress ?? '?';
    if (!stats.sourceAddresses.includes(from)) stats.sourceAddresses.push(from);
    ws.send(
      JSON.stringify({
        type: 'welcome',
        protocol: 'tickmesh.v1',
        session: `bare-${stats.clients}`,
        heartbeatMs: 15000,
        authRequired: false,
      }),
    );
    ws.on('message', (data: Buffer) => {
      let msg: { op?: unknown; id?: unknown };
      try {
        msg = JSON.parse(data.toString()) as typeof msg;
      } catch {
        ws.send(JSON.stringify({ type: 'error', code: 'bad_json', message: 'message is not valid JSON' }));
        return;
      }
      if (msg.op === 'subscribe') {
        ws.send(JSON.stringify({ type: 'reply', op: 'subscribe', id: msg.id }));
        const now = Date.now();
        ws.send(
          `{"type":"snapshot","quotes":[${states.map((s) => bareQuoteJson(s, now)).join(',')}],"missing":[]}`,
        );
        subscribed.add(ws);
      } else if (msg.op === 'ping') {
        ws.send(JSON.stringify({ type: 'pong', id: msg.id, ts: Date.now() }));
      }
    });
    ws.on('close', () => subscribed.delete(ws));
    ws.on('error', () => subscribed.delete(ws));
  });

  let firstSubscribedAt = 0;
  let released = (opts.expectClients ?? 0) <= 0;
  const broadcasting = () => {
    if (released) return subscribed.size > 0;
    if (subscribed.size === 0) return false;
    firstSubscribedAt ||= performance.now();
    released = subscribed.size >= opts.expectClients! || performance.now() - firstSubscribedAt > 60_000;
    return released;
  };

  let next = 0;
  const round = () => {
    const now = Date.now();
    const quotes: string[] = [];
    for (let k = 0; k < perFrame; k++) {
      const s = states[next++ % states.length]!;
      s.seq++;
      s.volume += 100;
      quotes.push(bareQuoteJson(s, now));
    }
    const payload = Buffer.from(quotesFrame(quotes, opts.frameBytes));
    stats.rounds++;
    for (const ws of subscribed) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > highWater) {
        stats.skipped++;
        continue;
      }
      ws.send(payload, { binary: false, compress: false, fin: true });
      stats.sends++;
    }
  };

  let running = true;
  let timer: NodeJS.Timeout | undefined;
  if ((opts.rate ?? 0) > 0) {
    const intervalMs = 1000 / opts.rate!;
    let due = performance.now();
    const tick = () => {
      if (!running) return;
      // Catch up after a late timer, but never more than 10 rounds at once.
      for (let i = 0; i < 10 && performance.now() >= due; i++) {
        if (broadcasting()) round();
        due += intervalMs;
      }
      if (performance.now() > due + 10 * intervalMs) due = performance.now();
      timer = setTimeout(tick, Math.max(0, due - performance.now()));
    };
    tick();
  } else {
    const loop = () => {
      if (!running) return;
      if (broadcasting()) round();
      else {
        setTimeout(loop, 10);
        return;
      }
      // setImmediate: socket I/O and new connections get their turn between rounds.
      setImmediate(loop);
    };
    setImmediate(loop);
  }

  const addr = wss.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    stats,
    stop: () =>
      new Promise<void>((resolve) => {
        running = false;
        if (timer) clearTimeout(timer);
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      symbols: { type: 'string', default: '' },
      'quotes-per-frame': { type: 'string', default: '1' },
      'frame-bytes': { type: 'string', default: '0' },
      rate: { type: 'string', default: '0' },
      'high-water-bytes': { type: 'string', default: '262144' },
      'expect-clients': { type: 'string', default: '0' },
    },
  });
  const server = await startBareWsServer({
    host: values.host,
    port: Number(values.port),
    symbols: values.symbols.split(',').filter(Boolean),
    quotesPerFrame: Number(values['quotes-per-frame']),
    frameBytes: Number(values['frame-bytes']),
    rate: Number(values.rate),
    highWaterBytes: Number(values['high-water-bytes']),
    expectClients: Number(values['expect-clients']),
  });
  process.stdout.write(`READY ${JSON.stringify({ port: server.port })}\n`);
  const stop = () => {
    printResult({ ...server.stats, sourceAddresses: server.stats.sourceAddresses.length });
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (isMain(import.meta.url)) void main();
