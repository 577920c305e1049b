// Rebuilds an emptied Redis, one replica at a time (the rebuild lock):
// clean, restore every checkpoint, replay each partition's tail from the
// stream through the same reducer (its guards skip what a checkpoint already
// covers), and only then set a new epoch. Until the epoch exists every
// replica's apply script refuses to write, so nothing races the rebuild.
import { decodeBatch, partitionOf } from '@tickmesh/kit';
import type { Logger } from '@tickmesh/kit';
import type { CheckpointStore, RestoredSymbol } from './checkpoint.js';
import type { RebuildRunner } from './epoch.js';
import type { PriceCacheMetrics } from './metrics.js';
import {
  applyMessage,
  clearDirty,
  isDirty,
  newView,
  pruneBars,
  symbolsOf,
  type ReducerContext,
  type SymbolView,
} from './reducer.js';
import type { RedisStore } from './redis-store.js';
import { decodeBar, decodeQuoteState, decodeWatermarks, type BarState } from './state.js';
import type { TickStream } from './tick-stream.js';

export interface RebuildDeps {
  store: RedisStore;
  /** Undefined until the KV bucket is open (setup): no rebuild before that. */
  checkpoints: () => CheckpointStore | undefined;
  ticks: TickStream;
  ctx: ReducerContext;
  partitions: number;
  lockTtlMs: number;
  timeoutMs: number;
  /** Messages applied in memory between two Redis writes during replay. */
  flushEvery?: number;
  token: string;
  logger: Logger;
  metrics: PriceCacheMetrics;
  publishReset: (epoch: string) => void;
}

export interface RebuildReport {
  epoch: string;
  restored: number;
  /** Sealed bar segments read back. */
  segments: number;
  replayedMessages: number;
  ms: number;
}

export class Rebuilder implements RebuildRunner {
  lastReport: RebuildReport | undefined;
  private aborted = false;

  /** Makes a running rebuild give up at its next step (shutdown); the lock is released. */
  abort(): void {
    this.aborted = true;
  }

  constructor(private readonly d: RebuildDeps) {}

  async run(previousEpoch: string | undefined): Promise<string | undefined> {
    const { store, logger } = this.d;
    const checkpoints = this.d.checkpoints();
    if (!checkpoints || this.aborted) return undefined;
    if (!(await store.acquireLock(this.d.token, this.d.lockTtlMs))) return undefined;
    // Someone may have finished a rebuild between our noticing and the lock.
    const existing = await store.getEpoch();
    if (existing !== null) {
      await store.releaseLock(this.d.token);
      return existing;
    }
    const started = performance.now();
    const deadline = Date.now() + this.d.timeoutMs;
    let lost = false;
    const renew = setInterval(
      () => {
        store
          .renewLock(this.d.token, this.d.lockTtlMs)
          .then((ok) => {
            if (!ok) lost = true;
          })
          .catch(() => undefined);
      },
      Math.max(200, Math.floor(this.d.lockTtlMs / 3)),
    );
    renew.unref();
    const check = () => {
      if (this.aborted) throw new Error('rebuild abandoned: shutting down');
      if (lost) throw new Error('rebuild lock lost');
      if (Date.now() > deadline) throw new Error(`rebuild took longer than ${this.d.timeoutMs} ms`);
    };
    logger.warn({ previousEpoch }, 'rebuilding the cache from checkpoints and the tick stream');
    try {
      await store.clear(this.d.token);
      const { stream, symbols, partitions, segments, missingSegments, unreadable } =
        await checkpoints.loadAll();
      // A record that does not decode (another format, damage) is not covered
      // by its partition's mark: replay that partition from the start, where
      // the reducer's guards skip what the other records already hold.
      const fromStart = new Set(unreadable.map((s) => partitionOf(s, this.d.partitions)));
      if (unreadable.length > 0) {
        this.d.metrics.checkpointErrors.inc(unreadable.length);
        logger.error(
          { symbols: unreadable.slice(0, 10), count: unreadable.length, partitions: [...fromStart] },
          'unreadable checkpoint records: replaying their partitions from the start of the stream',
        );
      }
      if (missingSegments.length > 0) {
        // Their bars cannot come back; everything newer still does.
        this.d.metrics.checkpointErrors.inc(missingSegments.length);
        logger.error(
          { missing: missingSegments.slice(0, 10), count: missingSegments.length },
          'checkpoint segments missing: their bars are not restored',
        );
      }
      // Checkpoints of another stream (it was re-created since): their seqs
      // mean nothing in this one. Their state is restored with every seq at 0
      // (the watermarks still drop resends of what they hold) and the
      // partitions are replayed from the new stream's start.
      const facts = await this.d.ticks.facts();
      if (!facts) throw new Error(`stream ${this.d.ticks.stream} does not exist`);
      const marksCurrent = stream === undefined || stream === facts.created;
      let foreign = 0;
      const current = symbols.map((cp) => {
        if (cp.sid === undefined ? marksCurrent : cp.sid === facts.created) return cp;
        foreign++;
        return atStreamStart(cp);
      });
      if (foreign > 0 || !marksCurrent) {
        logger.warn(
          { stream: facts.created, checkpointsOf: stream, foreign },
          'checkpoints of an earlier tick stream: their state restored at seq 0, partitions replayed from the start',
        );
      }
      check();
      await this.restore(current);
      let replayed = 0;
      for (let n = 0; n < this.d.partitions; n++) {
        check();
        const from = fromStart.has(n) || !marksCurrent ? 1 : (partitions.get(n) ?? 0) + 1;
        replayed += await this.replayPartition(n, from, check);
      }
      check();
      const epoch = String(Math.max(Date.now(), Number(previousEpoch ?? 0) + 1));
      if (!(await store.finishRebuild(this.d.token, epoch, facts.created)))
        throw new Error('rebuild lock lost before the epoch was set');
      const ms = performance.now() - started;
      this.lastReport = { epoch, restored: symbols.length, segments, replayedMessages: replayed, ms };
      this.d.metrics.rebuilds.inc();
      this.d.metrics.rebuildSeconds.set(ms / 1000);
      this.d.metrics.rebuildReplayed.set(replayed);
      logger.warn(
        { epoch, restored: symbols.length, segments, replayedMessages: replayed, ms: Math.round(ms) },
        'cache rebuilt',
      );
      this.d.publishReset(epoch);
      return epoch;
    } catch (err) {
      await store.releaseLock(this.d.token).catch(() => undefined);
      throw err;
    } finally {
      clearInterval(renew);
    }
  }

  /**
   * Moves the cache onto a re-created tick stream (REBASE_LUA): the state
   * stays, every stream seq in it becomes 0, a new epoch. Undefined when
   * another replica holds the lock.
   */
  async rebase(stream: string, previousEpoch: string | undefined): Promise<string | undefined> {
    const { store, logger } = this.d;
    if (this.aborted || !(await store.acquireLock(this.d.token, this.d.lockTtlMs))) return undefined;
    const known = await store.getStream();
    const existing = await store.getEpoch();
    if (known === stream || known === null || existing === null) {
      // Done by someone else meanwhile, or a rebuild is due anyway (it records the stream).
      await store.releaseLock(this.d.token);
      return existing ?? undefined;
    }
    const epoch = String(Math.max(Date.now(), Number(previousEpoch ?? existing) + 1, Number(existing) + 1));
    if (!(await store.rebase(this.d.token, epoch, stream, this.d.partitions))) return undefined;
    this.d.metrics.streamRecreated.inc();
    this.d.metrics.rebuilds.inc();
    logger.error(
      { previousStream: known, stream, epoch },
      'the tick stream was re-created: cache state kept with its stream seqs reset, new epoch; ' +
        'ticks the old stream held beyond what this cache applied are gone with it',
    );
    this.d.publishReset(epoch);
    return epoch;
  }

  private async restore(checkpoints: RestoredSymbol[]): Promise<void> {
    for (let i = 0; i < checkpoints.length; i += 16) {
      const items = checkpoints.slice(i, i + 16).flatMap((cp) => {
        const state = decodeQuoteState(cp.q, cp.symbol);
        if (!state) return [];
        const view = newView(cp.symbol, state, decodeWatermarks(cp.w, cp.symbol), {
          s: bars(cp.s),
          m: bars(cp.m),
        });
        return [{ view, expectedSs: '*', replace: true }];
      });
      if (items.length === 0) continue;
      const out = await this.d.store.write({ kind: 'rebuild', token: this.d.token }, items);
      if (!out.ok) throw new Error(`restore refused: ${out.reason}`);
    }
  }

  private async replayPartition(n: number, fromSeq: number, check: () => void): Promise<number> {
    const { store, ticks, ctx } = this.d;
    const toSeq = await ticks.lastSeq(n);
    const flushEvery = this.d.flushEvery ?? 500;
    const views = new Map<string, SymbolView>();
    let lastSeq = fromSeq - 1;
    let sinceFlush = 0;
    let count = 0;
    const flush = async () => {
      const items = [...views.values()].filter(isDirty).map((view) => ({ view, expectedSs: '*' }));
      const out = await store.write(
        { kind: 'rebuild', token: this.d.token },
        items,
        lastSeq > 0 ? { n, seq: lastSeq } : undefined,
      );
      if (!out.ok) throw new Error(`replay write refused: ${out.reason}`);
      for (const v of views.values()) {
        clearDirty(v);
        pruneBars(v, ctx.lateTickBoundMs);
      }
      sinceFlush = 0;
    };
    for await (const m of ticks.replay(n, fromSeq, toSeq, 10_000)) {
      let batch;
      try {
        batch = decodeBatch(m.data);
      } catch {
        this.d.metrics.messages.inc({ outcome: 'malformed' });
        lastSeq = m.seq;
        continue;
      }
      const missing = symbolsOf(batch).filter((s) => !views.has(s));
      if (missing.length > 0) {
        const read = await store.readForApply(missing);
        for (const v of read.views.values()) views.set(v.symbol, v);
      }
      applyMessage(views, batch, m.seq, ctx, Date.now());
      lastSeq = m.seq;
      count++;
      if (++sinceFlush >= flushEvery) {
        check();
        await flush();
      }
    }
    await flush();
    return count;
  }
}

/** A checkpoint of an earlier stream as state of this one: every stream seq it holds becomes 0. */
function atStreamStart(cp: RestoredSymbol): RestoredSymbol {
  const w = Object.fromEntries(Object.entries(cp.w).map(([p, v]) => [p, `${v.split(':')[0]}:0`]));
  return { ...cp, ss: 0, q: { ...cp.q, ss: '0' }, w };
}

function bars(members: string[]): Map<number, BarState> {
  const m = new Map<number, BarState>();
  for (const member of members) {
    const b = decodeBar(member);
    m.set(b.start, b);
  }
  return m;
}
