// WebSocket clients that check what the gateway promises (docs/websocket-protocol.md
// "Rules a client can rely on"): within an epoch a symbol's seq only grows; a jump is
// marked `conflated`; an epoch change, a break or a reconnect is announced (notice,
// resnapshot, or a new connection whose snapshot replaces the state). Anything else is
// recorded as a violation. The clients reconnect by themselves (backoff with jitter), the
// way the live page and the watcher do.
import WebSocket from 'ws';

export interface WsQuote {
  symbol: string;
  seq: number;
  epoch: number;
  last: number;
  volume: number;
  ts: number;
  conflated?: boolean;
  [k: string]: unknown;
}

export interface TrackerOptions {
  url: string;
  /** Symbols to follow, or '*'. */
  symbols: string[] | '*';
  /** Sent as the first message when given (AUTH_MODE=api-key / jwt). */
  token?: string;
  /** Reconnect after an unexpected close (default true). */
  reconnect?: boolean;
  /** Local address to connect from (127.0.0.x), to spread clients over source IPs. */
  localAddress?: string;
  /** Called for each quote with its delivery delay (now - event time), for latency samples. */
  onLatency?: (ms: number) => void;
}

const MAX_VIOLATIONS = 50;

/** Pure checker of one connection's message sequence (testable without sockets). */
export class QuoteTracker {
  readonly state = new Map<string, WsQuote>();
  readonly violations: string[] = [];
  violationCount = 0;
  counts = {
    quotes: 0,
    conflated: 0,
    snapshots: 0,
    notices: 0,
    resnapshots: 0,
    errors: 0,
    /** Gaps right after an upstream_down notice (announced, so allowed). */
    announcedGaps: 0,
  };
  /** Between a notice and the next resnapshot: a gap here was announced. */
  private noticeOpen = false;
  /** After a resnapshot, until its snapshot: the state is being replaced. */
  private awaitingSnapshot = false;
  lastDataAt = 0;
  lastNoticeAt = 0;
  lastResnapshotAt = 0;
  readonly errorCodes = new Map<string, number>();

  /** A new connection: the old state means nothing until its snapshot. */
  newConnection(): void {
    this.state.clear();
    this.noticeOpen = false;
    this.awaitingSnapshot = true;
  }

  violation(what: string): void {
    this.violationCount++;
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(what);
  }

  /** One parsed server message; `now` is the receive time. */
  onMessage(msg: Record<string, unknown>, now: number, onLatency?: (ms: number) => void): void {
    switch (msg.type) {
      case 'snapshot': {
        this.counts.snapshots++;
        const quotes = (msg.quotes ?? []) as WsQuote[];
        if (this.awaitingSnapshot) {
          // A resnapshot or a new connection: the snapshot is the whole truth.
          this.state.clear();
          this.awaitingSnapshot = false;
        }
        for (const q of quotes) {
          const prev = this.state.get(q.symbol);
          // A subscribe snapshot of a symbol already held must not go back in time.
          if (prev && prev.epoch === q.epoch && q.seq < prev.seq)
            this.violation(`${q.symbol}: snapshot seq ${q.seq} below held ${prev.seq}`);
          this.state.set(q.symbol, q);
        }
        this.noticeOpen = false;
        this.lastDataAt = now;
        return;
      }
      case 'quotes': {
        for (const q of (msg.quotes ?? []) as WsQuote[]) this.onQuote(q, now, onLatency);
        this.lastDataAt = now;
        return;
      }
      case 'resnapshot':
        this.counts.resnapshots++;
        this.awaitingSnapshot = true;
        this.lastResnapshotAt = now;
        return;
      case 'notice':
        this.counts.notices++;
        this.noticeOpen = true;
        this.lastNoticeAt = now;
        return;
      case 'error': {
        this.counts.errors++;
        const code = String(msg.code);
        this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
        return;
      }
      default:
        return;
    }
  }

  private onQuote(q: WsQuote, now: number, onLatency?: (ms: number) => void): void {
    this.counts.quotes++;
    if (q.conflated) this.counts.conflated++;
    if (onLatency && typeof q.ts === 'number') onLatency(now - q.ts);
    if (this.awaitingSnapshot) {
      this.violation(`${q.symbol}: quote seq ${q.seq} between a resnapshot and its snapshot`);
      return;
    }
    const prev = this.state.get(q.symbol);
    if (!prev) {
      // First quote of a symbol that had none at subscribe time (listed in `missing`).
      this.state.set(q.symbol, q);
      return;
    }
    if (q.epoch !== prev.epoch) {
      this.violation(`${q.symbol}: epoch ${prev.epoch} -> ${q.epoch} without a resnapshot`);
    } else if (q.seq <= prev.seq) {
      this.violation(`${q.symbol}: seq ${q.seq} after ${prev.seq} (repeat or step back)`);
      return;
    } else if (q.seq > prev.seq + 1 && !q.conflated) {
      if (this.noticeOpen) this.counts.announcedGaps++;
      else this.violation(`${q.symbol}: silent gap ${prev.seq} -> ${q.seq} (not marked conflated)`);
    }
    this.state.set(q.symbol, q);
  }
}

/** One live client: connects, authenticates, subscribes, tracks, reconnects. */
export class TrackedClient {
  readonly tracker = new QuoteTracker();
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  connects = 0;
  readonly closes = new Map<number, number>();
  lastCloseAt = 0;
  connectedAt = 0;
  /** True between welcome+subscribe reply and the next close. */
  subscribed = false;

  constructor(readonly opts: TrackerOptions) {}

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.opts.url, 'tickmesh.v1.json', {
      handshakeTimeout: 5000,
      ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
    });
    this.ws = ws;
    ws.on('open', () => {
      this.connects++;
      this.connectedAt = Date.now();
      this.tracker.newConnection();
      // With credentials, subscribe once the auth reply came (ops before it are refused).
      if (this.opts.token) ws.send(JSON.stringify({ op: 'auth', id: 'auth', token: this.opts.token }));
      else ws.send(JSON.stringify({ op: 'subscribe', id: 'sub', symbols: this.opts.symbols }));
    });
    ws.on('message', (data: Buffer) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      } catch {
        this.tracker.violation('server sent invalid JSON');
        return;
      }
      if (msg.type === 'reply' && msg.op === 'auth')
        ws.send(JSON.stringify({ op: 'subscribe', id: 'sub', symbols: this.opts.symbols }));
      if (msg.type === 'reply' && msg.op === 'subscribe') {
        this.subscribed = true;
        this.attempt = 0;
      }
      const now = Date.now();
      this.tracker.onMessage(msg, now, this.opts.onLatency);
      this.noteLive(msg, now);
    });
    ws.on('error', () => undefined);
    ws.on('close', (code: number) => {
      this.subscribed = false;
      this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
      this.lastCloseAt = Date.now();
      if (this.ws !== ws || this.stopped || this.opts.reconnect === false) return;
      // Full jitter, capped low so a test sees recovery quickly (the page caps at 10 s).
      const cap = Math.min(2000, 100 * 2 ** Math.min(this.attempt, 10));
      this.attempt++;
      this.timer = setTimeout(() => this.open(), Math.random() * cap);
    });
  }

  /** Fresh data (snapshot or quotes) arrived after `t`. */
  freshSince(t: number): boolean {
    return this.subscribed && this.tracker.lastDataAt > t;
  }

  private freshFrom = Infinity;
  private firstLive: number | undefined;

  /** Starts watching for the first live quote produced at or after `t` (see liveAfter). */
  markFresh(t: number): void {
    this.freshFrom = t;
    this.firstLive = undefined;
  }

  /**
   * When the first live update (a `quotes` frame, not a snapshot) of a tick whose event
   * time is at or after the mark arrived: data flowing end to end again.
   */
  liveAfter(t: number): number | undefined {
    return t === this.freshFrom ? this.firstLive : undefined;
  }

  private noteLive(msg: Record<string, unknown>, now: number): void {
    if (this.firstLive !== undefined || msg.type !== 'quotes' || !Array.isArray(msg.quotes)) return;
    if ((msg.quotes as WsQuote[]).some((q) => q.ts >= this.freshFrom)) this.firstLive = now;
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      ws.close(1000);
    });
  }
}
