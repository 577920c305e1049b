// What one load client does with each frame of the gateway protocol
// (tickmesh.v1.json, docs/websocket-protocol.md): counts it, tracks each
// symbol's seqs for the delivered share, records each live quote's delay from
// its event time (`ts`), and keeps the latest state per symbol. Pure: the
// worker feeds it text frames and the receive time; frames are decoded by a
// FrameDecoder shared by the worker's clients (frame-decoder.ts).
import { SeqTable, type SeqCutoff, type Tally } from '../lib/delivery.js';
import { LatencyRecorder, type Histogram } from '../lib/histogram.js';
import { FrameDecoder, symbolSlots, type DecodedFrame } from './frame-decoder.js';

/** Counters shared by all clients of one worker (reset when measuring starts). */
export class WorkerStats {
  measuring = false;
  /**
   * Delays are recorded from `measure` to `mark` only: after the window the
   * worker computes the marks and final-state checks (event-loop stalls of
   * hundreds of ms at 5,000 clients), and frames read behind such a stall
   * would count its length as the server's delay.
   */
  recordingDelays = false;
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
  /** Quote delays in µs (read `delay` for the histogram). */
  readonly delays = new LatencyRecorder();

  get delay(): Histogram {
    return this.delays.drained;
  }

  startMeasuring(): void {
    this.measuring = true;
    this.recordingDelays = true;
    this.frames = this.bytes = this.quoteFrames = this.quotes = this.conflated = 0;
    this.snapshots = this.heartbeats = this.resnapshots = this.notices = this.badFrames = 0;
    this.errors = {};
    this.delays.reset();
  }

  /** The measured window ended: seqs still count toward delivery, delays no longer. */
  stopRecordingDelays(): void {
    this.recordingDelays = false;
  }
}

export interface SymbolState {
  epoch: number;
  seq: number;
  last: number;
  volume: number;
}

export class ClientState {
  welcomed = false;
  subscribed = false;
  /** Seqs per symbol slot (symbolSlots); the latest state's epoch and seq are the slot's epoch and highest seq. */
  private readonly seqs: SeqTable;
  /**
   * The latest state's last and volume per slot: [last, volume, last, volume, ...].
   * Numbers in one array rather than a reference per symbol: nothing per
   * quote for the garbage collector to trace.
   */
  private lastVolume = new Float64Array(0);

  constructor(
    private readonly stats: WorkerStats,
    private readonly subscribeId: number | string = 1,
    /** Called with the id of every `reply` (the worker sends subscribe after the auth reply). */
    private readonly onReply?: (id: unknown) => void,
    /** Shared by the clients of a worker, so identical frames are parsed once. */
    private readonly decoder: FrameDecoder = new FrameDecoder(),
  ) {
    this.seqs = new SeqTable(stats.measuring);
  }

  /** The latest state per symbol (built on demand: read at marks and at the end). */
  get latest(): Map<string, SymbolState> {
    const out = new Map<string, SymbolState>();
    for (const slot of this.seqs.slots()) out.set(symbolSlots.symbolAt(slot), this.stateAt(slot));
    return out;
  }

  private stateAt(slot: number): SymbolState {
    return {
      epoch: this.seqs.epochOf(slot)!,
      seq: this.seqs.maxSeenOf(slot),
      last: this.lastVolume[slot * 2]!,
      volume: this.lastVolume[slot * 2 + 1]!,
    };
  }

  /** Measuring starts: each symbol counts from the seq this client holds now. */
  startMeasuring(): void {
    this.seqs.startMeasuring();
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
    const seqs = this.seqs;
    for (const q of msg.quotes) {
      const slot = q.slot;
      const newest = isSnapshot ? seqs.snapshot(slot, q.epoch, q.seq) : seqs.quote(slot, q.epoch, q.seq);
      if (newest) {
        if (slot * 2 >= this.lastVolume.length) this.growLastVolume(slot);
        this.lastVolume[slot * 2] = q.last;
        this.lastVolume[slot * 2 + 1] = q.volume;
      }
    }
    if (isSnapshot || !s.measuring) return;
    s.quotes += msg.quotes.length;
    s.conflated += msg.conflatedCount;
    if (s.recordingDelays)
      for (const t of msg.eventTimes) s.delays.record(Math.max(1, Math.round(nowUs - t.tsUs)), t.count);
  }

  private growLastVolume(slot: number): void {
    const grown = new Float64Array(Math.max((slot + 1) * 2, this.lastVolume.length * 2, 16));
    grown.set(this.lastVolume);
    this.lastVolume = grown;
  }

  /** Expected and received seqs over this client's symbols. */
  tally(cutoffs: Record<string, SeqCutoff>): Tally {
    return this.seqs.tally((slot) => cutoffs[symbolSlots.symbolAt(slot)]);
  }

  /** Symbols whose latest state differs from `expected` (missing counts as different). */
  finalStateDiffs(expected: Record<string, SymbolState>): string[] {
    const diffs: string[] = [];
    for (const [symbol, want] of Object.entries(expected)) {
      const slot = symbolSlots.find(symbol);
      const got = slot !== undefined && this.seqs.has(slot) ? this.stateAt(slot) : undefined;
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
