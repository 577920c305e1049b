// Fan-out of quote updates to WebSocket clients (docs/gateway.md "Fan-out").
//
//  - Clients with the same subscription (the same symbol set, or "*") share a
//    group. Each flush builds ONE frame per group with that group's pending
//    updates and hands the same bytes to every member: serialization cost
//    follows groups, not clients.
//  - Flushes are paced by FlushPacer: at once when idle, on a window that
//    widens with the fan-out cost under load (several quotes per frame).
//  - Backpressure per client: while its socket backlog is above the high-water
//    mark, or it reads more than maxReadLagMs behind (the transport's ping
//    probe, which sees the bytes waiting in kernel buffers), it gets no
//    frames; its updates are conflated into a map of the latest per symbol
//    (bounded by its symbols) and sent as one catch-up frame,
//    marked conflated where updates were skipped, once it drained. A client
//    that stays behind too long, or whose backlog passes the hard cap, is
//    closed with 4008. Nothing here awaits a client, so one slow client never
//    delays the others.
import type { MirrorEntry, QuoteUpdate } from './quote-mirror.js';
import { conflatedJson, conflatedProto } from './quote-json.js';
import { FlushPacer } from './flush-pacer.js';
import {
  CloseCode,
  heartbeatMessage,
  quotesMessage,
  resnapshotMessage,
  snapshotMessage,
  type ResnapshotReason,
} from './protocol.js';

/** A message ready for the wire; transports may cache a pre-framed copy on it. */
export class OutFrame {
  /** Set by a transport that pre-frames once and writes the same bytes to every socket. */
  wire: Buffer | undefined;
  /** The message as a protobuf ServerMessage, for binary connections (proto-codec.ts), built once. */
  protoPayload: Buffer | undefined;
  /** The conversion failed (the message has no binary form): not retried per recipient. */
  protoFailed = false;
  /** Its pre-framed binary WebSocket frame, built once. */
  protoWire: Buffer | undefined;
  /** For quotes and snapshots: the quotes already encoded, which proto-codec.ts splices. */
  protoQuotes: ProtoQuotes | undefined;
  constructor(readonly payload: Buffer) {}
  static text(text: string): OutFrame {
    return new OutFrame(Buffer.from(text));
  }
  /** A `quotes` message of quotes serialized once in both encodings. */
  static quotes(quotes: readonly QuoteForms[]): OutFrame {
    const f = OutFrame.text(quotesMessage(quotes.map((q) => q.json)));
    f.protoQuotes = { kind: 'quotes', quotes, missing: [] };
    return f;
  }
  /** A `snapshot` message of quotes serialized once in both encodings. */
  static snapshot(quotes: readonly QuoteForms[], missing: readonly string[]): OutFrame {
    const f = OutFrame.text(
      snapshotMessage(
        quotes.map((q) => q.json),
        missing,
      ),
    );
    f.protoQuotes = { kind: 'snapshot', quotes, missing };
    return f;
  }
}

/** A quote in both encodings, serialized once (mirror entries and updates are). */
export interface QuoteForms {
  readonly json: string;
  readonly proto: Uint8Array;
}

/** The quotes of a quotes/snapshot frame, for binary clients (proto-codec.ts splices their bytes). */
export interface ProtoQuotes {
  kind: 'quotes' | 'snapshot';
  quotes: readonly QuoteForms[];
  missing: readonly string[];
}

/** What the fan-out needs from a socket. */
export interface ClientTransport {
  /** Queues one complete text message; never throws, never blocks. */
  send(frame: OutFrame): void;
  /** Bytes queued for this client and not yet written to the network. */
  readonly bufferedAmount: number;
  /** How far behind the client reads what was written, in ms (0: not known to be behind). */
  readonly readLagMs: number;
  readonly isOpen: boolean;
  close(code: number, reason: string): void;
}

/** Where snapshots come from (the QuoteMirror). */
export interface QuoteSource {
  get(symbol: string): MirrorEntry | undefined;
  values(): IterableIterator<MirrorEntry>;
  readonly epoch: number | undefined;
}

export interface FanoutMetrics {
  /** Frames handed to sockets, and the quotes they carried (per recipient). */
  sent(frames: number, quotes: number): void;
  /** Updates that a slow client will never see (replaced by a later one of the same symbol). */
  conflated(count: number): void;
  slowClientClosed(reason: 'timeout' | 'buffer'): void;
  /** One flush: its duration and the window in force after it. */
  flushed(durationMs: number, windowMs: number, updates: number): void;
  /** Now minus the quote's event time when its flush finished, in ms. */
  tickToSend(ms: number): void;
}

export interface FanoutOptions {
  highWaterBytes: number;
  maxBufferBytes: number;
  slowClientTimeoutMs: number;
  /** A client reading more than this far behind gets conflated updates (0: off). */
  maxReadLagMs: number;
  windowFactor: number;
  maxWindowMs: number;
  maxPending: number;
  metrics?: FanoutMetrics;
  /** Wall clock (ms): event-time latency and lag timers. */
  now?: () => number;
  /** CPU time the process has used (ms): what a flush cost, for the batching window. */
  cpuClock?: () => number;
}

/** User + system CPU time of this process, in ms (one getrusage call). */
export function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface BacklogItem {
  update: QuoteUpdate;
  /** An earlier update of this symbol was dropped for this one. */
  replaced: boolean;
}

class Group {
  readonly members = new Set<FanoutClient>();
  /** Updates for this group in the flush being built. */
  batch: QuoteUpdate[] = [];
  constructor(
    readonly key: string,
    readonly all: boolean,
    readonly symbols: ReadonlySet<string>,
  ) {}
}

export class FanoutClient {
  readonly symbols = new Set<string>();
  all = false;
  group: Group | undefined;
  /** Set while the client is behind: latest update per symbol. */
  backlog: Map<string, BacklogItem> | undefined;
  laggingSince = 0;
  /** Symbol -> seq sent in a snapshot since the last flush: older pending updates are not sent. */
  fresh: Map<string, number> | undefined;
  /** A resnapshot owed to a client that was behind when the upstream state was replaced. */
  owedResnapshot: ResnapshotReason | undefined;
  lastSendMs = 0;
  removed = false;

  constructor(readonly transport: ClientTransport) {}

  get subscriptionCount(): number {
    return this.symbols.size + (this.all ? 1 : 0);
  }

  covers(symbol: string): boolean {
    return this.all || this.symbols.has(symbol);
  }
}

export class Fanout {
  private readonly clients = new Set<FanoutClient>();
  private readonly groups = new Map<string, Group>();
  private readonly bySymbol = new Map<string, Set<Group>>();
  private allGroup: Group | undefined;
  private pending: QuoteUpdate[] = [];
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly pacer: FlushPacer;
  private readonly laggards = new Set<FanoutClient>();
  private laggardTimer: NodeJS.Timeout | undefined;
  private readonly freshClients = new Set<FanoutClient>();
  private readonly now: () => number;
  private readonly cpuClock: () => number;
  private readonly measureCpu: boolean;
  private readonly flushBound = () => this.flush();

  constructor(
    private readonly source: QuoteSource,
    private readonly opts: FanoutOptions,
  ) {
    this.pacer = new FlushPacer({ factor: opts.windowFactor, maxWindowMs: opts.maxWindowMs });
    this.now = opts.now ?? Date.now;
    this.cpuClock = opts.cpuClock ?? processCpuMs;
    // With factor 0 the window is 0 whatever a flush costs: no clock reads.
    this.measureCpu = opts.windowFactor > 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  get laggingCount(): number {
    return this.laggards.size;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  get windowMs(): number {
    return this.pacer.windowMs;
  }

  addClient(transport: ClientTransport): FanoutClient {
    const c = new FanoutClient(transport);
    c.lastSendMs = this.now();
    this.clients.add(c);
    return c;
  }

  removeClient(c: FanoutClient): void {
    if (c.removed) return;
    c.removed = true;
    this.leaveGroup(c);
    this.clients.delete(c);
    this.laggards.delete(c);
    this.freshClients.delete(c);
    c.backlog = undefined;
    c.fresh = undefined;
  }

  /**
   * Adds symbols (and/or "*") to a client's subscription and sends it a
   * snapshot of what it newly covers. The caller checked the limits.
   */
  subscribe(c: FanoutClient, symbols: readonly string[], all: boolean): void {
    if (c.removed) return;
    const newAll = all && !c.all;
    const added = symbols.filter((s) => !c.covers(s));
    for (const s of symbols) c.symbols.add(s);
    if (all) c.all = true;
    this.regroup(c);
    const { entries, missing } = this.snapshotEntries(newAll, added);
    const fresh = c.fresh ?? new Map<string, number>();
    for (const e of entries) fresh.set(e.symbol, e.seq);
    if (fresh.size > 0) {
      c.fresh = fresh;
      this.freshClients.add(c);
    }
    this.sendDirect(c, OutFrame.snapshot(entries, missing));
  }

  /** Removes symbols (and/or "*") from a client's subscription. */
  unsubscribe(c: FanoutClient, symbols: readonly string[], all: boolean): void {
    if (c.removed) return;
    for (const s of symbols) c.symbols.delete(s);
    if (all) c.all = false;
    this.regroup(c);
    if (c.backlog) for (const s of c.backlog.keys()) if (!c.covers(s)) c.backlog.delete(s);
    if (c.fresh) for (const s of c.fresh.keys()) if (!c.covers(s)) c.fresh.delete(s);
  }

  /** Queues updates for the next flush (in order; each is delivered, never merged, unless a client is slow). */
  publish(updates: readonly QuoteUpdate[]): void {
    if (updates.length === 0) return;
    for (const u of updates) this.pending.push(u);
    if (this.pending.length >= this.opts.maxPending) {
      // Bounded: flush now instead of holding more.
      this.flush();
      return;
    }
    this.schedule();
  }

  /**
   * The upstream state was replaced (new epoch, or recovery after a break):
   * pending updates are obsolete; every subscribed client gets a
   * `resnapshot` notice and then a snapshot of all its symbols.
   */
  resync(reason: ResnapshotReason): void {
    this.pending = [];
    for (const c of this.freshClients) c.fresh = undefined;
    this.freshClients.clear();
    const notice = OutFrame.text(resnapshotMessage(reason, this.source.epoch));
    for (const g of this.groups.values()) {
      let snapshot: OutFrame | undefined;
      for (const c of g.members) {
        if (c.backlog) {
          // Behind: it gets the resnapshot when it has drained.
          c.backlog.clear();
          c.owedResnapshot = reason;
          continue;
        }
        snapshot ??= this.snapshotOf(g.all, g.symbols);
        this.sendDirect(c, notice);
        this.sendDirect(c, snapshot);
      }
    }
  }

  /** Sends the same message to every client that has a subscription. */
  broadcast(text: string): void {
    const frame = OutFrame.text(text);
    for (const g of this.groups.values()) for (const c of g.members) this.sendDirect(c, frame);
  }

  /** Sends a heartbeat to every client that has received nothing for idleMs. */
  heartbeat(idleMs: number): number {
    const now = this.now();
    let frame: OutFrame | undefined;
    let n = 0;
    for (const c of this.clients) {
      if (now - c.lastSendMs < idleMs || c.backlog) continue;
      frame ??= OutFrame.text(heartbeatMessage(now));
      this.sendDirect(c, frame);
      n++;
    }
    return n;
  }

  /** Sends a message to one client now (replies, snapshots, notices). */
  sendDirect(c: FanoutClient, frame: OutFrame): void {
    if (!c.transport.isOpen) return;
    c.transport.send(frame);
    c.lastSendMs = this.now();
  }

  /** Flushes pending updates now (tests, shutdown). */
  flushNow(): void {
    this.flush();
  }

  stop(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer as NodeJS.Timeout);
      clearImmediate(this.flushTimer as NodeJS.Immediate);
    }
    if (this.laggardTimer) clearInterval(this.laggardTimer);
    this.laggardTimer = undefined;
    this.pending = [];
  }

  // ---- internals -----------------------------------------------------------

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const delay = this.pacer.delayMs(performance.now());
    this.flushTimer = delay < 1 ? setImmediate(this.flushBound) : setTimeout(this.flushBound, delay);
  }

  private flush(): void {
    if (this.flushScheduled) {
      this.flushScheduled = false;
      clearTimeout(this.flushTimer as NodeJS.Timeout);
      clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = undefined;
    }
    const updates = this.pending;
    if (updates.length === 0) return;
    this.pending = [];
    const started = performance.now();
    const cpuStarted = this.measureCpu ? this.cpuClock() : 0;
    const nowMs = this.now();

    // Distribute the updates to the groups that want them, in order.
    const touched: Group[] = [];
    if (this.allGroup) {
      this.allGroup.batch = updates;
      touched.push(this.allGroup);
    }
    for (const u of updates) {
      const groups = this.bySymbol.get(u.symbol);
      if (!groups) continue;
      for (const g of groups) {
        if (g.batch.length === 0) touched.push(g);
        g.batch.push(u);
      }
    }

    let frames = 0;
    let quotes = 0;
    for (const g of touched) {
      const batch = g.batch;
      g.batch = [];
      const frame = OutFrame.quotes(batch);
      for (const c of g.members) {
        const n = this.deliver(c, batch, frame, nowMs);
        if (n > 0) {
          frames++;
          quotes += n;
        }
      }
    }
    for (const c of this.freshClients) c.fresh = undefined;
    this.freshClients.clear();

    const ended = performance.now();
    this.pacer.record(started, ended, this.measureCpu ? this.cpuClock() - cpuStarted : undefined);
    const m = this.opts.metrics;
    if (m) {
      m.sent(frames, quotes);
      m.flushed(ended - started, this.pacer.windowMs, updates.length);
      const doneMs = this.now();
      for (const u of updates) m.tickToSend(doneMs - u.ts);
    }
    if (this.laggards.size > 0) this.sweep();
  }

  /** Sends a group frame to one client, or defers its updates when it is behind. Returns quotes sent. */
  private deliver(c: FanoutClient, batch: QuoteUpdate[], frame: OutFrame, nowMs: number): number {
    const t = c.transport;
    if (!t.isOpen) return 0;
    let updates = batch;
    let out: OutFrame | undefined = frame;
    if (c.fresh) {
      // Just subscribed: drop what its snapshot already covered.
      const fresh = c.fresh;
      const kept = batch.filter((u) => {
        const seen = fresh.get(u.symbol);
        return seen === undefined || u.seq > seen;
      });
      if (kept.length !== batch.length) {
        if (kept.length === 0) return 0;
        updates = kept;
        out = undefined;
      }
    }
    const buffered = t.bufferedAmount;
    if (buffered > this.opts.maxBufferBytes) {
      this.closeSlow(c, 'buffer');
      return 0;
    }
    if (c.backlog || buffered > this.opts.highWaterBytes || this.readsBehind(t, 1)) {
      this.defer(c, updates, nowMs);
      return 0;
    }
    out ??= OutFrame.quotes(updates);
    t.send(out);
    c.lastSendMs = nowMs;
    return updates.length;
  }

  /** Whether the client reads more than `share` x maxReadLagMs behind. */
  private readsBehind(t: ClientTransport, share: number): boolean {
    const max = this.opts.maxReadLagMs;
    return max > 0 && t.readLagMs > max * share;
  }

  private defer(c: FanoutClient, updates: readonly QuoteUpdate[], nowMs: number): void {
    if (!c.backlog) {
      c.backlog = new Map();
      c.laggingSince = nowMs;
      this.laggards.add(c);
      this.startLaggardTimer();
    }
    let dropped = 0;
    for (const u of updates) {
      const prev = c.backlog.get(u.symbol);
      if (prev) dropped++;
      c.backlog.set(u.symbol, { update: u, replaced: prev !== undefined });
    }
    if (dropped > 0) this.opts.metrics?.conflated(dropped);
  }

  /** Sends catch-up frames to laggards that drained; closes those behind too long. Runs on a timer while any lag. */
  sweep(): void {
    const now = this.now();
    const lowWater = this.opts.highWaterBytes / 2;
    for (const c of this.laggards) {
      if (!c.transport.isOpen || c.removed) {
        this.laggards.delete(c);
        continue;
      }
      const buffered = c.transport.bufferedAmount;
      if (buffered > this.opts.maxBufferBytes) {
        this.closeSlow(c, 'buffer');
      } else if (buffered <= lowWater && !this.readsBehind(c.transport, 0.5)) {
        this.catchUp(c);
      } else if (now - c.laggingSince > this.opts.slowClientTimeoutMs) {
        this.closeSlow(c, 'timeout');
      }
    }
    if (this.laggards.size === 0) this.stopLaggardTimer();
  }

  private catchUp(c: FanoutClient): void {
    const backlog = c.backlog;
    c.backlog = undefined;
    this.laggards.delete(c);
    if (c.owedResnapshot) {
      const reason = c.owedResnapshot;
      c.owedResnapshot = undefined;
      this.sendDirect(c, OutFrame.text(resnapshotMessage(reason, this.source.epoch)));
      this.sendDirect(c, this.snapshotOf(c.all, c.symbols));
      return;
    }
    if (!backlog || backlog.size === 0) return;
    const quotes: QuoteForms[] = [];
    for (const { update: u, replaced } of backlog.values()) {
      // Marked conflated where this client skipped updates (unless already so).
      quotes.push(
        replaced && !u.conflated ? { json: conflatedJson(u.json), proto: conflatedProto(u.proto) } : u,
      );
    }
    this.sendDirect(c, OutFrame.quotes(quotes));
    this.opts.metrics?.sent(1, quotes.length);
  }

  private closeSlow(c: FanoutClient, reason: 'timeout' | 'buffer'): void {
    this.opts.metrics?.slowClientClosed(reason);
    this.removeClient(c);
    c.transport.close(CloseCode.tooSlow, 'too slow');
  }

  private startLaggardTimer(): void {
    if (this.laggardTimer) return;
    const every = Math.max(10, Math.min(50, Math.floor(this.opts.slowClientTimeoutMs / 4)));
    this.laggardTimer = setInterval(() => this.sweep(), every);
    this.laggardTimer.unref();
  }

  private stopLaggardTimer(): void {
    if (this.laggardTimer) clearInterval(this.laggardTimer);
    this.laggardTimer = undefined;
  }

  private snapshotOf(all: boolean, symbols: Iterable<string>): OutFrame {
    const { entries, missing } = this.snapshotEntries(all, symbols);
    return OutFrame.snapshot(entries, missing);
  }

  /** The mirror's entries for everything (all) or for these symbols, and the symbols it has none for. */
  private snapshotEntries(
    all: boolean,
    symbols: Iterable<string>,
  ): { entries: MirrorEntry[]; missing: string[] } {
    if (all) return { entries: [...this.source.values()], missing: [] };
    const entries: MirrorEntry[] = [];
    const missing: string[] = [];
    for (const s of symbols) {
      const e = this.source.get(s);
      if (e) entries.push(e);
      else missing.push(s);
    }
    return { entries, missing };
  }

  private regroup(c: FanoutClient): void {
    const key = c.all ? '*' : [...c.symbols].sort().join(',');
    if (c.group?.key === key) return;
    this.leaveGroup(c);
    if (!c.all && c.symbols.size === 0) return;
    let g = this.groups.get(key);
    if (!g) {
      g = new Group(key, c.all, c.all ? new Set() : new Set(c.symbols));
      this.groups.set(key, g);
      if (g.all) this.allGroup = g;
      else
        for (const s of g.symbols) {
          let set = this.bySymbol.get(s);
          if (!set) this.bySymbol.set(s, (set = new Set()));
          set.add(g);
        }
    }
    g.members.add(c);
    c.group = g;
  }

  private leaveGroup(c: FanoutClient): void {
    const g = c.group;
    if (!g) return;
    c.group = undefined;
    g.members.delete(c);
    if (g.members.size > 0) return;
    this.groups.delete(g.key);
    if (g === this.allGroup) this.allGroup = undefined;
    for (const s of g.symbols) {
      const set = this.bySymbol.get(s);
      if (!set) continue;
      set.delete(g);
      if (set.size === 0) this.bySymbol.delete(s);
    }
  }
}
