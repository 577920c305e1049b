// What one load client does with each frame of the gateway protocol
// (tickmesh.v1.json, docs/websocket-protocol.md): counts it, tracks each
// symbol's seqs for the delivered share, records each live quote's delay from
// its event time (`ts`), and keeps the latest state per symbol. Pure: the
// worker feeds it text frames and the receive time; frames are decoded by a
// FrameDecoder shared by the worker's clients (frame-decoder.ts).
import { SeqTracker, type SeqCutoff, type Tally } from '../lib/delivery.js';
import { newLatencyHistogram, type Histogram } from '../lib/histogram.js';
import { FrameDecoder, type DecodedFrame, type DecodedQuote } from './frame-decoder.js';

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

/** What a client tracks per symbol: one map lookup per quote. */
interface SymbolSlot {
  tracker: SeqTracker;
  /**
   * The quote that set the latest state: a reference to the decode shared by
   * the worker's clients (read-only), so keeping it writes nothing per client
   * but this pointer, and the reads hit memory every client uses.
   */
  latest: DecodedQuote | undefined;
}

const stateOf = (q: DecodedQuote): SymbolState => ({
  epoch: q.epoch,
  seq: q.seq,
  last: q.last,
  volume: q.volume,
});

export class ClientState {
  welcomed = false;
  subscribed = false;
  private readonly slots = new Map<string, SymbolSlot>();

  constructor(
    private readonly stats: WorkerStats,
    private readonly subscribeId: number | string = 1,
    /** Called with the id of every `reply` (the worker sends subscribe after the auth reply). */
    private readonly onReply?: (id: unknown) => void,
    /** Shared by the clients of a worker, so identical frames are parsed once. */
    private readonly decoder: FrameDecoder = new FrameDecoder(),
  ) {}

  /** The latest state per symbol (built on demand: read at marks and at the end). */
  get latest(): Map<string, SymbolState> {
    const out = new Map<string, SymbolState>();
    for (const [symbol, slot] of this.slots) if (slot.latest) out.set(symbol, stateOf(slot.latest));
    return out;
  }

  /** Measuring starts: each symbol counts from the seq this client holds now. */
  startMeasuring(): void {
    for (const slot of this.slots.values()) slot.tracker.startMeasuring();
  }

  /** binary: a frame of the tickmesh.v1.proto encoding. */
  handleFrame(frame: Buffer | string, nowUs: number, binary = false): void {
    const s = this.stats;
    const data = typeof frame === 'string' ? Buffer.from(frame) : frame;
    s.frames++;
    s.bytes += data.length;
    const msg = this.decoder.decode(data, binary);
    switch (msg.type) {
      case 'quotes':
        s.quoteFrames++;
        this.quotes(msg, nowUs, false);
        break;
      case 'snapshot':
        s.snapshots++;
        this.quotes(msg, nowUs, true);
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
        const code = msg.code ?? 'unknown';
        s.errors[code] = (s.errors[code] ?? 0) + 1;
        break;
      }
      default:
        s.badFrames++;
    }
  }

  private quotes(msg: DecodedFrame, nowUs: number, isSnapshot: boolean): void {
    const s = this.stats;
    s.badFrames += msg.badQuotes;
    for (const q of msg.quotes) {
      let slot = this.slots.get(q.symbol);
      if (!slot) {
        slot = { tracker: new SeqTracker(s.measuring), latest: undefined };
        this.slots.set(q.symbol, slot);
      }
      if (isSnapshot) slot.tracker.snapshot(q.epoch, q.seq);
      else slot.tracker.quote(q.epoch, q.seq);
      const l = slot.latest;
      if (!l || l.epoch !== q.epoch || q.seq >= l.seq) slot.latest = q;
    }
    if (isSnapshot || !s.measuring) return;
    s.quotes += msg.quotes.length;
    s.conflated += msg.conflatedCount;
    for (const t of msg.eventTimes)
      s.delay.recordValueWithCount(Math.max(1, Math.round(nowUs - t.tsUs)), t.count);
  }

  /** Expected and received seqs over this client's symbols. */
  tally(cutoffs: Record<string, SeqCutoff>): Tally {
    let expected = 0;
    let received = 0;
    for (const [symbol, slot] of this.slots) {
      const x = slot.tracker.tally(cutoffs[symbol]);
      expected += x.expected;
      received += x.received;
    }
    return { expected, received };
  }

  /** Symbols whose latest state differs from `expected` (missing counts as different). */
  finalStateDiffs(expected: Record<string, SymbolState>): string[] {
    const diffs: string[] = [];
    for (const [symbol, want] of Object.entries(expected)) {
      const got = this.slots.get(symbol)?.latest;
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
