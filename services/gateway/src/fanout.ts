// Fan-out of quote updates to WebSocket clients (docs/gateway.md "Fan-out").
//
//  - Updates go into one log, in order. A *pass* walks over every client in
//    slices of `sliceClients`, yielding to the event loop between slices, and
//    sends each client everything its subscription covers from its cursor in
//    the log to the log's end at that moment; then its cursor is the end. So
//    an update that arrives halfway through a pass still reaches the clients
//    the pass has not visited yet, in this pass: a client waits at most about
//    one pass for any update, where a flush of all clients at once would make
//    it wait for the rest of the current flush and then for its place in the
//    next one.
//  - Clients with the same subscription (the same symbol set, or "*") share a
//    group; each group keeps the positions of the logged updates it covers
//    (found through a symbol -> groups index when they arrive), and the
//    clients of a group at the same cursor share ONE frame, built once, the
//    same bytes to each: serialization cost follows groups, not clients.
//    Within a pass that is one frame per group and slice once updates arrive
//    mid-pass (each slice sees a later log end).
//  - Passes are paced by FlushPacer: at once when idle, on a window that
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
  /** One pass over all clients: its own duration, the window in force after it, the updates it completed. */
  flushed(durationMs: number, windowMs: number, updates: number): void;
  /** Now minus the quote's event time when the pass that sent it to every client finished, in ms. */
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
  /** Updates held in the log at most (reached: a whole pass runs at once). */
  maxPending: number;
  /** Clients served between two turns of the event loop (default 128). */
  sliceClients?: number;
  metrics?: FanoutMetrics;
  /** Wall clock (ms): event-time latency and lag timers. */
  now?: () => number;
  /** CPU time the process has used (ms): what a pass cost, for the batching window. */
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
  /** The logged updates this group covers, in order, and their log positions (ascending). */
  updates: QuoteUpdate[] = [];
  positions: number[] = [];
  /** This group's updates in [from, end) of the log, and their frame once a member needed it. */
  cache: GroupSlice | undefined;
  constructor(
    readonly key: string,
    readonly all: boolean,
    readonly symbols: ReadonlySet<string>,
  ) {}

  covers(symbol: string): boolean {
    return this.all || this.symbols.has(symbol);
  }
}

/** A group's updates between two log positions, shared by its members at the same cursor. */
interface GroupSlice {
  readonly from: number;
  readonly end: number;
  readonly updates: QuoteUpdate[];
  /** Built by the first member that is sent the slice whole. */
  frame?: OutFrame;
}

/** A pass over all clients in progress. */
interface Pass {
  readonly clients: IterableIterator<FanoutClient>;
  /** Clients left to serve: those present at the start (later ones start at the log's end anyway), so a connect storm cannot stretch a pass. */
  remaining: number;
  /** The log's end when the pass started: every client is sent at least up to here. */
  readonly startEnd: number;
  wallMs: number;
  cpuMs: number;
  frames: number;
  quotes: number;
}

export class FanoutClient {
  readonly symbols = new Set<string>();
  all = false;
  group: Group | undefined;
  /** Position in the fan-out log up to which this client was sent (or deferred) its updates. */
  cursor = 0;
  /** Set while the client is behind: latest update per symbol. */
  backlog: Map<string, BacklogItem> | undefined;
  laggingSince = 0;
  /** Symbol -> seq sent in a snapshot since this client's last turn: older logged updates are not sent. */
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
  /** Updates not yet sent to every client; log[0] is at position logBase. */
  private log: QuoteUpdate[] = [];
  private logBase = 0;
  /** Updates before this position have been reported to tickToSend. */
  private reportedTo = 0;
  private pass: Pass | undefined;
  /** The next slice of the pass in progress, or (no pass) the start of the next pass. */
  private passTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly pacer: FlushPacer;
  private readonly sliceClients: number;
  private readonly laggards = new Set<FanoutClient>();
  private laggardTimer: NodeJS.Timeout | undefined;
  private readonly freshClients = new Set<FanoutClient>();
  private readonly now: () => number;
  private readonly cpuClock: () => number;
  private readonly measureCpu: boolean;
  private readonly startPassBound = () => {
    this.passTimer = undefined;
    this.startPass();
  };
  private readonly stepBound = () => {
    this.passTimer = undefined;
    this.step();
  };

  constructor(
    private readonly source: QuoteSource,
    private readonly opts: FanoutOptions,
  ) {
    this.pacer = new FlushPacer({ factor: opts.windowFactor, maxWindowMs: opts.maxWindowMs });
    this.sliceClients = Math.max(1, opts.sliceClients ?? 128);
    this.now = opts.now ?? Date.now;
    this.cpuClock = opts.cpuClock ?? processCpuMs;
    // With factor 0 the window is 0 whatever a pass costs: no clock reads.
    this.measureCpu = opts.windowFactor > 0;
  }

  /** The log position after the newest update. */
  private get end(): number {
    return this.logBase + this.log.length;
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

  /** Updates not yet sent to every client. */
  get pendingCount(): number {
    return this.log.length;
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
    // A first subscription starts at the log's end: its snapshot covers the
    // rest. A wider one keeps its cursor: what is logged for the symbols it
    // had is still owed, and the fresh map filters the added ones.
    const keepsCursor = c.group !== undefined;
    if (!keepsCursor) c.cursor = this.end;
    this.regroup(c);
    const { entries, missing } = this.snapshotEntries(newAll, added);
    if (keepsCursor && entries.length > 0) {
      const fresh = (c.fresh ??= new Map<string, number>());
      for (const e of entries) fresh.set(e.symbol, e.seq);
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

  /** Logs updates for the next pass (in order; each is delivered, never merged, unless a client is slow). */
  publish(updates: readonly QuoteUpdate[]): void {
    if (updates.length === 0) return;
    for (const u of updates) {
      const position = this.end;
      this.log.push(u);
      if (this.allGroup) this.logTo(this.allGroup, u, position);
      const groups = this.bySymbol.get(u.symbol);
      if (groups) for (const g of groups) this.logTo(g, u, position);
    }
    if (this.log.length >= this.opts.maxPending) {
      // Bounded: send everything now instead of holding more.
      this.flush();
      return;
    }
    this.schedule();
  }

  /**
   * The upstream state was replaced (new epoch, or recovery after a break):
   * logged updates are obsolete; every subscribed client gets a
   * `resnapshot` notice and then a snapshot of all its symbols.
   */
  resync(reason: ResnapshotReason): void {
    this.clearLog();
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

  /** Sends every logged update to every client now, in one go (tests, shutdown, a full log). */
  flushNow(): void {
    this.flush();
  }

  stop(): void {
    this.cancelTimer();
    this.pass = undefined;
    if (this.laggardTimer) clearInterval(this.laggardTimer);
    this.laggardTimer = undefined;
    this.clearLog();
  }

  // ---- internals -----------------------------------------------------------

  /** Drops every logged update; positions go on from where they were, so no cursor or cache can match a new update to an old position. */
  private clearLog(): void {
    this.reportedTo = this.logBase = this.end;
    this.log = [];
    for (const g of this.groups.values()) this.clearGroupLog(g);
  }

  private clearGroupLog(g: Group): void {
    g.updates = [];
    g.positions = [];
    g.cache = undefined;
  }

  private logTo(g: Group, u: QuoteUpdate, position: number): void {
    g.updates.push(u);
    g.positions.push(position);
  }

  private cancelTimer(): void {
    if (!this.passTimer) return;
    clearTimeout(this.passTimer as NodeJS.Timeout);
    clearImmediate(this.passTimer as NodeJS.Immediate);
    this.passTimer = undefined;
  }

  /** A pass is due: now when idle, after the pacer's window under load; nothing while one runs. */
  private schedule(): void {
    if (this.pass || this.passTimer) return;
    const delay = this.pacer.delayMs(performance.now());
    this.passTimer = delay < 1 ? setImmediate(this.startPassBound) : setTimeout(this.startPassBound, delay);
  }

  /** Finishes the pass in progress and runs one more over all clients, without yielding. */
  private flush(): void {
    this.cancelTimer();
    if (this.pass) this.drain(this.pass);
    if (this.log.length > 0) {
      this.pass = this.newPass();
      this.drain(this.pass);
    }
    // endPass scheduled a next pass for what arrived meanwhile; nothing is left.
    this.cancelTimer();
  }

  private drain(pass: Pass): void {
    while (this.pass === pass) this.slice(pass, Infinity);
  }

  private newPass(): Pass {
    return {
      clients: this.clients.values(),
      remaining: this.clients.size,
      startEnd: this.end,
      wallMs: 0,
      cpuMs: 0,
      frames: 0,
      quotes: 0,
    };
  }

  private startPass(): void {
    if (this.pass || this.log.length === 0) return;
    this.pass = this.newPass();
    this.step();
  }

  /** One slice of the pass, then a turn of the event loop (new updates join the rest of this pass). */
  private step(): void {
    const pass = this.pass;
    if (!pass) return;
    this.slice(pass, this.sliceClients);
    if (this.pass === pass) this.passTimer = setImmediate(this.stepBound);
  }

  /** Serves up to `count` clients of the pass; ends the pass when none are left. */
  private slice(pass: Pass, count: number): void {
    const started = performance.now();
    const cpuStarted = this.measureCpu ? this.cpuClock() : 0;
    const nowMs = this.now();
    let done = false;
    for (let n = 0; n < count; n++) {
      const next = pass.remaining > 0 ? pass.clients.next() : undefined;
      if (!next || next.done) {
        done = true;
        break;
      }
      pass.remaining--;
      this.serve(next.value, pass, nowMs);
    }
    pass.wallMs += performance.now() - started;
    if (this.measureCpu) pass.cpuMs += this.cpuClock() - cpuStarted;
    if (done) this.endPass(pass);
  }

  /** Sends one client what its subscription covers from its cursor to the log's end. */
  private serve(c: FanoutClient, pass: Pass, nowMs: number): void {
    const g = c.group;
    const end = this.end;
    const from = Math.max(c.cursor, this.logBase);
    c.cursor = end;
    if (!g || from >= end) return;
    if (g.cache?.from !== from || g.cache.end !== end)
      g.cache = { from, end, updates: this.updatesFor(g, from) };
    const slice = g.cache;
    if (slice.updates.length === 0) return;
    const fresh = c.fresh;
    if (fresh) {
      // Its cursor is now past its snapshot: the filter is needed this once.
      c.fresh = undefined;
      this.freshClients.delete(c);
    }
    const n = this.deliver(c, slice, fresh, nowMs);
    if (n > 0) {
      pass.frames++;
      pass.quotes += n;
    }
  }

  /** The group's updates from log position `from` on, in order (a copy: frames keep their quotes, the log grows). */
  private updatesFor(g: Group, from: number): QuoteUpdate[] {
    return g.updates.slice(firstAtOrAfter(g.positions, from));
  }

  private endPass(pass: Pass): void {
    this.pass = undefined;
    // Every client has been sent everything up to the pass's start.
    this.pacer.record(performance.now(), pass.wallMs, this.measureCpu ? pass.cpuMs : undefined);
    const m = this.opts.metrics;
    if (m) {
      m.sent(pass.frames, pass.quotes);
      m.flushed(pass.wallMs, this.pacer.windowMs, Math.max(0, pass.startEnd - this.reportedTo));
      const doneMs = this.now();
      for (let p = Math.max(this.reportedTo, this.logBase); p < pass.startEnd; p++)
        m.tickToSend(doneMs - this.log[p - this.logBase]!.ts);
    }
    this.reportedTo = Math.max(this.reportedTo, pass.startEnd);
    const sent = pass.startEnd - this.logBase;
    if (sent > 0) {
      this.log = this.log.slice(sent);
      this.logBase = pass.startEnd;
      for (const g of this.groups.values()) {
        const k = firstAtOrAfter(g.positions, pass.startEnd);
        if (k > 0) {
          g.updates = g.updates.slice(k);
          g.positions = g.positions.slice(k);
        }
        // The next pass builds new frames: do not hold this one's bytes.
        g.cache = undefined;
      }
    }
    if (this.laggards.size > 0) this.sweep();
    if (this.log.length > 0) this.schedule();
  }

  /** Sends a group's updates to one client (the group's shared frame when it can), or defers them when it is behind. Returns quotes sent. */
  private deliver(
    c: FanoutClient,
    slice: GroupSlice,
    fresh: Map<string, number> | undefined,
    nowMs: number,
  ): number {
    const t = c.transport;
    if (!t.isOpen) return 0;
    let updates = slice.updates;
    let shared = true;
    if (fresh) {
      // Just subscribed: drop what its snapshot already covered.
      const kept = updates.filter((u) => {
        const seen = fresh.get(u.symbol);
        return seen === undefined || u.seq > seen;
      });
      if (kept.length !== updates.length) {
        if (kept.length === 0) return 0;
        updates = kept;
        shared = false;
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
    const out = shared ? (slice.frame ??= OutFrame.quotes(updates)) : OutFrame.quotes(updates);
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
      // The snapshot covers everything logged so far.
      c.cursor = this.end;
      c.fresh = undefined;
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
      // What is logged is owed to clients that move here with an older cursor.
      for (let i = 0; i < this.log.length; i++)
        if (g.covers(this.log[i]!.symbol)) this.logTo(g, this.log[i]!, this.logBase + i);
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

/** The first index of the ascending `positions` whose value is at least `from` (positions.length if none). */
function firstAtOrAfter(positions: readonly number[], from: number): number {
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (positions[mid]! < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
