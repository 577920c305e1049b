// The path from accepted tick to JetStream, shared by the ingest API, the
// simulator and the benchmark.
//
// One bounded FIFO per partition (bounded in ticks: when it is full,
// trySubmit says no and producers wait, so a slow or absent NATS pushes back
// instead of growing memory) and one publisher loop per partition. Each loop
// takes the head run of its queue (ticks of one producer in strictly
// increasing producer_seq, up to maxBatchTicks), has the lane check judge it
// (lanes.ts: resends of stored ticks are answered as duplicates, lower seqs
// refused), publishes the rest as one TickBatch message on the producer's
// lane subject, whose Nats-Msg-Id names the producer, partition and seq
// range, waits for the ack, and only then takes the next run. A failed
// publish is retried with the same ticks until JetStream stores them: never
// skipped, never overtaken. That is the ordering the price-cache relies on
// (packages/kit/src/ticks/contract.ts). Batching comes for free: ticks that
// arrive while a partition's publish is in flight form its next batch.
import type { Tick } from '@tickmesh/kit/proto';
import { UnavailableError, batchMessageId, encodeBatch, partitionOf, tickSubject } from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import { BoundedDeque } from './bounded-deque.js';
import { LaneConflictError, TickRefusedError, type LaneBook, type LanePlan } from './lanes.js';
import type { TickerMetrics } from './metrics.js';

export interface StoreResult {
  /** Stream sequence of the message holding the tick. */
  streamSeq: number;
  /** JetStream had already stored this message (a retried publish). */
  duplicate: boolean;
}

/** Called once per tick: stored (result) or given up on at close (error). */
export type TickCallback = (error: Error | undefined, result: StoreResult | undefined) => void;

/**
 * Publishes one message with a message id (and, on a lane, the stream seq of
 * the lane's last message, 0 for none) and resolves with JetStream's ack;
 * rejects on failure or timeout, with LaneConflictError when the lane moved on.
 */
export type PublishFn = (
  subject: string,
  data: Uint8Array,
  msgId: string,
  expectedLastSubjectSeq?: number,
) => Promise<StoreResult>;

export interface PublisherOptions {
  partitions: number;
  maxBatchTicks: number;
  /** Ticks per partition queue, in-flight batch included. */
  queueTicks: number;
  retryMinMs: number;
  retryMaxMs: number;
  publish: PublishFn;
  metrics?: TickerMetrics;
  logger?: Logger;
  /** For the jitter of retry delays (tests pass a fixed one). */
  random?: () => number;
  /** The lane check (lanes.ts); without it, or while not enabled, batches go to `ticks.<partition>`. */
  lanes?: { book: LaneBook; enabled: () => boolean };
  /** Closes intake while it gives a reason (retention-guard.ts); calls onReopen's callback when it opens again. */
  gate?: { readonly reason: string | undefined; onReopen(f: () => void): void; spend?(bytes: number): void };
}

/** What JetStream stores per message beside its data, subject and message id (headers, index), roughly. */
const MESSAGE_OVERHEAD_BYTES = 64;

/** Lane conflicts retried at once before the usual backoff applies. */
const MAX_IMMEDIATE_CONFLICTS = 3;

interface Entry {
  tick: Tick;
  done: TickCallback | undefined;
}

/** What an in-flight publish resolves to when retryNow() cut it short. */
const RETRY_NOW = Symbol('retry now');

class PublisherClosedError extends UnavailableError {
  constructor() {
    super('the ticker is shutting down: tick not stored');
  }
}

class Lane {
  readonly queue: BoundedDeque<Entry>;
  /** Resolvers of producers waiting for room. */
  private spaceWaiters: Array<() => void> = [];
  private wake: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  /** True after the last publish attempt of this lane failed (cleared by a success). */
  failing = false;
  running: Promise<void> | undefined;

  constructor(
    readonly partition: number,
    capacity: number,
  ) {
    this.queue = new BoundedDeque(capacity);
  }

  notifyWork(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  waitForWork(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Resolves at the next removal from the queue; rejects (and forgets the waiter) when `signal` aborts. */
  waitForSpace(signal: AbortSignal | undefined): Promise<void> {
    return waitInList(() => this.spaceWaiters, signal);
  }

  notifySpace(): void {
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiters) w();
    if (this.queue.length === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of idle) w();
    }
  }

  waitForIdle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

export class TickPublisher {
  private readonly lanes: Lane[];
  private accepting = true;
  private abandoned = false;
  private readonly abandon = new AbortController();
  private readonly random: () => number;
  /**
   * Aborted (and replaced) by retryNow(): a lane holding an aborted one stops
   * waiting for its publish or its backoff, and starts the backoff over.
   */
  private reconnected = new AbortController();
  private readonly closeHooks: Array<() => void> = [];
  private reopenWaiters: Array<() => void> = [];

  constructor(private readonly opts: PublisherOptions) {
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1)
      throw new RangeError('partitions must be >= 1');
    if (opts.maxBatchTicks < 1) throw new RangeError('maxBatchTicks must be >= 1');
    this.random = opts.random ?? Math.random;
    this.lanes = Array.from({ length: opts.partitions }, (_, p) => new Lane(p, opts.queueTicks));
    opts.metrics?.bindQueueDepth(() => this.queued);
    opts.gate?.onReopen(() => this.wakeReopenWaiters());
    for (const lane of this.lanes) {
      lane.running = this.run(lane).catch((err: unknown) => {
        // run() handles publish errors itself; reaching here is a bug, so say so loudly.
        opts.logger?.error({ err, partition: lane.partition }, 'partition publisher stopped unexpectedly');
      });
    }
  }

  partitionOf(symbol: string): number {
    return partitionOf(symbol, this.opts.partitions);
  }

  /** Ticks queued or in flight, over all partitions. */
  get queued(): number {
    let n = 0;
    for (const lane of this.lanes) n += lane.queue.length;
    return n;
  }

  /** True while some partition's latest publish attempt failed (NATS down, stream missing, timeouts). */
  get failing(): boolean {
    return this.lanes.some((l) => l.failing);
  }

  get closed(): boolean {
    return !this.accepting;
  }

  /** Why intake is closed for now (the stream is near deleting unapplied ticks), or undefined. */
  get exhausted(): string | undefined {
    return this.opts.gate?.reason;
  }

  /**
   * Queues a validated tick (producerId and producerSeq set) for its
   * partition. Returns false when that partition's queue is full: wait with
   * waitForSpace() and try again. Throws UnavailableError after close().
   */
  trySubmit(tick: Tick, done?: TickCallback): boolean {
    if (!this.accepting) throw new PublisherClosedError();
    if (this.exhausted) return false;
    const lane = this.lanes[this.partitionOf(tick.symbol)]!;
    if (!lane.queue.push({ tick, done })) return false;
    lane.notifyWork();
    return true;
  }

  /** Resolves when the partition of `symbol` may have room; rejects when `signal` aborts or the publisher closes. */
  async waitForSpace(symbol: string, signal?: AbortSignal): Promise<void> {
    if (!this.accepting) throw new PublisherClosedError();
    if (this.exhausted) {
      await this.waitForReopen(signal);
      if (!this.accepting) throw new PublisherClosedError();
      return;
    }
    const lane = this.lanes[this.partitionOf(symbol)]!;
    if (!lane.queue.full) return;
    await lane.waitForSpace(signal);
    if (!this.accepting) throw new PublisherClosedError();
  }

  private wakeReopenWaiters(): void {
    const waiters = this.reopenWaiters;
    this.reopenWaiters = [];
    for (const w of waiters) w();
  }

  private waitForReopen(signal: AbortSignal | undefined): Promise<void> {
    // close() wakes these too; the caller then sees the publisher closed.
    return waitInList(() => this.reopenWaiters, signal);
  }

  /** Queues `tick`, waiting for room as long as needed (or until `signal` aborts). */
  async enqueue(tick: Tick, done?: TickCallback, signal?: AbortSignal): Promise<void> {
    while (!this.trySubmit(tick, done)) await this.waitForSpace(tick.symbol, signal);
  }

  /** Queues `tick` and resolves once JetStream stored it. */
  submit(tick: Tick, signal?: AbortSignal): Promise<StoreResult> {
    return new Promise<StoreResult>((resolve, reject) => {
      this.enqueue(tick, (err, result) => (err ? reject(err) : resolve(result!)), signal).catch(reject);
    });
  }

  /**
   * Retries every failing batch now rather than after its backoff, starting
   * the backoff over (called when NATS reconnects: a lane that happened to be
   * asleep would otherwise stay dark for up to PUBLISH_RETRY_MAX_MS).
   */
  retryNow(): void {
    const previous = this.reconnected;
    this.reconnected = new AbortController();
    previous.abort();
  }

  /** Runs `f` when close() starts (timers of helpers the publisher owns). */
  onClose(f: () => void): void {
    this.closeHooks.push(f);
  }

  /** Resolves when every queued tick has been stored. */
  async idle(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.waitForIdle()));
  }

  /**
   * Stops taking ticks, gives the queued ones up to `drainMs` to be stored,
   * then abandons the rest (their callbacks get UnavailableError: they were
   * never reported stored, so their producers will resend them).
   */
  async close(drainMs: number): Promise<void> {
    for (const f of this.closeHooks.splice(0)) f();
    this.accepting = false;
    this.wakeReopenWaiters();
    for (const lane of this.lanes) lane.notifySpace();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.idle().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) this.opts.logger?.warn({ queued: this.queued }, 'publisher closed with ticks not stored');
    this.abandoned = true;
    this.abandon.abort();
    for (const lane of this.lanes) lane.notifyWork();
    await Promise.all(this.lanes.map((l) => l.running));
  }

  private async run(lane: Lane): Promise<void> {
    const { metrics } = this.opts;
    while (!this.abandoned) {
      if (lane.queue.length === 0) {
        await lane.waitForWork();
        continue;
      }
      const count = this.headRunLength(lane.queue);
      const batch: Tick[] = new Array<Tick>(count);
      for (let i = 0; i < count; i++) batch[i] = lane.queue.at(i)!.tick;
      const outcomes = await this.store(lane, batch);
      if (!outcomes) break; // abandoned mid-retry: the close path fails what is left

      const entries = lane.queue.shift(count);
      metrics?.batchTicks.observe(count);
      entries.forEach((e, i) => {
        const o = outcomes[i]!;
        if (o instanceof TickRefusedError) {
          metrics?.reject(o.rejectReason);
          e.done?.(o, undefined);
        } else {
          if (!o.duplicate) metrics?.accepted.inc();
          e.done?.(undefined, o);
        }
      });
      lane.notifySpace();
    }
    const left = lane.queue.drain();
    const err = new PublisherClosedError();
    for (const e of left) e.done?.(err, undefined);
    lane.notifySpace();
  }

  /**
   * Stores one head run: judged against its lane (lanes.ts) when lanes are on,
   * then published, and retried with the same message id and the same ticks
   * until JetStream stores them: never skipped, never overtaken. Resolves with
   * one outcome per tick, or undefined when the publisher is abandoned.
   */
  private async store(lane: Lane, batch: Tick[]): Promise<Array<StoreResult | TickRefusedError> | undefined> {
    const { metrics } = this.opts;
    const lanes = this.opts.lanes?.enabled() ? this.opts.lanes.book : undefined;
    const producerId = batch[0]!.producerId;
    let reconnected = this.reconnected.signal;
    let conflicts = 0;
    for (let attempt = 0; !this.abandoned; attempt++) {
      const started = performance.now();
      metrics?.inFlight.inc();
      let msgId = '';
      try {
        const plan: LanePlan = lanes
          ? await lanes.plan(lane.partition, batch)
          : { subject: tickSubject(lane.partition), expectedSubjectSeq: -1, verdicts: [] };
        const toPublish = batch.filter((_, i) => plan.verdicts[i] === undefined);
        let result: StoreResult | undefined;
        if (toPublish.length > 0) {
          const first = toPublish[0]!;
          const last = toPublish.at(-1)!;
          msgId = batchMessageId(producerId, lane.partition, first.producerSeq, last.producerSeq);
          // Abandoning (end of close) does not wait for an in-flight publish: its ticks are
          // failed as "not stored", which stays true to the producers even if it lands later.
          // A publish sent before NATS came back (buffered while disconnected, or lost
          // with the old server) is not waited for: retryNow() cuts it short and the same
          // batch goes again at once. If the first one landed after all, JetStream
          // answers the repeat as a duplicate of it (or, on a lane, the lane check does).
          const data = encodeBatch(toPublish);
          const outcome = await this.publishOutcome(
            this.opts.publish(plan.subject, data, msgId, lanes ? plan.expectedSubjectSeq : undefined),
            reconnected,
          );
          if (outcome === RETRY_NOW) {
            reconnected = this.reconnected.signal;
            attempt = -1; // the loop's ++ makes it 0: the backoff starts over
            continue;
          }
          if (!outcome) return undefined;
          result = outcome;
          metrics?.publishSeconds.observe((performance.now() - started) / 1000);
          if (result.duplicate) metrics?.duplicateBatches.inc();
          else
            this.opts.gate?.spend?.(
              data.length + plan.subject.length + msgId.length + MESSAGE_OVERHEAD_BYTES,
            );
          // A duplicate says nothing of the lane's newest message: read it again next time.
          if (lanes && result.duplicate) lanes.forget(lane.partition, producerId);
          else lanes?.stored(lane.partition, producerId, result.streamSeq, toPublish);
        }
        lane.failing = false;
        return batch.map((_, i) => {
          const v = plan.verdicts[i];
          if (!v) return result!;
          if (v.kind === 'refused') return v.error;
          return { streamSeq: v.streamSeq, duplicate: true };
        });
      } catch (err) {
        if (err instanceof LaneConflictError && lanes) {
          // Another writer moved the lane on: read it again and judge the batch anew, at once
          // (then with the usual backoff, should writers keep colliding).
          lanes.forget(lane.partition, producerId);
          if (++conflicts <= MAX_IMMEDIATE_CONFLICTS) {
            attempt = -1;
            continue;
          }
        }
        lane.failing = !(err instanceof LaneConflictError);
        metrics?.publishFailures.inc();
        const delay = this.retryDelay(attempt);
        // First failure of an outage at warn, then every 10th, to keep logs readable.
        if (attempt % 10 === 0) {
          this.opts.logger?.warn(
            {
              err: err instanceof Error ? err.message : String(err),
              partition: lane.partition,
              msgId,
              attempt,
              retryInMs: delay,
            },
            'JetStream publish failed: retrying the same batch',
          );
        }
        await sleep(delay, this.abandon.signal, reconnected);
        if (reconnected.aborted) {
          reconnected = this.reconnected.signal; // woken by retryNow(): retry now, then the shortest delays
          attempt = -1;
        }
      } finally {
        metrics?.inFlight.dec();
      }
    }
    return undefined;
  }

  /** Length of the head run: one producer, strictly increasing seq, at most maxBatchTicks. */
  private headRunLength(queue: BoundedDeque<Entry>): number {
    const max = Math.min(this.opts.maxBatchTicks, queue.length);
    const head = queue.at(0)!.tick;
    let prevSeq = head.producerSeq;
    let n = 1;
    while (n < max) {
      const t = queue.at(n)!.tick;
      if (t.producerId !== head.producerId || t.producerSeq <= prevSeq) break;
      prevSeq = t.producerSeq;
      n++;
    }
    return n;
  }

  /** The publish's result; undefined when the publisher is abandoned, RETRY_NOW when `retry` aborts first. */
  private publishOutcome(
    publish: Promise<StoreResult>,
    retry: AbortSignal,
  ): Promise<StoreResult | undefined | typeof RETRY_NOW> {
    const signal = this.abandon.signal;
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise<StoreResult | undefined | typeof RETRY_NOW>((resolve, reject) => {
      const onAbort = () => settle(() => resolve(undefined));
      const onRetry = () => settle(() => resolve(RETRY_NOW));
      const settle = (fn: () => void) => {
        signal.removeEventListener('abort', onAbort);
        retry.removeEventListener('abort', onRetry);
        fn();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      retry.addEventListener('abort', onRetry, { once: true });
      publish.then(
        (r) => settle(() => resolve(r)),
        (err: unknown) => settle(() => reject(err instanceof Error ? err : new Error(String(err)))),
      );
    });
  }

  private retryDelay(attempt: number): number {
    const base = Math.min(this.opts.retryMaxMs, this.opts.retryMinMs * 2 ** Math.min(attempt, 20));
    return Math.round(base * (0.5 + this.random() * 0.5));
  }
}

/** Resolves after `ms`, or as soon as one of `signals` aborts. */
function sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
  if (signals.some((s) => s.aborted)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}

/**
 * Adds a waiter to the list `list()` returns (a list its owner empties and
 * calls when the awaited thing happens); resolves when called, rejects and
 * takes the waiter out when `signal` aborts.
 */
function waitInList(list: () => Array<() => void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const waiter = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      const waiting = list();
      const i = waiting.indexOf(waiter);
      if (i >= 0) waiting.splice(i, 1);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    list().push(waiter);
  });
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
