// The gateway's one upstream: a PriceService.StreamQuotes(all: true) stream
// kept into the QuoteMirror (docs/gateway.md "Upstream").
//
//  - ONE stream per gateway process, whatever the number of clients.
//  - Make-before-break: the stream is replaced periodically (below the
//    servers' max-connection-age grace) and when the channel leaves READY
//    (GOAWAY). The new stream is opened first; once its snapshot arrived and
//    the old stream has caught up with it (per-symbol seq), the new one takes
//    over and the old one is cancelled. Both feed the mirror meanwhile and its
//    seq check drops duplicates: clients see neither a gap nor a repeat.
//  - A stream silent for factor x its advertised heartbeat is broken.
//  - On a break, clients are told at once (onDown); reconnects use
//    exponential backoff with full jitter; the first snapshot after recovery
//    replaces the mirror and every client is re-snapshotted (onResync).
//  - A RESET, or a new epoch on the stream, replaces the mirror from the
//    snapshot that follows and re-snapshots every client (reason "epoch").
//  - A snapshot may span several consecutive KIND_SNAPSHOT messages (the
//    price-cache splits large ones): they are assembled until the one marked
//    snapshot_complete; from a server that does not mark it, until the first
//    other message or until none followed for a short settle time.
import type { Logger } from '@tickmesh/kit';
import type { Quote } from '@tickmesh/kit/proto';
import { StreamQuotesResponse_Kind as Kind, type StreamQuotesResponse } from '@tickmesh/kit/proto';
import { fullJitterDelay } from './backoff.js';
import type { QuoteMirror, QuoteUpdate } from './quote-mirror.js';
import type { ResnapshotReason } from './protocol.js';

/** One open upstream stream. */
export interface StreamHandle {
  cancel(): void;
}

/** Opens StreamQuotes streams (PriceService over gRPC in production, anything in tests). */
export interface UpstreamSource {
  open(handlers: { message(m: StreamQuotesResponse): void; end(reason: string): void }): StreamHandle;
  /** Calls `onLeaveReady` whenever the transport under the streams stops being READY (e.g. GOAWAY). */
  watchConnectivity?(onLeaveReady: () => void): () => void;
}

export interface FeedListener {
  onUpdates(updates: QuoteUpdate[]): void;
  /** The mirror was replaced: every client needs a resnapshot. */
  onResync(reason: ResnapshotReason): void;
  /** The upstream broke: clients must be told; a resync follows on recovery. */
  onDown(reason: string): void;
}

export interface FeedMetrics {
  message(kind: string): void;
  rotation(trigger: 'interval' | 'connectivity' | 'epoch'): void;
  liveChanged(live: boolean): void;
}

export interface UpstreamFeedOptions {
  connectTimeoutMs: number;
  heartbeatTimeoutFactor: number;
  defaultHeartbeatMs: number;
  rotateIntervalMs: number;
  overlapMaxMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Messages a replacement stream may buffer while the old one catches up. */
  maxOverlapMessages?: number;
  /** After the stream ended with a replacement on its way, how long clients are not yet told. */
  switchGraceMs?: number;
  /** A snapshot is complete when another kind of message arrives, or after this long without one (default 50 ms). */
  snapshotSettleMs?: number;
  logger: Logger;
  metrics?: FeedMetrics;
  random?: () => number;
}

class Attempt {
  handle: StreamHandle | undefined;
  lastMessageMs: number;
  heartbeatMs: number;
  gotSnapshot = false;
  /** RESET seen, or a quote of another epoch: ignore updates until a snapshot. */
  awaitingSnapshot = false;
  /** Replacement only: per-symbol seq the old stream must reach before the switch. */
  targets: Map<string, number> | undefined;
  /** Replacement only: messages after its snapshot, replayed at the switch. */
  buffer: StreamQuotesResponse[] = [];
  /** Snapshot messages received so far of a snapshot not yet complete. */
  parts: Quote[] | undefined;
  partsEpoch = 0;
  settleTimer: NodeJS.Timeout | undefined;
  done = false;

  constructor(
    readonly id: number,
    nowMs: number,
    heartbeatMs: number,
  ) {
    this.lastMessageMs = nowMs;
    this.heartbeatMs = heartbeatMs;
  }
}

const KIND_NAMES: Record<number, string> = {
  [Kind.KIND_SNAPSHOT]: 'snapshot',
  [Kind.KIND_UPDATE]: 'update',
  [Kind.KIND_HEARTBEAT]: 'heartbeat',
  [Kind.KIND_RESET]: 'reset',
};

export class UpstreamFeed {
  private active: Attempt | undefined;
  private candidate: Attempt | undefined;
  private live = false;
  private stopped = true;
  private failures = 0;
  private nextId = 1;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private rotateTimer: NodeJS.Timeout | undefined;
  private overlapTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private switchGraceTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private rejectedLogged = 0;

  constructor(
    private readonly source: UpstreamSource,
    private readonly mirror: QuoteMirror,
    private readonly listener: FeedListener,
    private readonly opts: UpstreamFeedOptions,
  ) {}

  /** True while the mirror follows a healthy stream. */
  get isLive(): boolean {
    return this.live;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.openAttempt();
    const every = Math.max(50, Math.min(1000, Math.floor(this.opts.defaultHeartbeatMs / 2)));
    this.watchdog = setInterval(() => this.checkSilence(), every);
    this.watchdog.unref();
    this.unwatch = this.source.watchConnectivity?.(() => this.rotate('connectivity'));
  }

  stop(): void {
    this.stopped = true;
    for (const t of [
      this.reconnectTimer,
      this.rotateTimer,
      this.overlapTimer,
      this.connectTimer,
      this.switchGraceTimer,
    ]) {
      if (t) clearTimeout(t);
    }
    if (this.watchdog) clearInterval(this.watchdog);
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.active) this.retire(this.active);
    if (this.candidate) this.retire(this.candidate);
    this.active = undefined;
    this.candidate = undefined;
    this.setLive(false);
  }

  /** Opens a replacement stream now (make-before-break), unless one is already on its way. */
  rotate(trigger: 'interval' | 'connectivity' | 'epoch'): void {
    if (this.stopped || !this.active || this.candidate || !this.live) return;
    this.opts.metrics?.rotation(trigger);
    this.opts.logger.debug({ trigger }, 'replacing the upstream stream');
    this.openAttempt();
  }

  // ---- stream lifecycle ------------------------------------------------------

  private openAttempt(): void {
    const att = new Attempt(this.nextId++, Date.now(), this.opts.defaultHeartbeatMs);
    this.candidate = att;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this.candidate === att && !att.gotSnapshot)
        this.fail(att, 'no snapshot within the connect timeout');
    }, this.opts.connectTimeoutMs);
    this.connectTimer.unref();
    att.handle = this.source.open({
      message: (m) => this.onMessage(att, m),
      end: (reason) => this.onEnd(att, reason),
    });
  }

  private onMessage(att: Attempt, m: StreamQuotesResponse): void {
    if (att.done || this.stopped) return;
    att.lastMessageMs = Date.now();
    if (m.heartbeatIntervalMs > 0) att.heartbeatMs = m.heartbeatIntervalMs;
    this.opts.metrics?.message(KIND_NAMES[m.kind] ?? 'unknown');
    if (m.kind === Kind.KIND_SNAPSHOT) {
      const epoch = epochOf(m);
      if (att.parts && epoch !== att.partsEpoch) this.completeSnapshot(att);
      if (!att.parts) {
        att.parts = [];
        att.partsEpoch = epoch;
      }
      for (const q of m.quotes) att.parts.push(q);
      if (m.snapshotComplete) {
        this.completeSnapshot(att);
        return;
      }
      if (att.settleTimer) clearTimeout(att.settleTimer);
      att.settleTimer = setTimeout(() => this.completeSnapshot(att), this.opts.snapshotSettleMs ?? 50);
      att.settleTimer.unref();
      return;
    }
    // Any other message ends a snapshot in progress.
    if (att.parts) this.completeSnapshot(att);
    if (att.done) return;
    if (att === this.active) this.handleActive(att, m);
    else if (att === this.candidate) this.handleCandidate(att, m);
  }

  /** A whole snapshot arrived on `att`. */
  private completeSnapshot(att: Attempt): void {
    const quotes = att.parts;
    if (att.settleTimer) clearTimeout(att.settleTimer);
    att.settleTimer = undefined;
    att.parts = undefined;
    if (!quotes || att.done || this.stopped) return;
    const m: StreamQuotesResponse = {
      kind: Kind.KIND_SNAPSHOT,
      quotes,
      epoch: att.partsEpoch,
      serverTimeMs: 0,
      heartbeatIntervalMs: 0,
      snapshotComplete: true,
    };
    if (att === this.active) this.handleActive(att, m);
    else if (att === this.candidate) this.handleCandidate(att, m);
  }

  private handleCandidate(att: Attempt, m: StreamQuotesResponse): void {
    if (!att.gotSnapshot) {
      // A stream starts with its snapshot; nothing before it can be applied.
      if (m.kind !== Kind.KIND_SNAPSHOT) return;
      att.gotSnapshot = true;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      const epoch = epochOf(m);
      if (!this.live || epoch !== this.mirror.epoch) {
        const reason: ResnapshotReason = this.live ? 'epoch' : 'upstream';
        this.promote(att);
        this.replaceMirror(m.quotes, epoch);
        this.failures = 0;
        this.setLive(true);
        this.opts.logger.info({ reason, symbols: this.mirror.size, epoch }, 'upstream stream live');
        this.listener.onResync(reason);
        return;
      }
      att.buffer.push(m);
      if (!this.active) {
        this.switchTo(att);
        return;
      }
      // The old stream is still flowing: switch once it reached the snapshot's seqs.
      att.targets = new Map();
      for (const q of m.quotes) {
        const held = this.mirror.get(q.symbol);
        if (!held || q.seq > held.seq) att.targets.set(q.symbol, q.seq);
      }
      if (att.targets.size === 0) {
        this.switchTo(att);
        return;
      }
      this.overlapTimer = setTimeout(() => {
        if (this.candidate === att) this.switchTo(att);
      }, this.opts.overlapMaxMs);
      this.overlapTimer.unref();
      return;
    }
    att.buffer.push(m);
    if (m.kind === Kind.KIND_RESET || att.buffer.length >= (this.opts.maxOverlapMessages ?? 10_000))
      this.switchTo(att);
  }

  private handleActive(att: Attempt, m: StreamQuotesResponse): void {
    switch (m.kind) {
      case Kind.KIND_RESET:
        att.awaitingSnapshot = true;
        return;
      case Kind.KIND_SNAPSHOT: {
        const epoch = epochOf(m);
        if (att.awaitingSnapshot || epoch !== this.mirror.epoch) {
          att.awaitingSnapshot = false;
          this.replaceMirror(m.quotes, epoch);
          this.opts.logger.info(
            { epoch, symbols: this.mirror.size },
            'upstream epoch changed: re-snapshotting clients',
          );
          this.listener.onResync('epoch');
          return;
        }
        // Same epoch: nothing new unless its seqs are ahead (applied as updates).
        this.applyQuotes(att, m.quotes);
        return;
      }
      case Kind.KIND_UPDATE:
        if (!att.awaitingSnapshot) this.applyQuotes(att, m.quotes);
        return;
      default:
        return;
    }
  }

  private applyQuotes(att: Attempt, quotes: readonly Quote[]): void {
    const updates: QuoteUpdate[] = [];
    const cand = this.candidate;
    for (const q of quotes) {
      const r = this.mirror.apply(q);
      if (r.kind === 'applied') {
        updates.push(r.update);
        const target = cand?.targets?.get(q.symbol);
        if (target !== undefined && q.seq >= target) cand!.targets!.delete(q.symbol);
      } else if (r.kind === 'epoch') {
        // A new epoch without a RESET: get a fresh snapshot on a new stream.
        att.awaitingSnapshot = true;
        this.opts.logger.warn(
          { epoch: q.epoch, held: this.mirror.epoch },
          'quote of another epoch: re-snapshotting',
        );
        this.rotateForEpoch();
        break;
      } else if (r.kind === 'rejected') {
        // Logged sparingly: a bad upstream must not flood the logs.
        if (this.rejectedLogged++ % 1000 === 0)
          this.opts.logger.warn({ symbol: q.symbol, reason: r.reason }, 'upstream quote ignored');
      }
    }
    if (updates.length > 0) this.listener.onUpdates(updates);
    if (cand && cand === this.candidate && cand.targets && cand.targets.size === 0) this.switchTo(cand);
  }

  private rotateForEpoch(): void {
    if (this.candidate || this.stopped) return;
    this.opts.metrics?.rotation('epoch');
    this.openAttempt();
  }

  /** The replacement takes over: replay what it buffered, cancel the old stream. */
  private switchTo(att: Attempt): void {
    const old = this.active;
    this.promote(att);
    if (old) this.opts.logger.debug({ from: old.id, to: att.id }, 'upstream stream replaced');
    const buffered = att.buffer;
    att.buffer = [];
    att.targets = undefined;
    for (const m of buffered) {
      if (this.active !== att) break;
      this.handleActive(att, m);
    }
  }

  private promote(att: Attempt): void {
    if (this.overlapTimer) clearTimeout(this.overlapTimer);
    if (this.switchGraceTimer) clearTimeout(this.switchGraceTimer);
    this.overlapTimer = undefined;
    this.switchGraceTimer = undefined;
    const old = this.active;
    this.active = att;
    if (this.candidate === att) this.candidate = undefined;
    if (old && old !== att) this.retire(old);
    this.scheduleRotation();
  }

  private onEnd(att: Attempt, reason: string): void {
    if (att.done || this.stopped) return;
    att.done = true;
    // A snapshot cut short by the end is of no use.
    att.parts = undefined;
    if (att.settleTimer) clearTimeout(att.settleTimer);
    if (att === this.candidate) {
      this.candidate = undefined;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      if (this.overlapTimer) clearTimeout(this.overlapTimer);
      this.opts.logger.warn({ reason }, 'upstream stream could not be opened');
      if (!this.active) {
        this.goDown(reason);
        this.scheduleReconnect();
      }
      // else: a failed replacement; the current stream goes on, the next rotation retries.
      return;
    }
    if (att !== this.active) return;
    this.active = undefined;
    const cand = this.candidate;
    if (cand?.gotSnapshot) {
      this.switchTo(cand);
      return;
    }
    if (cand) {
      // A replacement is on its way: tell clients only if it does not arrive soon.
      this.switchGraceTimer = setTimeout(
        () => {
          if (!this.active) this.goDown(reason);
        },
        this.opts.switchGraceMs ?? Math.min(1000, this.opts.connectTimeoutMs),
      );
      this.switchGraceTimer.unref();
      return;
    }
    this.goDown(reason);
    this.scheduleReconnect();
  }

  private fail(att: Attempt, reason: string): void {
    att.handle?.cancel();
    this.onEnd(att, reason);
  }

  private retire(att: Attempt): void {
    att.done = true;
    if (att.settleTimer) clearTimeout(att.settleTimer);
    att.handle?.cancel();
  }

  private goDown(reason: string): void {
    if (!this.live) return;
    this.setLive(false);
    this.opts.logger.warn({ reason }, 'upstream stream broken: clients told, reconnecting');
    this.listener.onDown(reason);
  }

  private setLive(live: boolean): void {
    if (this.live === live) return;
    this.live = live;
    this.opts.metrics?.liveChanged(live);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer || this.candidate) return;
    const delay = fullJitterDelay(
      this.failures++,
      this.opts.backoffInitialMs,
      this.opts.backoffMaxMs,
      this.opts.random,
    );
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped && !this.candidate && !this.active) this.openAttempt();
    }, delay);
    this.reconnectTimer.unref();
  }

  private scheduleRotation(): void {
    if (this.rotateTimer) clearTimeout(this.rotateTimer);
    this.rotateTimer = undefined;
    if (this.opts.rotateIntervalMs <= 0 || this.stopped) return;
    // +-10% so that many gateways do not rotate in step.
    const jitter = 0.9 + 0.2 * (this.opts.random ?? Math.random)();
    this.rotateTimer = setTimeout(
      () => this.rotate('interval'),
      Math.round(this.opts.rotateIntervalMs * jitter),
    );
    this.rotateTimer.unref();
  }

  private checkSilence(): void {
    const a = this.active;
    if (!a || this.stopped) return;
    const limit = this.opts.heartbeatTimeoutFactor * a.heartbeatMs;
    if (Date.now() - a.lastMessageMs > limit) this.fail(a, `no message for ${limit} ms`);
  }

  private replaceMirror(quotes: readonly Quote[], epoch: number): void {
    const rejected = this.mirror.replaceAll(quotes, epoch);
    if (rejected > 0) this.opts.logger.warn({ rejected }, 'snapshot quotes ignored');
  }
}

function epochOf(m: StreamQuotesResponse): number {
  return m.epoch || m.quotes[0]?.epoch || 0;
}
