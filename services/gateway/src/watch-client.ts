// A reconnecting tickmesh.v1 client (used by the terminal watcher): connects,
// authenticates when the server asks, subscribes, keeps the latest quote per
// symbol, watches the server heartbeat, and reconnects with backoff and full
// jitter, slower when the close code asks for it. Stops for good on 4001.
import { WebSocket } from 'ws';
import { fullJitterDelay } from './backoff.js';
import { CloseCode, SUBPROTOCOL_JSON } from './protocol.js';

export interface WireQuote {
  symbol: string;
  seq: number;
  epoch: number;
  last: number;
  bid: number;
  ask: number;
  open: number;
  high: number;
  low: number;
  prevClose: number;
  volume: number;
  change: number;
  changePct: number;
  ts: number;
  conflated?: boolean;
}

export type ConnectionState =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'live' }
  | { kind: 'upstream-down' }
  | { kind: 'waiting'; retryAt: number; reason: string }
  | { kind: 'stopped'; reason: string };

export interface WatchClientOptions {
  url: string;
  token?: string;
  symbols: string[] | '*';
  onState(state: ConnectionState): void;
  /** A snapshot (replace=true after a resnapshot) or live updates. */
  onQuotes(quotes: WireQuote[], snapshot: boolean): void;
  /** The server asked to discard state (epoch change or upstream recovery). */
  onResnapshot(): void;
  onError(message: string): void;
  connectTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

const SLOW_DOWN = new Set<number>([CloseCode.tooManyConnections, CloseCode.flood, CloseCode.tryAgainLater]);

export class WatchClient {
  private ws: WebSocket | undefined;
  private attempt = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private lastMessageAt = 0;
  private heartbeatMs = 15_000;
  private nextId = 1;

  constructor(private readonly opts: WatchClientOptions) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.ws?.close(1000, 'bye');
    this.ws = undefined;
  }

  private connect(): void {
    this.opts.onState({ kind: 'connecting', attempt: this.attempt });
    const ws = new WebSocket(this.opts.url, [SUBPROTOCOL_JSON], {
      handshakeTimeout: this.opts.connectTimeoutMs ?? 5000,
    });
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.lastMessageAt = Date.now();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.lastMessageAt = Date.now();
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(String(data)) as Record<string, unknown>;
      } catch {
        return;
      }
      this.handle(msg);
    });
    ws.on('error', (err) => {
      if (!opened) this.opts.onError(err.message);
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.clearTimers();
      if (this.stopped) return;
      const why = reason.length > 0 ? `${code} ${reason.toString()}` : `closed (${code})`;
      if (code === CloseCode.authFailed) {
        this.stopped = true;
        this.opts.onState({ kind: 'stopped', reason: `authentication failed (${why})` });
        return;
      }
      this.scheduleRetry(why, SLOW_DOWN.has(code));
    });
  }

  private handle(msg: Record<string, unknown>): void {
    switch (msg.type) {
      case 'welcome': {
        this.heartbeatMs =
          typeof msg.heartbeatMs === 'number' && msg.heartbeatMs > 0 ? msg.heartbeatMs : this.heartbeatMs;
        this.startWatchdog();
        if (msg.authRequired) {
          if (!this.opts.token) {
            this.stopped = true;
            this.opts.onState({
              kind: 'stopped',
              reason: 'the gateway needs credentials: pass --token or set TICKMESH_TOKEN',
            });
            this.ws?.close(1000, 'no credentials');
            return;
          }
          this.send({ op: 'auth', token: this.opts.token });
          return;
        }
        this.ready(msg.upstream === 'down');
        return;
      }
      case 'reply':
        if (msg.op === 'auth') this.ready(false);
        return;
      case 'snapshot':
        this.opts.onQuotes((msg.quotes as WireQuote[]) ?? [], true);
        return;
      case 'quotes':
        this.opts.onQuotes((msg.quotes as WireQuote[]) ?? [], false);
        return;
      case 'resnapshot':
        this.opts.onResnapshot();
        this.opts.onState({ kind: 'live' });
        return;
      case 'notice':
        if (msg.code === 'upstream_down') this.opts.onState({ kind: 'upstream-down' });
        return;
      case 'error':
        this.opts.onError(`${String(msg.code)}: ${String(msg.message)}`);
        return;
      default:
        return;
    }
  }

  private ready(upstreamDown: boolean): void {
    this.attempt = 0;
    this.opts.onState(upstreamDown ? { kind: 'upstream-down' } : { kind: 'live' });
    this.send({ op: 'subscribe', symbols: this.opts.symbols });
  }

  private send(op: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ ...op, id: this.nextId++ }));
  }

  private startWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    // The server sends something at least every heartbeatMs; silence for 3 means a dead link.
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastMessageAt > 3 * this.heartbeatMs) {
        this.opts.onError('no heartbeat from the gateway');
        this.ws?.terminate();
      }
    }, 1000);
    this.watchdog.unref();
  }

  private scheduleRetry(reason: string, slow: boolean): void {
    const initial = (this.opts.backoffInitialMs ?? 500) * (slow ? 4 : 1);
    const max = (this.opts.backoffMaxMs ?? 10_000) * (slow ? 6 : 1);
    const delay = 250 + fullJitterDelay(this.attempt++, initial, max);
    this.opts.onState({ kind: 'waiting', retryAt: Date.now() + delay, reason });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private clearTimers(): void {
    for (const t of [this.retryTimer, this.connectTimer]) if (t) clearTimeout(t);
    if (this.watchdog) clearInterval(this.watchdog);
    this.retryTimer = undefined;
    this.connectTimer = undefined;
    this.watchdog = undefined;
  }
}
