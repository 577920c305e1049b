// Applies one JetStream message to Redis: the pure reducer on the state of
// the batch's symbols, then one guarded Lua write (compare-and-set on the
// epoch and on every symbol's ss). A conflict means another replica (or a
// stale redelivery) got there first: re-read and recompute, bounded.
//
// The state a replica wrote last is kept in process and used instead of a
// read: the write's compare-and-set on ss validates it (within an epoch, a
// given ss means one exact state, the reducer being deterministic), so a
// stale copy costs a conflict and a re-read, never a wrong write.
import type { Quote, Tick } from '@tickmesh/kit/proto';
import { toQuote } from './quotes.js';
import {
  applyMessage,
  clearDirty,
  isDirty,
  pruneBars,
  symbolsOf,
  type ApplyResult,
  type ReducerContext,
  type SymbolView,
} from './reducer.js';
import type { RedisStore, WriteItem } from './redis-store.js';

/** The cache has no epoch (emptied, rebuilding): the message must wait. */
export class NotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReadyError';
  }
}

/** Too many compare-and-set conflicts in a row. */
export class ApplyConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApplyConflictError';
  }
}

export interface EpochObserver {
  /** Tells the epoch tracker what Redis said (null: the epoch key is missing). */
  observe(epoch: string | null): void;
  /** The epoch believed current (undefined: unknown or missing). */
  current?(): string | undefined;
}

export interface ApplyOutcome {
  /** One quote per applied tick, in order (seq +1 each). */
  quotes: Quote[];
  result: ApplyResult;
  epoch: string;
  /** Whether Redis was written (false: everything was a duplicate or a redelivery). */
  wrote: boolean;
  attempts: number;
}

interface Cached {
  epoch: string;
  view: SymbolView;
}

export class Applier {
  private readonly cache = new Map<string, Cached>();
  /**
   * Per partition, the highest position this replica wrote, in which epoch.
   * Within an epoch a partition's position only grows (several replicas
   * apply the same partitions, so it may be higher, never lower): lower
   * means Redis went back in time.
   */
  private readonly positions = new Map<number, { epoch: string; seq: number }>();

  constructor(
    private readonly store: RedisStore,
    private readonly ctx: ReducerContext,
    private readonly epochs: EpochObserver,
    private readonly opts: {
      maxRetries: number;
      onConflict?: () => void;
      /** Redis was found behind a position this replica wrote (the epoch is dropped: rebuild). */
      onRolledBack?: (partition: number, position: number, expectedAtLeast: number) => void;
      maxCachedSymbols?: number;
    },
  ) {}

  async apply(partition: number, streamSeq: number, ticks: readonly Tick[]): Promise<ApplyOutcome> {
    const symbols = symbolsOf(ticks);
    for (let attempt = 1; attempt <= this.opts.maxRetries; attempt++) {
      try {
        const out = await this.attempt(partition, streamSeq, ticks, symbols, attempt);
        if (out) return out;
      } catch (err) {
        for (const s of symbols) this.cache.delete(s);
        throw err;
      }
      for (const s of symbols) this.cache.delete(s);
    }
    throw new ApplyConflictError(
      `message ${streamSeq}: still conflicting after ${this.opts.maxRetries} attempts`,
    );
  }

  /** One read-compute-write round; undefined when it must be retried. */
  private async attempt(
    partition: number,
    streamSeq: number,
    ticks: readonly Tick[],
    symbols: string[],
    attempt: number,
  ): Promise<ApplyOutcome | undefined> {
    let epoch = this.epochs.current?.();
    const views = new Map<string, SymbolView>();
    const expected = new Map<string, string>();
    const fromCache = new Set<string>();
    const toRead: string[] = [];
    for (const s of symbols) {
      const c = epoch === undefined ? undefined : this.cache.get(s);
      if (c && c.epoch === epoch) {
        views.set(s, c.view);
        expected.set(s, c.view.state ? String(c.view.state.ss) : '0');
        fromCache.add(s);
      } else {
        toRead.push(s);
      }
    }
    if (toRead.length > 0 || epoch === undefined) {
      const read = await this.store.readForApply(toRead);
      if (read.epoch === null) {
        this.epochs.observe(null);
        throw new NotReadyError('cache epoch missing: waiting for the rebuild');
      }
      this.epochs.observe(read.epoch);
      if (epoch !== undefined && read.epoch !== epoch) {
        this.cache.clear();
        return undefined;
      }
      epoch = read.epoch;
      for (const [s, v] of read.views) views.set(s, v);
      for (const [s, ss] of read.readSs) expected.set(s, ss);
    }
    const result = applyMessage(views, ticks, streamSeq, this.ctx, Date.now());
    // Cached views are checked even when unchanged: a decision taken on a
    // stale copy must not stand without the compare-and-set.
    const items: WriteItem[] = [];
    for (const view of views.values()) {
      if (isDirty(view) || fromCache.has(view.symbol))
        items.push({ view, expectedSs: expected.get(view.symbol) ?? '0' });
    }
    let wrote = false;
    if (items.length > 0) {
      const known = this.positions.get(partition);
      const atLeast = known && known.epoch === epoch ? known.seq : undefined;
      const out = await this.store.write({ kind: 'apply', epoch: epoch! }, items, {
        n: partition,
        seq: streamSeq,
        atLeast,
      });
      if (!out.ok) {
        if (out.reason === 'rolled_back') {
          this.cache.clear();
          this.positions.clear();
          this.opts.onRolledBack?.(partition, out.position, atLeast ?? 0);
          this.epochs.observe(null);
          throw new NotReadyError('Redis went back in time: waiting for the rebuild');
        }
        if (out.reason === 'epoch_missing') {
          this.epochs.observe(null);
          throw new NotReadyError('cache epoch missing: waiting for the rebuild');
        }
        if (out.reason === 'epoch_changed') {
          this.epochs.observe(out.epoch);
          this.cache.clear();
        } else {
          this.opts.onConflict?.();
        }
        return undefined;
      }
      wrote = items.some((it) => isDirty(it.view));
      if (!known || known.epoch !== epoch || known.seq < streamSeq)
        this.positions.set(partition, { epoch: epoch!, seq: streamSeq });
    }
    for (const view of views.values()) {
      clearDirty(view);
      pruneBars(view, this.ctx.lateTickBoundMs);
      this.remember(view, epoch!);
    }
    const epochNumber = Number(epoch);
    const quotes = result.applied.map((a) =>
      toQuote(a.symbol, a.state, this.ctx.instrumentOf(a.symbol).decimals, epochNumber),
    );
    return { quotes, result, epoch: epoch!, wrote, attempts: attempt };
  }

  private remember(view: SymbolView, epoch: string): void {
    this.cache.delete(view.symbol); // re-insert: Map order is least recently used first
    this.cache.set(view.symbol, { epoch, view });
    const max = this.opts.maxCachedSymbols ?? 20_000;
    if (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
  }
}
