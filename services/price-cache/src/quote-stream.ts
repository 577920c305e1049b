// One StreamQuotes call: a snapshot first, then live updates, yielded one
// frame at a time (the kit asks for the next frame only when grpc-js has
// room for it). Updates wait in a map keyed by symbol (the latest value wins,
// marked conflated), so a slow client costs at most one entry per symbol; a
// client that stays undrained too long, or whose map outgrows its bound, is
// ended with RESOURCE_EXHAUSTED.
import { ResourceExhaustedError } from '@tickmesh/kit';
import type { StreamContext } from '@tickmesh/kit';
import type { MirrorEntry } from './mirror.js';
import { StreamQuotesResponse_Kind, type QuoteBytes, type StreamFrame } from './wire.js';

export interface StreamSessionOptions {
  /** Follow every symbol, or only these. */
  symbols: Set<string> | 'all';
  heartbeatMs: number;
  slowTimeoutMs: number;
  maxPending: number;
  maxQuotesPerMessage: number;
  /** Per-symbol minimum gap between two updates (0: no cap). */
  minIntervalMs: number;
  onConflated?: (n: number) => void;
  onSlowEnd?: () => void;
  now?: () => number;
}

interface Pending {
  bytes: Uint8Array;
  seq: number;
  conflated: boolean;
}

export class QuoteStreamSession {
  private epoch = 0;
  private control: StreamFrame[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly lastSent = new Map<string, number>();
  private readonly lastSentAt = new Map<string, number>();
  private failure: Error | undefined;
  private wakeUp: (() => void) | undefined;
  /** Ends the call at once, even while a frame waits for the client to drain. */
  private endCall: ((err: Error) => boolean) | undefined;
  /** When the frame the client has not taken yet was yielded (performance.now()); 0 when none waits. */
  private waitingSince = 0;
  private slowTimer: NodeJS.Timeout | undefined;
  private lastWriteAt = 0;
  private readonly now: () => number;
  /** Frames and quotes written (tests and benchmarks). */
  readonly sent = { frames: 0, quotes: 0 };

  constructor(readonly opts: StreamSessionOptions) {
    this.now = opts.now ?? Date.now;
  }

  get all(): boolean {
    return this.opts.symbols === 'all';
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  wants(symbol: string): boolean {
    return this.opts.symbols === 'all' || this.opts.symbols.has(symbol);
  }

  /** First message(s): the snapshot of the followed symbols. */
  start(epoch: number, snapshot: MirrorEntry[]): void {
    this.epoch = epoch;
    this.control = this.snapshotFrames(snapshot);
    this.wake();
  }

  /** The epoch changed: discard everything queued, send RESET then a fresh snapshot. */
  reset(epoch: number, snapshot: MirrorEntry[]): void {
    this.epoch = epoch;
    this.pending.clear();
    this.lastSent.clear();
    this.lastSentAt.clear();
    this.control = [this.frame(StreamQuotesResponse_Kind.KIND_RESET, []), ...this.snapshotFrames(snapshot)];
    this.wake();
  }

  /** A live update (already filtered by the hub for this stream's symbols). */
  offer(symbol: string, seq: number, epoch: number, bytes: Uint8Array): void {
    if (this.failure || epoch !== this.epoch) return;
    if ((this.lastSent.get(symbol) ?? 0) >= seq) return; // already covered by the snapshot or sent
    const cur = this.pending.get(symbol);
    if (cur) {
      if (cur.seq >= seq) return;
      cur.bytes = bytes;
      cur.seq = seq;
      cur.conflated = true;
      this.opts.onConflated?.(1);
    } else {
      if (this.pending.size >= this.opts.maxPending) {
        this.fail(
          new ResourceExhaustedError(`stream too slow: more than ${this.opts.maxPending} symbols waiting`),
        );
        return;
      }
      this.pending.set(symbol, { bytes, seq, conflated: false });
    }
    this.wake();
  }

  /** The frames to send until the call ends; ends it with RESOURCE_EXHAUSTED when the client is too slow. */
  async *frames(ctx: Pick<StreamContext, 'signal' | 'fail'>): AsyncGenerator<StreamFrame, void, undefined> {
    const { signal } = ctx;
    const onAbort = () => this.wake();
    signal.addEventListener('abort', onAbort);
    this.endCall = (err) => {
      if (signal.aborted) return false;
      ctx.fail(err);
      return true;
    };
    try {
      this.lastWriteAt = this.now();
      for (;;) {
        if (this.failure) throw this.failure;
        if (signal.aborted) return;
        const now = this.now();
        let frame = this.nextFrame(now);
        if (!frame && now - this.lastWriteAt >= this.opts.heartbeatMs) {
          frame = this.frame(StreamQuotesResponse_Kind.KIND_HEARTBEAT, []);
        }
        if (frame) {
          frame.serverTimeMs = now;
          this.sent.frames++;
          this.sent.quotes += frame.quotes.length;
          this.lastWriteAt = now;
          this.waitingSince = performance.now();
          this.watchDrain();
          yield frame;
          this.waitingSince = 0;
          continue;
        }
        await this.sleep(this.idleWaitMs(now));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.endCall = undefined;
      this.waitingSince = 0;
      clearTimeout(this.slowTimer);
      this.slowTimer = undefined;
    }
  }

  private nextFrame(now: number): StreamFrame | undefined {
    const control = this.control.shift();
    if (control) return control;
    if (this.pending.size === 0) return undefined;
    const quotes: QuoteBytes[] = [];
    const gap = this.opts.minIntervalMs;
    for (const [symbol, p] of this.pending) {
      if (gap > 0) {
        const last = this.lastSentAt.get(symbol);
        if (last !== undefined && now - last < gap) continue;
        this.lastSentAt.set(symbol, now);
      }
      quotes.push({ bytes: p.bytes, conflated: p.conflated });
      this.pending.delete(symbol);
      this.lastSent.set(symbol, p.seq);
      if (quotes.length >= this.opts.maxQuotesPerMessage) break;
    }
    return quotes.length > 0 ? this.frame(StreamQuotesResponse_Kind.KIND_UPDATE, quotes) : undefined;
  }

  /** How long to sleep when nothing can be sent: until the heartbeat or the next rate-capped update is due. */
  private idleWaitMs(now: number): number {
    let wait = this.opts.heartbeatMs - (now - this.lastWriteAt);
    if (this.opts.minIntervalMs > 0) {
      for (const symbol of this.pending.keys()) {
        const last = this.lastSentAt.get(symbol) ?? 0;
        wait = Math.min(wait, last + this.opts.minIntervalMs - now);
      }
    }
    return Math.max(1, wait);
  }

  /**
   * Ends the call when a yielded frame is not taken for slowTimeoutMs. One
   * timer at a time: when it fires while a later frame waits, it is set
   * again for what is left of that frame's time.
   */
  private watchDrain(): void {
    if (this.slowTimer) return;
    const check = (): void => {
      this.slowTimer = undefined;
      if (this.waitingSince === 0) return;
      const waited = performance.now() - this.waitingSince;
      if (waited < this.opts.slowTimeoutMs) {
        this.slowTimer = setTimeout(check, this.opts.slowTimeoutMs - waited);
        return;
      }
      const err = new ResourceExhaustedError(
        `stream too slow: not drained for ${this.opts.slowTimeoutMs} ms`,
      );
      if (this.endCall?.(err)) this.opts.onSlowEnd?.();
    };
    this.slowTimer = setTimeout(check, this.opts.slowTimeoutMs);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.pending.clear();
    this.control = [];
    this.opts.onSlowEnd?.();
    // A frame waiting for the client to drain holds the generator at its
    // yield: end the call from here; otherwise the loop throws on waking.
    if (this.waitingSince !== 0) this.endCall?.(err);
    this.wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private frame(kind: StreamQuotesResponse_Kind, quotes: QuoteBytes[]): StreamFrame {
    return { kind, quotes, serverTimeMs: 0, epoch: this.epoch, heartbeatIntervalMs: this.opts.heartbeatMs };
  }

  private snapshotFrames(entries: MirrorEntry[]): StreamFrame[] {
    const frames: StreamFrame[] = [];
    const wanted = entries.filter((e) => this.wants(e.symbol));
    for (const e of wanted) this.lastSent.set(e.symbol, e.seq);
    for (let i = 0; i < wanted.length; i += this.opts.maxQuotesPerMessage) {
      const chunk = wanted
        .slice(i, i + this.opts.maxQuotesPerMessage)
        .map((e) => ({ bytes: e.bytes, conflated: false }));
      frames.push(this.frame(StreamQuotesResponse_Kind.KIND_SNAPSHOT, chunk));
    }
    // An empty snapshot is still sent: the client learns the stream is up and its epoch.
    if (frames.length === 0) frames.push(this.frame(StreamQuotesResponse_Kind.KIND_SNAPSHOT, []));
    frames[frames.length - 1]!.snapshotComplete = true;
    return frames;
  }
}
