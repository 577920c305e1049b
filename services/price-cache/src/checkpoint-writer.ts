// The checkpoint loop: one replica at a time (a short Redis lease) copies
// every symbol whose Redis ss moved past what the KV holds, then advances
// `p.<n>` to the partition seq read BEFORE the symbols: every message <= that
// seq is in the states read afterwards, so the checkpoints cover it. Per
// symbol it seals the bars that became final into new segments, writes the
// small `q.<SYM>` record that lists them, and only then purges segments no
// retained bar is in (docs/price-cache.md "Checkpoints").
import type { Logger } from '@tickmesh/kit';
import { partitionOf } from '@tickmesh/kit';
import { planSegments, type SegmentPlan, type SegmentRef } from './bar-segments.js';
import { finalBefore } from './reducer.js';
import {
  MAX_CHECKPOINT_BYTES,
  encodeCheckpoint,
  forEachLimited,
  listedSegmentKeys,
  parseSegmentKey,
  segmentKey,
  type CheckpointStore,
  type CheckpointV2,
} from './checkpoint.js';
import type { PriceCacheMetrics } from './metrics.js';
import type { RedisStore } from './redis-store.js';
import { KEY } from './redis-store.js';
import { CorruptStateError, decodeQuoteState, type Interval } from './state.js';

export interface CheckpointRound {
  skipped?: 'lease-held' | 'no-epoch' | 'epoch-changed';
  written: number;
  partitionsAdvanced: number;
}

type SymbolOutcome = 'written' | 'newer-exists' | 'too-large' | 'corrupt' | 'epoch-changed' | 'no-state';

const INTERVALS = ['s', 'm'] as const;

/** The stream Redis's state refers to (null: not recorded) and the one the checkpoint marks do. */
interface StreamContext {
  sid: string | null;
  marks: string | undefined;
}

export class CheckpointWriter {
  /** ss the KV is known to hold per symbol (a lower bound: only skips needless writes). */
  private readonly known = new Map<string, number>();
  /** The epoch `known` was learnt in (a new epoch may have moved every ss, even back). */
  private knownEpoch: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly opts: {
      store: RedisStore;
      checkpoints: CheckpointStore;
      partitions: number;
      intervalMs: number;
      /** Final bars per sealed segment. */
      segmentBars: number;
      lateTickBoundMs: number;
      token: string;
      logger: Logger;
      metrics: PriceCacheMetrics;
    },
  ) {}

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.running = this.round()
        .catch((err: unknown) => {
          this.opts.metrics.checkpointErrors.inc();
          this.opts.logger.warn({ err }, 'checkpoint round failed');
        })
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) {
            this.timer = setTimeout(loop, this.opts.intervalMs);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops the loop after a last round (so a clean shutdown leaves fresh checkpoints). */
  async stop(finalRound = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (finalRound) {
      await this.round().catch((err: unknown) =>
        this.opts.logger.warn({ err }, 'final checkpoint round failed'),
      );
    }
  }

  async round(): Promise<CheckpointRound> {
    const { store } = this.opts;
    const leaseMs = Math.max(this.opts.intervalMs * 5, 15_000);
    if (!(await store.tryLease(KEY.checkpointLock, this.opts.token, leaseMs))) {
      return { skipped: 'lease-held', written: 0, partitionsAdvanced: 0 };
    }
    try {
      const epoch = await store.getEpoch();
      if (epoch === null) return { skipped: 'no-epoch', written: 0, partitionsAdvanced: 0 };
      if (epoch !== this.knownEpoch) {
        this.known.clear();
        this.knownEpoch = epoch;
      }
      // The stream the state refers to, and the one the marks (and records
      // without their own) refer to. A Redis that moved onto a re-created
      // stream rewrites every record, then drops the marks and records the
      // new stream: until then a rebuild treats what it finds as the old
      // stream's (seqs at 0), which is safe.
      const sid = await store.getStream();
      let marks = await this.opts.checkpoints.getStream();
      if (sid !== null && marks === undefined && (await this.opts.checkpoints.setStream(sid, undefined)))
        marks = await this.opts.checkpoints.getStream();
      const moving = sid !== null && marks !== undefined && marks.stream !== sid;
      const ctx: StreamContext = { sid, marks: marks?.stream };
      // Order matters: partition seqs first, then the symbols and their states.
      const partitionSeqs = await store.partitionSeqs(this.opts.partitions);
      const symbols = await store.symbols();
      const ss = await store.readSs(symbols);
      const changed = moving ? symbols : symbols.filter((s) => (ss.get(s) ?? 0) > (this.known.get(s) ?? -1));
      const failedPartitions = new Set<number>();
      let written = 0;
      let stop: 'epoch-changed' | 'lease-lost' | undefined;
      let firstError: unknown;
      // Keep the lease while the round runs, however long: two writers at
      // once would race each other's sweeps and purges.
      const renew = setInterval(
        () => {
          store
            .renewLease(KEY.checkpointLock, this.opts.token, leaseMs)
            .then((held) => {
              if (!held) stop ??= 'lease-lost';
            })
            .catch(() => undefined);
        },
        Math.floor(leaseMs / 3),
      );
      renew.unref();
      try {
        await forEachLimited(changed, 8, async (symbol) => {
          if (stop || firstError) return;
          try {
            const out = await this.checkpointSymbol(symbol, epoch, ctx);
            if (out === 'epoch-changed') stop = 'epoch-changed';
            else if (out === 'too-large' || out === 'corrupt')
              failedPartitions.add(partitionOf(symbol, this.opts.partitions));
            else if (out === 'written') written++;
          } catch (err) {
            // Every worker finishes before the lease is released.
            firstError ??= err;
          }
        });
      } finally {
        clearInterval(renew);
      }
      if (firstError) throw firstError;
      const epochChanged = stop === 'epoch-changed';
      if (stop === 'lease-lost') throw new Error('checkpoint lease lost during the round');
      if (epochChanged) return { skipped: 'epoch-changed', written, partitionsAdvanced: 0 };
      if (moving) {
        await this.opts.checkpoints.purgePartitions(this.opts.partitions);
        if (!(await this.opts.checkpoints.setStream(sid, marks!.revision))) {
          return { written, partitionsAdvanced: 0 };
        }
        this.opts.logger.warn(
          { stream: sid, previous: marks!.stream },
          'checkpoints moved onto the new tick stream',
        );
      }
      let partitionsAdvanced = 0;
      for (let n = 0; n < partitionSeqs.length; n++) {
        const seq = partitionSeqs[n];
        // A symbol without a fresh checkpoint: its partition mark must not move on.
        if (failedPartitions.has(n)) continue;
        if (seq !== undefined && (await this.opts.checkpoints.advancePartition(n, seq))) partitionsAdvanced++;
      }
      return { written, partitionsAdvanced };
    } finally {
      await store.releaseLease(KEY.checkpointLock, this.opts.token).catch(() => undefined);
    }
  }

  /**
   * Read what the KV holds, then what Redis holds beyond it; seal, write,
   * purge. A lost compare-and-set (another writer) starts over from the read.
   */
  private async checkpointSymbol(symbol: string, epoch: string, at: StreamContext): Promise<SymbolOutcome> {
    const { store, checkpoints, metrics } = this.opts;
    const bound = this.opts.lateTickBoundMs;
    const key = (i: Interval, ref: SegmentRef) => segmentKey(symbol, i, bound, ref);
    const wrote = new Set<string>();
    for (let attempt = 0; attempt < 3; attempt++) {
      const cur = await checkpoints.getSymbol(symbol);
      // Another format, or segments sealed under another late bound (a bar
      // they hold may be able to change now): seal again from all bars.
      const resealing = cur !== undefined && !(cur.cp?.v === 2 && cur.cp.lb === bound);
      const sealed: Record<Interval, SegmentRef[]> =
        cur?.cp?.v === 2 && !resealing ? { s: cur.cp.cs, m: cur.cp.cm } : { s: [], m: [] };
      const raw = await store.readForCheckpoint(symbol, {
        s: sealed.s.at(-1)?.[1],
        m: sealed.m.at(-1)?.[1],
      });
      if (raw.epoch !== epoch || raw.stream !== at.sid) return 'epoch-changed';
      let state;
      try {
        state = decodeQuoteState(raw.q, symbol);
      } catch (err) {
        // Loud, and its partition's mark stays put; the other symbols go on.
        if (!(err instanceof CorruptStateError)) throw err;
        metrics.checkpointErrors.inc();
        this.opts.logger.error({ symbol, err: err.message }, 'corrupt state in Redis: not checkpointed');
        return 'corrupt';
      }
      if (!state) return 'no-state';
      // A record of another stream is older whatever its ss.
      const sameStream =
        at.sid === null ||
        (cur?.cp?.sid !== undefined ? cur.cp.sid === at.sid : at.marks === undefined || at.marks === at.sid);
      if (cur?.cp && sameStream && cur.cp.ss >= state.ss) {
        this.known.set(symbol, cur.cp.ss);
        // Segments of a lost attempt that the winner's record does not list.
        const theirs = new Set(cur.cp.v === 2 ? listedSegmentKeys(cur.cp) : []);
        await this.purge([...wrote].filter((k) => !theirs.has(k)));
        return 'newer-exists';
      }
      const plans = {} as Record<Interval, SegmentPlan>;
      for (const i of INTERVALS) {
        plans[i] = planSegments({
          sealed: sealed[i],
          unsealed: raw.bars[i],
          oldestRetained: raw.oldestRetained[i],
          finalBefore: finalBefore(state.maxEventTimeMs, bound, i),
          segmentBars: this.opts.segmentBars,
        });
      }
      const cp: CheckpointV2 = {
        v: 2,
        symbol,
        ss: state.ss,
        ...(at.sid === null ? {} : { sid: at.sid }),
        q: raw.q,
        w: raw.w,
        s: plans.s.open,
        m: plans.m.open,
        lb: bound,
        cs: plans.s.keep,
        cm: plans.m.keep,
        os: raw.oldestRetained.s,
        om: raw.oldestRetained.m,
      };
      const data = encodeCheckpoint(cp);
      if (data.length > MAX_CHECKPOINT_BYTES) {
        metrics.checkpointErrors.inc();
        this.opts.logger.error({ symbol, bytes: data.length }, 'checkpoint too large: not written');
        return 'too-large';
      }
      // Segments first: a checkpoint never lists one that is not there.
      for (const i of INTERVALS) {
        for (const seg of plans[i].seal) {
          const k = key(i, seg.ref);
          const bytes = await checkpoints.putSegment(k, { v: 1, symbol, i, bars: seg.members });
          metrics.checkpointBytes.inc({ part: 'segment' }, bytes);
          wrote.add(k);
        }
      }
      if (!(await checkpoints.replaceSymbol(symbol, data, cur?.revision))) continue;
      metrics.checkpointWrites.inc();
      metrics.checkpointBytes.inc({ part: 'symbol' }, data.length);
      this.known.set(symbol, state.ss);
      const listed = new Set(listedSegmentKeys(cp));
      const doomed = new Set(INTERVALS.flatMap((i) => plans[i].drop.map((ref) => key(i, ref))));
      // Written in an attempt that lost its compare-and-set and not listed now.
      for (const k of wrote) if (!listed.has(k)) doomed.add(k);
      if (resealing) {
        // The old record's segments (and any a downgrade left) are listed by
        // no record now. Only at or below our last sealed bar: above it, a
        // writer that read our record may be sealing right now.
        for (const k of await checkpoints.segmentKeys(symbol)) {
          const parsed = parseSegmentKey(k);
          const through = cp[parsed?.interval === 'm' ? 'cm' : 'cs'].at(-1)?.[1];
          if (parsed && !listed.has(k) && through !== undefined && parsed.from <= through) doomed.add(k);
        }
      }
      await this.purge([...doomed]);
      return 'written';
    }
    throw new Error(`checkpoint of ${symbol}: compare-and-set kept failing`);
  }

  /** Best effort: a segment left behind costs space, never correctness. */
  private async purge(keys: string[]): Promise<void> {
    for (const key of keys) {
      await this.opts.checkpoints.purgeKey(key).catch((err: unknown) => {
        this.opts.metrics.checkpointErrors.inc();
        this.opts.logger.warn({ err, key }, 'could not purge a checkpoint segment');
      });
    }
  }
}
