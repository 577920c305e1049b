// What one load client does with each frame of the gateway protocol
// (tickmesh.v1.json, docs/websocket-protocol.md): counts it, tracks each
// symbol's seqs for the delivered share, records each live quote's delay from
// its event time (`ts`), and keeps the latest state per symbol. Pure: the
// worker feeds it text frames and the receive time.
import { SeqTracker, type SeqCutoff, type Tally } from '../lib/delivery.js';
import { newLatencyHistogram, type Histogram } from '../lib/histogram.js';

/** Counters shared by all clients of one worker (reset when measuring starts). */
export class WorkerStats {
  measuring = false;
  frames = 0;
  bytes = 0;
  quoteFrames = 0;
  quotes = 0;
  conflated = 0;
  snapshots = 0;
  heartbeats = 0;
  resnapshots = 0;
  notices = 0;
  badFrames = 0;
  errors: Record<string, number> = {};
  delay: Histogram = newLatencyHistogram();

  startMeasuring(): void {
    this.measuring = true;
    this.frames = this.bytes = this.quoteFrames = this.quotes = this.conflated = 0;
    this.snapshots = this.heartbeats = this.resnapshots = this.notices = this.badFrames = 0;
    this.errors = {};
    this.delay.reset();
  }
}

export interface SymbolState {
  epoch: number;
  seq: number;
  last: number;
  volume: number;
}

interface WireQuote {
  symbol?: unknown;
  seq?: unknown;
  epoch?: unknown;
  ts?: unknown;
  last?: unknown;
  volume?: unknown;
  conflated?: unknown;
}

export class ClientState {
  welcomed = false;
  subscribed = false;
  readonly trackers = new Map<string, SeqTracker>();
  readonly latest = new Map<string, SymbolState>();

  constructor(
    private readonly stats: WorkerStats,
    private readonly subscribeId: number | string = 1,
    /** Called with the id of every `reply` (the worker sends subscribe after the auth reply). */
    private readonly onReply?: (id: unknown) => void,
  ) {}

  /** Measuring starts: each symbol counts from the seq this client holds now. */
  startMeasuring(): void {
    for (const t of this.trackers.values()) t.startMeasuring();
  }

  handleFrame(frame: Buffer | string, nowUs: number): void {
    const s = this.stats;
    const data = typeof frame === 'string' ? Buffer.from(frame) : frame;
    s.frames++;
    s.bytes += data.length;
    let msg: { type?: unknown; quotes?: unknown; id?: unknown; code?: unknown };
    try {
      msg = JSON.parse(data.toString()) as typeof msg;
    } catch {
      s.badFrames++;
      return;
    }
    switch (msg.type) {
      case 'quotes':
        s.quoteFrames++;
        if (Array.isArray(msg.quotes)) this.quotes(msg.quotes as WireQuote[], nowUs, false);
        break;
      case 'snapshot':
        s.snapshots++;
        if (Array.isArray(msg.quotes)) this.quotes(msg.quotes as WireQuote[], nowUs, true);
        break;
      case 'welcome':
        this.welcomed = true;
        break;
      case 'reply':
        if (msg.id === this.subscribeId) this.subscribed = true;
        this.onReply?.(msg.id);
        break;
      case 'heartbeat':
        s.heartbeats++;
        break;
      case 'resnapshot':
        s.resnapshots++;
        break;
      case 'notice':
        s.notices++;
        break;
      case 'pong':
        break;
      case 'error': {
        const code = typeof msg.code === 'string' ? msg.code : 'unknown';
        s.errors[code] = (s.errors[code] ?? 0) + 1;
        break;
      }
      default:
        s.badFrames++;
    }
  }

  private quotes(list: WireQuote[], nowUs: number, isSnapshot: boolean): void {
    const s = this.stats;
    for (const q of list) {
      if (typeof q.symbol !== 'string' || typeof q.seq !== 'number' || typeof q.epoch !== 'number') {
        s.badFrames++;
        continue;
      }
      let t = this.trackers.get(q.symbol);
      if (!t) {
        t = new SeqTracker(s.measuring);
        this.trackers.set(q.symbol, t);
      }
      if (isSnapshot) t.snapshot(q.epoch, q.seq);
      else t.quote(q.epoch, q.seq);
      const prev = this.latest.get(q.symbol);
      if (!prev || prev.epoch !== q.epoch || q.seq >= prev.seq) {
        this.latest.set(q.symbol, {
          epoch: q.epoch,
          seq: q.seq,
          last: typeof q.last === 'number' ? q.last : NaN,
          volume: typeof q.volume === 'number' ? q.volume : NaN,
        });
      }
      if (isSnapshot || !s.measuring) continue;
      s.quotes++;
      if (q.conflated === true) s.conflated++;
      if (typeof q.ts === 'number' && q.ts > 0)
        s.delay.recordValue(Math.max(1, Math.round(nowUs - q.ts * 1000)));
    }
  }

  /** Expected and received seqs over this client's symbols. */
  tally(cutoffs: Record<string, SeqCutoff>): Tally {
    let expected = 0;
    let received = 0;
    for (const [symbol, t] of this.trackers) {
      const x = t.tally(cutoffs[symbol]);
      expected += x.expected;
      received += x.received;
    }
    return { expected, received };
  }

  /** Symbols whose latest state differs from `expected` (missing counts as different). */
  finalStateDiffs(expected: Record<string, SymbolState>): string[] {
    const diffs: string[] = [];
    for (const [symbol, want] of Object.entries(expected)) {
      const got = this.latest.get(symbol);
      if (
        !got ||
        got.epoch !== want.epoch ||
        got.seq !== want.seq ||
        got.last !== want.last ||
        got.volume !== want.volume
      ) {
        diffs.push(symbol);
      }
    }
    return diffs;
  }
}
