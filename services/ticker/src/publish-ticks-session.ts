// One PublishTicks stream: producers send ticks with producer_id and strictly
// increasing producer_seq; the server answers with rejections (seq, field,
// reason) and coalesced cumulative acks ("stored through seq N"). A bad tick
// never ends the stream. Backpressure: the stream is read only while this
// session has room (at most maxInFlight unacknowledged ticks, a bounded
// rejection outbox, room in the partition queues); otherwise HTTP/2 flow
// control holds the producer. The stream ends with UNAVAILABLE when NATS is
// down, or its ack does not move (nothing stored, or a tick held back), for
// longer than unavailableAfterMs.
import type { Tick, PublishTicksRequest, PublishTicksResponse, Rejection } from '@tickmesh/kit/proto';
import { ResourceExhaustedError, UnavailableError, MalformedMessage, type StreamSink } from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import { AckTracker, type TrackedTick } from './ack-tracker.js';
import { BoundedDeque } from './bounded-deque.js';
import type { TickerMetrics } from './metrics.js';
import { producerIdProblem } from './producer-ids.js';
import type { TickPublisher } from './tick-publisher.js';
import { TickRefusedError } from './lanes.js';
import { bandProblem, validateTick, type RejectReason, type ValidationRules } from './tick-validation.js';

export interface SessionOptions {
  publisher: TickPublisher;
  rules: ValidationRules;
  metrics?: TickerMetrics;
  logger?: Logger;
  /** NATS (with JetStream) answers and the publisher is not failing. */
  isAvailable: () => boolean;
  maxInFlight: number;
  ackIntervalMs: number;
  unavailableAfterMs: number;
  /** How often the availability watchdog looks (default 250 ms). */
  watchdogIntervalMs?: number;
}

/** Resolves everyone waiting at the next notify(). */
class Signal {
  private waiters: Array<() => void> = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export class PublishTicksSession {
  private producerId: string | undefined;
  private lastSeq = 0;
  private readonly tracker: AckTracker;
  private readonly outbox: BoundedDeque<Rejection>;
  private readonly outboxRoom: number;
  private lastSentAck = 0;
  private unavailableSince: number | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing = false;
  private flushAgain = false;
  private readonly progress = new Signal();
  private failure: UnavailableError | ResourceExhaustedError | undefined;
  private readonly failed = new Signal();
  private readonly stop = new AbortController();

  constructor(
    private readonly opts: SessionOptions,
    private readonly sink: StreamSink<PublishTicksResponse>,
  ) {
    this.tracker = new AckTracker(opts.maxInFlight);
    // Rejections waiting to be written: bounded like the in-flight ticks. New ticks wait
    // below outboxRoom; the headroom above it is for in-flight ticks the lane check refuses.
    this.outboxRoom = Math.max(16, Math.min(opts.maxInFlight, 10_000));
    this.outbox = new BoundedDeque(this.outboxRoom + opts.maxInFlight);
  }

  async run(requests: AsyncIterable<PublishTicksRequest | MalformedMessage>): Promise<void> {
    if (!this.opts.isAvailable()) throw new UnavailableError('NATS JetStream is unavailable: retry later');
    const exhausted = this.opts.publisher.exhausted;
    if (exhausted) throw new ResourceExhaustedError(exhausted);
    const signal = AbortSignal.any([this.sink.signal, this.stop.signal]);
    signal.addEventListener('abort', () => this.progress.notify(), { once: true });
    const watchdog = setInterval(() => this.watch(), this.opts.watchdogIntervalMs ?? 250);
    const failure = this.failed.wait().then(() => {
      throw this.failure;
    });
    const work = this.consume(requests, signal);
    try {
      await Promise.race([work, failure]);
    } finally {
      clearInterval(watchdog);
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.stop.abort();
      this.progress.notify();
      // The loser of the race settles later (its stream is gone): nothing to report.
      work.catch(() => undefined);
      failure.catch(() => undefined);
    }
  }

  private async consume(
    requests: AsyncIterable<PublishTicksRequest | MalformedMessage>,
    signal: AbortSignal,
  ): Promise<void> {
    for await (const req of untilAborted(requests, signal)) {
      if (req instanceof MalformedMessage) {
        await this.reject(0, 'request', 'malformed', `malformed message: ${req.reason}`, false, signal);
        continue;
      }
      if (!req.tick && req.ticks.length === 0) {
        await this.reject(0, 'tick', 'missing_tick', 'a request carries tick or ticks', false, signal);
        continue;
      }
      if (req.tick) await this.accept(req.tick, signal);
      for (const t of req.ticks) await this.accept(t, signal);
    }
    // The producer half-closed: answer for everything it sent, then end OK.
    this.scheduleFlush(true);
    while (!signal.aborted && (this.tracker.inFlight > 0 || this.outbox.length > 0 || this.flushing)) {
      await this.progress.wait();
    }
    await this.flush();
  }

  private async accept(tick: Tick, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && (this.tracker.full || this.outbox.length >= this.outboxRoom))
      await this.progress.wait();
    if (signal.aborted) return;
    const seq = tick.producerSeq;

    const idProblem = producerIdProblem(tick.producerId);
    if (idProblem)
      return this.reject(seq, 'tick.producer_id', 'producer_id_invalid', idProblem, false, signal);
    if (this.producerId === undefined) this.producerId = tick.producerId;
    else if (tick.producerId !== this.producerId) {
      return this.reject(
        seq,
        'tick.producer_id',
        'producer_changed',
        `this stream belongs to producer ${this.producerId}: open one stream per producer`,
        false,
        signal,
      );
    }
    if (!Number.isSafeInteger(seq) || seq <= 0) {
      return this.reject(seq, 'tick.producer_seq', 'producer_seq_invalid', 'must be > 0', false, signal);
    }
    if (seq <= this.lastSeq) {
      return this.reject(
        seq,
        'tick.producer_seq',
        'seq_not_increasing',
        `not increasing: must be > ${this.lastSeq}, the previous seq on this stream`,
        false,
        signal,
      );
    }
    this.lastSeq = seq;

    const result = validateTick(tick, this.opts.rules);
    if (!result.ok) {
      const p = result.problem;
      return this.reject(seq, p.field, p.reason, p.message, true, signal);
    }
    let band;
    try {
      band = bandProblem(result.tick, result.instrument, this.opts.rules);
      if (band instanceof Promise) band = await band; // only when the reference is not cached
    } catch (err) {
      // No reference for today (price-cache unreachable): the tick cannot be judged, so the
      // stream ends with UNAVAILABLE and the producer resends from its last ack.
      this.fail(err instanceof UnavailableError ? err : new UnavailableError('price band cannot be checked'));
      return;
    }
    if (band) return this.reject(seq, band.field, band.reason, band.message, true, signal);
    const exhausted = this.opts.publisher.exhausted;
    if (exhausted) {
      // Ends the stream: the producer resends what is not acknowledged once ingest reopens.
      this.fail(new ResourceExhaustedError(exhausted));
      return;
    }
    const entry = this.tracker.track(seq)!; // room was checked above
    const done = (err: Error | undefined) => this.completed(entry, err);
    const publisher = this.opts.publisher;
    try {
      while (!publisher.trySubmit(result.tick, done))
        await publisher.waitForSpace(result.tick.symbol, signal);
    } catch (err) {
      // Aborted while waiting for room (stream gone) or the publisher closed (shutdown).
      if (signal.aborted) return;
      throw err;
    }
  }

  /** A rejection goes out before any ack that covers it; `track` lets the ack move past its seq. */
  private async reject(
    seq: number,
    field: string,
    reason: RejectReason,
    message: string,
    track: boolean,
    signal: AbortSignal,
  ): Promise<void> {
    this.opts.metrics?.reject(reason);
    while (!signal.aborted && this.outbox.length >= this.outboxRoom) await this.progress.wait();
    if (signal.aborted) return;
    this.outbox.push({ producerSeq: Number.isSafeInteger(seq) && seq > 0 ? seq : 0, field, reason: message });
    if (track) this.tracker.trackDone(seq);
    this.scheduleFlush(false);
  }

  private completed(entry: TrackedTick, err: Error | undefined): void {
    if (err instanceof TickRefusedError) {
      // Refused by the lane check (counted there): a rejection, and the ack moves past it.
      this.outbox.push({ producerSeq: entry.seq, field: err.field, reason: err.reason });
      entry.done = true;
      this.scheduleFlush(false);
      return;
    }
    if (err) {
      // The publisher gave up on it (shutdown): never acknowledged, so the producer resends it.
      this.fail(err instanceof UnavailableError ? err : new UnavailableError('tick not stored'));
      return;
    }
    entry.done = true;
    this.scheduleFlush(false);
  }

  private watch(): void {
    const now = Date.now();
    if (this.opts.isAvailable()) this.unavailableSince = undefined;
    else this.unavailableSince ??= now;
    const bound = this.opts.unavailableAfterMs;
    if (this.unavailableSince !== undefined && now - this.unavailableSince >= bound) {
      this.fail(new UnavailableError(`NATS JetStream unavailable for ${bound} ms: resend from the last ack`));
    } else if (this.tracker.inFlight > 0) {
      // Acks move once per flush (every ackIntervalMs): never judge them on a shorter bound.
      const ackBound = Math.max(bound, 4 * this.opts.ackIntervalMs);
      // Whatever holds the ack back (nothing gets stored, a tick whose store never
      // completes while others do, an ack the transport will not take), the
      // producer's way out is the same: a new stream and a resend from the last ack.
      if (now - this.tracker.lastMoveMs >= ackBound)
        this.fail(new UnavailableError(`no tick acknowledged for ${ackBound} ms: resend from the last ack`));
    }
  }

  private fail(err: UnavailableError | ResourceExhaustedError): void {
    if (this.failure) return;
    this.opts.logger?.warn(
      {
        producerId: this.producerId,
        reason: err.message,
        ackedThrough: this.tracker.ackedThrough,
        inFlight: this.tracker.inFlight,
      },
      'PublishTicks stream ended by the server',
    );
    this.failure = err;
    this.failed.notify();
  }

  private scheduleFlush(now: boolean): void {
    if (this.flushTimer) {
      if (!now) return;
      clearTimeout(this.flushTimer);
    }
    const run = () => {
      this.flushTimer = undefined;
      void this.flush();
    };
    this.flushTimer =
      now || this.opts.ackIntervalMs === 0 ? setTimeout(run, 0) : setTimeout(run, this.opts.ackIntervalMs);
  }

  /** Writes pending rejections, then the cumulative ack, honouring the transport's backpressure. */
  private async flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        while (this.outbox.length > 0) {
          if (this.stop.signal.aborted) return;
          const rejection = this.outbox.shift(1)[0]!;
          this.progress.notify();
          if (!this.sink.write({ rejection, ack: undefined })) await this.sink.drained();
        }
        if (this.stop.signal.aborted) return;
        this.tracker.advance();
        // Rejections queued while we waited for the transport must go out before an ack covering them.
        if (this.outbox.length > 0) {
          this.flushAgain = true;
          continue;
        }
        const through = this.tracker.ackedThrough;
        if (through > this.lastSentAck) {
          this.lastSentAck = through;
          this.progress.notify();
          const ack = { producerId: this.producerId ?? '', storedThroughSeq: through };
          if (!this.sink.write({ ack, rejection: undefined })) await this.sink.drained();
        }
      } while (this.flushAgain || this.outbox.length > 0);
    } finally {
      this.flushing = false;
      this.progress.notify();
    }
  }
}

/**
 * Iterates `source` until `signal` aborts, then returns at once (and closes
 * the source) even if the source is waiting for a message that never comes.
 * The abort listener is added and removed per message: racing every next()
 * against one long-lived promise would pin each message in memory until the
 * stream ends.
 */
export async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  try {
    while (!signal.aborted) {
      const next = await new Promise<IteratorResult<T> | undefined>((resolve, reject) => {
        const onAbort = () => resolve(undefined);
        signal.addEventListener('abort', onAbort, { once: true });
        it.next().then(
          (r) => {
            signal.removeEventListener('abort', onAbort);
            resolve(r);
          },
          (err: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      });
      if (next === undefined || next.done) return;
      yield next.value;
    }
  } finally {
    // Fire and forget: a source stuck in next() may never settle its return() either.
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}
