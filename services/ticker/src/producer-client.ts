// A producer's side of IngestService.PublishTicks, with the resend logic the
// protocol expects: every tick sent stays in a bounded window until a
// cumulative ack covers it; when the stream breaks, the client reconnects
// with backoff and jitter and resends the whole window, in order, on the new
// stream. The server and the price-cache make the resend safe (each tick is
// applied once), so nothing acknowledged is lost and nothing is applied twice.
// A stream that stays open but acknowledges nothing for ackTimeoutMs while
// ticks wait on it is treated as broken too: the server ends its side after
// INGEST_UNAVAILABLE_AFTER_MS, and this catches what it cannot report.
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import {
  IngestServiceClient,
  type PublishTicksRequest,
  type PublishTicksResponse,
  type Rejection,
} from '@tickmesh/kit/proto';
import type { Tick } from '@tickmesh/kit/proto';
import { createClient } from '@tickmesh/kit';
import { BoundedDeque } from './bounded-deque.js';
import { producerIdProblem, SeqAllocator } from './producer-ids.js';

export interface ProducerClientOptions {
  /** host:port or a dns:/// target of the ticker, or a ready client. */
  target: string | IngestServiceClient;
  producerId: string;
  /** Most unacknowledged ticks; send() waits while the window is full. Default 10000. */
  windowTicks?: number;
  /** Ticks per PublishTicks message. Default 500. */
  maxTicksPerMessage?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /**
   * Ticks written and no ack for this long: the stream is cut and the window
   * resent on a new one. Default 30000. Keep it above the ticker's
   * INGEST_UNAVAILABLE_AFTER_MS (10 s by default), so that the server, which
   * knows why, normally ends a stuck stream first.
   */
  ackTimeoutMs?: number;
  /** Sequence source for ticks sent without producer_seq (time-based by default). */
  seq?: SeqAllocator;
  onRejection?: (rejection: Rejection) => void;
  /** Stream state changes, for logs: 'connected', or 'broken' with the reason. */
  onStream?: (event: 'connected' | 'broken', detail?: string) => void;
}

export type TickInput = Pick<Tick, 'symbol' | 'price'> &
  Partial<Omit<Tick, 'symbol' | 'price' | 'producerId'>>;

export interface ProducerStats {
  sent: number;
  acked: number;
  rejected: number;
  /** Streams opened after the first (each resends the window). */
  reconnects: number;
  /** Ticks written again after a break. */
  resent: number;
}

export class ProducerClient {
  private readonly client: IngestServiceClient;
  private readonly ownsClient: boolean;
  private readonly pending: BoundedDeque<Tick>;
  /** How many ticks at the head of `pending` went out on the current stream. */
  private written = 0;
  private call: ClientDuplexStream<PublishTicksRequest, PublishTicksResponse> | undefined;
  private writing = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private lastSeq = 0;
  private acked = 0;
  private closed = false;
  private everConnected = false;
  private waiters: Array<() => void> = [];
  private readonly seq: SeqAllocator;
  /** When the ack last moved, or the first unacknowledged tick went out on this stream. */
  private lastAckProgressMs = 0;
  private ackWatchdog: NodeJS.Timeout | undefined;
  readonly stats: ProducerStats = { sent: 0, acked: 0, rejected: 0, reconnects: 0, resent: 0 };

  constructor(private readonly opts: ProducerClientOptions) {
    const problem = producerIdProblem(opts.producerId);
    if (problem) throw new Error(`producerId ${problem}`);
    if (typeof opts.target === 'string') {
      this.client = createClient(IngestServiceClient, opts.target, {
        unaryDeadlineMs: 10_000,
        service: 'tickmesh.ingest.v1.IngestService',
      });
      this.ownsClient = true;
    } else {
      this.client = opts.target;
      this.ownsClient = false;
    }
    this.pending = new BoundedDeque(opts.windowTicks ?? 10_000);
    this.seq = opts.seq ?? new SeqAllocator();
  }

  private get ackTimeoutMs(): number {
    return this.opts.ackTimeoutMs ?? 30_000;
  }

  /** Highest seq the server confirmed (stored or rejected). */
  get ackedThrough(): number {
    return this.acked;
  }

  /** Sent ticks not yet covered by an ack. */
  get unacked(): number {
    return this.pending.length;
  }

  /**
   * Queues a tick for sending and returns its producer_seq (assigned when not
   * given; a given one must exceed the previous). Waits while the window is full.
   */
  async send(input: TickInput): Promise<number> {
    if (this.closed) throw new Error('producer client is closed');
    while (this.pending.full) {
      await this.nextChange();
      if (this.closed) throw new Error('producer client is closed');
    }
    let seq = input.producerSeq ?? 0;
    if (seq === 0) seq = this.seq.next();
    else this.seq.advancePast(seq);
    if (seq <= this.lastSeq) throw new Error(`producerSeq ${seq} must be greater than ${this.lastSeq}`);
    this.lastSeq = seq;
    this.pending.push({
      symbol: input.symbol,
      price: input.price,
      size: input.size ?? 0,
      eventTimeMs: input.eventTimeMs ?? 0,
      bid: input.bid,
      ask: input.ask,
      producerId: this.opts.producerId,
      producerSeq: seq,
    });
    this.stats.sent++;
    this.ensureStream();
    this.scheduleWrite();
    return seq;
  }

  /** Resolves when every tick sent so far is acknowledged; rejects after `timeoutMs`. */
  async flush(timeoutMs = 30_000): Promise<void> {
    const target = this.lastSeq;
    const deadline = Date.now() + timeoutMs;
    while (this.acked < target) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `not acknowledged within ${timeoutMs} ms: acked through ${this.acked}, sent through ${target}`,
        );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.nextChange(), new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  /** Ends the stream (flush first if you need the acks) and releases the channel. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.ackWatchdog);
    const call = this.call;
    this.call = undefined;
    if (call) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          call.cancel();
          resolve();
        }, 2000);
        call.on('status', () => {
          clearTimeout(timer);
          resolve();
        });
        call.on('error', () => undefined);
        call.end();
      });
    }
    this.notify();
    if (this.ownsClient) this.client.close();
  }

  /** Cuts the current stream as a network failure would (demos and tests of the resend path). */
  breakStream(): void {
    this.call?.cancel();
  }

  private ensureStream(): void {
    if (this.call || this.reconnectTimer || this.closed) return;
    const call = this.client.publishTicks();
    this.call = call;
    this.written = 0; // a new stream: everything unacknowledged goes out again
    if (this.everConnected) {
      this.stats.reconnects++;
      this.stats.resent += this.pending.length;
    }
    this.everConnected = true;
    this.opts.onStream?.('connected');
    this.ackWatchdog ??= setInterval(() => this.checkAckProgress(), Math.max(20, this.ackTimeoutMs / 4));
    this.ackWatchdog.unref();
    call.on('data', (res: PublishTicksResponse) => this.onResponse(res));
    call.on('drain', () => this.scheduleWrite());
    call.on('error', (err: ServiceError) =>
      this.onBroken(call, `${status[err.code] ?? err.code}: ${err.details}`),
    );
    call.on('status', (s: { code: number; details: string }) => {
      if (s.code === status.OK) this.onBroken(call, 'stream ended by the server');
    });
    this.scheduleWrite();
  }

  private onResponse(res: PublishTicksResponse): void {
    if (res.rejection) {
      this.stats.rejected++;
      this.opts.onRejection?.(res.rejection);
    }
    if (res.ack && res.ack.storedThroughSeq > this.acked) {
      this.acked = res.ack.storedThroughSeq;
      let n = 0;
      while (n < this.pending.length && this.pending.at(n)!.producerSeq <= this.acked) n++;
      this.pending.shift(n);
      this.written = Math.max(0, this.written - n);
      this.stats.acked += n;
      this.attempt = 0; // the server is storing again: next break starts with a short backoff
      this.lastAckProgressMs = Date.now();
      this.notify();
    }
  }

  private checkAckProgress(): void {
    const call = this.call;
    if (!call || this.written === 0) return;
    const silentMs = Date.now() - this.lastAckProgressMs;
    if (silentMs < this.ackTimeoutMs) return;
    this.onBroken(call, `no ack for ${silentMs} ms with ${this.written} ticks written`);
    call.cancel(); // its 'error' finds this.call replaced and is ignored
  }

  private onBroken(
    call: ClientDuplexStream<PublishTicksRequest, PublishTicksResponse>,
    reason: string,
  ): void {
    if (this.call !== call) return;
    this.call = undefined;
    if (this.closed) return;
    this.opts.onStream?.('broken', reason);
    if (this.pending.length === 0) return; // reconnect lazily with the next send
    const min = this.opts.reconnectMinMs ?? 100;
    const max = this.opts.reconnectMaxMs ?? 5000;
    const delay = Math.min(max, min * 2 ** Math.min(this.attempt, 16)) * (0.5 + Math.random() * 0.5);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.ensureStream();
    }, delay);
  }

  private scheduleWrite(): void {
    if (this.writing) return;
    this.writing = true;
    setImmediate(() => {
      this.writing = false;
      this.writePending();
    });
  }

  /** Writes unsent ticks in messages of up to maxTicksPerMessage until the transport says "full". */
  private writePending(): void {
    const call = this.call;
    if (!call) return;
    const max = this.opts.maxTicksPerMessage ?? 500;
    if (this.written === 0 && this.pending.length > 0) this.lastAckProgressMs = Date.now();
    while (this.written < this.pending.length) {
      const n = Math.min(max, this.pending.length - this.written);
      const ticks: Tick[] = new Array<Tick>(n);
      for (let i = 0; i < n; i++) ticks[i] = this.pending.at(this.written + i)!;
      this.written += n;
      if (!call.write({ tick: undefined, ticks })) return; // resumes on 'drain'
    }
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
