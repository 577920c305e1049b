// Checkpoints: Redis is a cache, JetStream the truth. Every symbol's full
// state (quote hash, watermarks, retained bars, with the ss it covers) is
// copied into a JetStream KV bucket (`q.<SYM>`), and per partition the stream
// seq all those checkpoints cover (`p.<n>`), so a rebuild restores them and
// replays only the stream's tail. Writes are compare-and-set on the KV
// revision and only ever move a key forward (a higher ss), so replicas never
// regress a checkpoint (docs/price-cache.md "Checkpoints").
import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from '../../common/src/logger.js';
import { partitionOf } from '../../common/src/ticks/contract.js';
import type { PriceCacheMetrics } from './metrics.js';
import type { RedisStore } from './redis-store.js';
import { KEY } from './redis-store.js';

export interface Checkpoint {
  v: 1;
  symbol: string;
  ss: number;
  /** The quote hash, verbatim. */
  q: Record<string, string>;
  /** Watermarks, verbatim. */
  w: Record<string, string>;
  /** Retained bars (sorted-set members), oldest first. */
  s: string[];
  m: string[];
}

/** A checkpoint larger than this is not written (it would not fit a NATS message). */
export const MAX_CHECKPOINT_BYTES = 960 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCheckpoint(cp: Checkpoint): Uint8Array {
  return encoder.encode(JSON.stringify(cp));
}

export function decodeCheckpoint(data: Uint8Array): Checkpoint | undefined {
  try {
    const v = JSON.parse(decoder.decode(data)) as Partial<Checkpoint>;
    if (
      v.v !== 1 ||
      typeof v.symbol !== 'string' ||
      !Number.isSafeInteger(v.ss) ||
      typeof v.q !== 'object' ||
      typeof v.w !== 'object' ||
      !Array.isArray(v.s) ||
      !Array.isArray(v.m)
    ) {
      return undefined;
    }
    return v as Checkpoint;
  } catch {
    return undefined;
  }
}

export class CheckpointStore {
  constructor(readonly kv: KV) {}

  static async open(js: JetStreamClient, bucket: string, replicas: number): Promise<CheckpointStore> {
    // create() opens the bucket when it exists; history 1: only the latest state matters.
    const kv = await new Kvm(js).create(bucket, { history: 1, replicas, storage: 'file' });
    return new CheckpointStore(kv);
  }

  async getSymbol(symbol: string): Promise<{ cp: Checkpoint | undefined; revision: number } | undefined> {
    const e = await this.kv.get(`q.${symbol}`);
    if (!e || e.operation !== 'PUT') return undefined;
    return { cp: decodeCheckpoint(e.value), revision: e.revision };
  }

  async getPartition(n: number): Promise<{ seq: number; revision: number } | undefined> {
    const e = await this.kv.get(`p.${n}`);
    if (!e || e.operation !== 'PUT') return undefined;
    const seq = Number(decoder.decode(e.value));
    return Number.isSafeInteger(seq) ? { seq, revision: e.revision } : undefined;
  }

  /**
   * Writes `cp` unless the stored checkpoint already covers as much (ss).
   * Compare-and-set on the revision; a lost race re-reads and decides again.
   */
  async advanceSymbol(cp: Checkpoint): Promise<'written' | 'newer-exists' | 'too-large'> {
    const data = encodeCheckpoint(cp);
    if (data.length > MAX_CHECKPOINT_BYTES) return 'too-large';
    for (let attempt = 0; attempt < 3; attempt++) {
      const cur = await this.getSymbol(cp.symbol);
      if (cur?.cp && cur.cp.ss >= cp.ss) return 'newer-exists';
      try {
        if (cur) await this.kv.update(`q.${cp.symbol}`, data, cur.revision);
        else await this.kv.create(`q.${cp.symbol}`, data);
        return 'written';
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new Error(`checkpoint of ${cp.symbol}: compare-and-set kept failing`);
  }

  async advancePartition(n: number, seq: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const cur = await this.getPartition(n);
      if (cur && cur.seq >= seq) return false;
      try {
        if (cur) await this.kv.update(`p.${n}`, encoder.encode(String(seq)), cur.revision);
        else await this.kv.create(`p.${n}`, encoder.encode(String(seq)));
        return true;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new Error(`partition checkpoint ${n}: compare-and-set kept failing`);
  }

  /** Every symbol checkpoint and partition mark (for a rebuild). */
  async loadAll(concurrency = 16): Promise<{ symbols: Checkpoint[]; partitions: Map<number, number> }> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    const symbols: Checkpoint[] = [];
    const partitions = new Map<number, number>();
    await forEachLimited(keys, concurrency, async (key) => {
      if (key.startsWith('q.')) {
        const e = await this.getSymbol(key.slice(2));
        if (e?.cp) symbols.push(e.cp);
      } else if (key.startsWith('p.')) {
        const n = Number(key.slice(2));
        const e = await this.getPartition(n);
        if (e && Number.isSafeInteger(n)) partitions.set(n, e.seq);
      }
    });
    symbols.sort((a, b) => (a.symbol < b.symbol ? -1 : 1));
    return { symbols, partitions };
  }
}

function isWrongLastSequence(err: unknown): boolean {
  const text =
    err instanceof Error ? `${err.message} ${String((err as { code?: unknown }).code ?? '')}` : String(err);
  return /wrong last sequence|10071/i.test(text);
}

export async function forEachLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

export interface CheckpointRound {
  skipped?: 'lease-held' | 'no-epoch' | 'epoch-changed';
  written: number;
  partitionsAdvanced: number;
}

/**
 * One replica at a time (a short Redis lease) copies every symbol whose Redis
 * ss moved past what the KV holds, then advances `p.<n>` to the partition
 * seq read BEFORE the symbols: every message <= that seq is in the states
 * read afterwards, so the checkpoints cover it.
 */
export class CheckpointWriter {
  /** ss the KV is known to hold per symbol (a lower bound: only skips needless writes). */
  private readonly known = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly opts: {
      store: RedisStore;
      checkpoints: CheckpointStore;
      partitions: number;
      intervalMs: number;
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
    const { store, checkpoints } = this.opts;
    const leaseMs = Math.max(this.opts.intervalMs * 5, 15_000);
    if (!(await store.tryLease(KEY.checkpointLock, this.opts.token, leaseMs))) {
      return { skipped: 'lease-held', written: 0, partitionsAdvanced: 0 };
    }
    try {
      const epoch = await store.getEpoch();
      if (epoch === null) return { skipped: 'no-epoch', written: 0, partitionsAdvanced: 0 };
      // Order matters: partition seqs first, then the symbols and their states.
      const partitionSeqs = await store.partitionSeqs(this.opts.partitions);
      const symbols = await store.symbols();
      const ss = await store.readSs(symbols);
      const changed = symbols.filter((s) => (ss.get(s) ?? 0) > (this.known.get(s) ?? -1));
      const failedPartitions = new Set<number>();
      let written = 0;
      for (let i = 0; i < changed.length; i += 64) {
        const chunk = changed.slice(i, i + 64);
        const raw = await store.readRaw(chunk);
        if ((await store.getEpoch()) !== epoch)
          return { skipped: 'epoch-changed', written, partitionsAdvanced: 0 };
        await forEachLimited(raw, 8, async (r) => {
          const cpSs = Number(r.q.ss);
          if (!Number.isSafeInteger(cpSs)) return;
          const out = await checkpoints.advanceSymbol({
            v: 1,
            symbol: r.symbol,
            ss: cpSs,
            q: r.q,
            w: r.w,
            s: r.s,
            m: r.m,
          });
          if (out === 'too-large') {
            failedPartitions.add(partitionOf(r.symbol, this.opts.partitions));
            this.opts.metrics.checkpointErrors.inc();
            this.opts.logger.error(
              { symbol: r.symbol },
              'checkpoint too large: not written (lower the bar retention)',
            );
            return;
          }
          if (out === 'written') {
            written++;
            this.opts.metrics.checkpointWrites.inc();
          }
          this.known.set(r.symbol, cpSs);
        });
      }
      let partitionsAdvanced = 0;
      for (let n = 0; n < partitionSeqs.length; n++) {
        const seq = partitionSeqs[n];
        // A symbol without a fresh checkpoint: its partition mark must not move on.
        if (failedPartitions.has(n)) continue;
        if (seq !== undefined && (await checkpoints.advancePartition(n, seq))) partitionsAdvanced++;
      }
      return { written, partitionsAdvanced };
    } finally {
      await store.releaseLease(KEY.checkpointLock, this.opts.token).catch(() => undefined);
    }
  }
}
