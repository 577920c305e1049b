// Checkpoints: Redis is a cache, JetStream the truth. Every symbol's state
// (quote hash, watermarks, retained bars, with the ss it covers) is kept in a
// JetStream KV bucket: `q.<SYM>` holds the quote, watermarks, the bars that
// are not sealed yet and the list of the symbol's sealed bar segments
// (`c.<SYM>.<s|m>.<first bar start>`, immutable, written once: bar-segments.ts).
// Per partition, `p.<n>` is the stream seq all those checkpoints cover, so a
// rebuild restores them and replays only the stream's tail. `q.*` writes are
// compare-and-set on the KV revision and only ever move a key forward (a
// higher ss), so replicas never regress a checkpoint (docs/price-cache.md
// "Checkpoints").
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { barStart, type SegmentRef } from './bar-segments.js';
import type { Interval } from './state.js';

/** A symbol's stored form; as a rebuild restores it, `s` and `m` hold every bar. */
export interface RestoredSymbol {
  symbol: string;
  ss: number;
  /** The quote hash, verbatim. */
  q: Record<string, string>;
  /** Watermarks, verbatim. */
  w: Record<string, string>;
  /** Bars (sorted-set members), oldest first. */
  s: string[];
  m: string[];
}

/** Version 1 (until 2026-12-06) carried every retained bar inline; it is still restored. */
export type CheckpointV1 = RestoredSymbol & { v: 1 };

/** Version 2: `s` and `m` hold only the bars not in a sealed segment. */
export type CheckpointV2 = RestoredSymbol & {
  v: 2;
  /** LATE_TICK_BOUND_MS the segments were sealed under (another bound re-seals them). */
  lb: number;
  /** Sealed segments of 1-second and 1-minute bars, oldest first. */
  cs: SegmentRef[];
  cm: SegmentRef[];
  /**
   * Start of the oldest bar Redis retained per interval (absent: none). A
   * listed segment may hold older bars that Redis had trimmed; a restore
   * leaves them out, whatever the retention is by then.
   */
  os?: number;
  om?: number;
};

export type Checkpoint = CheckpointV1 | CheckpointV2;

export interface Segment {
  v: 1;
  symbol: string;
  i: Interval;
  /** Bar members, oldest first. */
  bars: string[];
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
    const v = JSON.parse(decoder.decode(data)) as Record<string, unknown>;
    if (
      (v.v !== 1 && v.v !== 2) ||
      typeof v.symbol !== 'string' ||
      !Number.isSafeInteger(v.ss) ||
      typeof v.q !== 'object' ||
      v.q === null ||
      typeof v.w !== 'object' ||
      v.w === null ||
      !isStrings(v.s) ||
      !isStrings(v.m)
    ) {
      return undefined;
    }
    if (
      v.v === 2 &&
      !(
        isRefs(v.cs) &&
        isRefs(v.cm) &&
        Number.isSafeInteger(v.lb) &&
        (v.os === undefined || Number.isSafeInteger(v.os)) &&
        (v.om === undefined || Number.isSafeInteger(v.om))
      )
    )
      return undefined;
    return v as unknown as Checkpoint;
  } catch {
    return undefined;
  }
}

/**
 * The late bound is part of the key: segments re-sealed under another bound
 * never overwrite ones a record still lists.
 */
export function segmentKey(symbol: string, interval: Interval, lateBoundMs: number, ref: SegmentRef): string {
  return `c.${symbol}.${interval}.${lateBoundMs}.${ref[0]}`;
}

/** Interval and first bar start of a segment key (undefined when it is not one). */
export function parseSegmentKey(key: string): { interval: Interval; from: number } | undefined {
  const m = /^c\.[^.]+\.([sm])\.\d+\.(\d+)$/.exec(key);
  return m ? { interval: m[1] as Interval, from: Number(m[2]) } : undefined;
}

export function encodeSegment(s: Segment): Uint8Array {
  return encoder.encode(JSON.stringify(s));
}

export function decodeSegment(data: Uint8Array): Segment | undefined {
  try {
    const v = JSON.parse(decoder.decode(data)) as Record<string, unknown>;
    if (v.v !== 1 || typeof v.symbol !== 'string' || (v.i !== 's' && v.i !== 'm') || !isStrings(v.bars))
      return undefined;
    return v as unknown as Segment;
  } catch {
    return undefined;
  }
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isRefs(v: unknown): v is SegmentRef[] {
  return (
    Array.isArray(v) &&
    v.every(
      (r) => Array.isArray(r) && r.length === 2 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]),
    )
  );
}

export class CheckpointStore {
  constructor(
    readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
  ) {}

  static async open(js: JetStreamClient, bucket: string, replicas: number): Promise<CheckpointStore> {
    // create() opens the bucket when it exists; history 1: only the latest state matters.
    const kv = await new Kvm(js).create(bucket, { history: 1, replicas, storage: 'file' });
    return new CheckpointStore(kv, await js.jetstreamManager(), bucket);
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
   * Writes `data` (an encoded checkpoint) as `q.<symbol>` only if the key is
   * still at `revision` (undefined: absent). False when someone else wrote
   * it meanwhile: the caller re-reads and decides again.
   */
  async replaceSymbol(symbol: string, data: Uint8Array, revision: number | undefined): Promise<boolean> {
    try {
      if (revision !== undefined) await this.kv.update(`q.${symbol}`, data, revision);
      else await this.kv.create(`q.${symbol}`, data);
      return true;
    } catch (err) {
      if (isWrongLastSequence(err) || (revision === undefined && /exists/i.test(String(err)))) return false;
      throw err;
    }
  }

  /** Writes a sealed segment (immutable: rewriting it writes the same bars). Returns its size. */
  async putSegment(key: string, segment: Segment): Promise<number> {
    const data = encodeSegment(segment);
    await this.kv.put(key, data);
    return data.length;
  }

  async getSegment(symbol: string, interval: Interval, key: string): Promise<Segment | undefined> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    const seg = decodeSegment(e.value);
    return seg && seg.symbol === symbol && seg.i === interval ? seg : undefined;
  }

  /**
   * Removes a segment key no checkpoint lists any more. A stream purge of its
   * subject, not a KV delete: a delete leaves a marker per key forever.
   */
  async purgeKey(key: string): Promise<void> {
    await this.jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${key}` });
  }

  /** Every segment key stored for a symbol, listed or not (a sweep after a format change). */
  async segmentKeys(symbol: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys(`c.${symbol}.>`)) keys.push(k);
    return keys;
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

  /**
   * Every symbol checkpoint with its segments' bars, and every partition
   * mark (for a rebuild). A listed segment that is missing or unreadable is
   * reported in `missingSegments` and its bars are not restored; a record
   * that does not decode is reported in `unreadable` (its partition's mark
   * does not cover it).
   */
  async loadAll(concurrency = 16): Promise<{
    symbols: RestoredSymbol[];
    partitions: Map<number, number>;
    segments: number;
    missingSegments: string[];
    unreadable: string[];
  }> {
    const keys: string[] = [];
    // One filter per listing: several at once need nats-server 2.10.
    for (const filter of ['q.>', 'p.>']) for await (const k of await this.kv.keys(filter)) keys.push(k);
    const symbols: RestoredSymbol[] = [];
    const partitions = new Map<number, number>();
    const missingSegments: string[] = [];
    const unreadable: string[] = [];
    let segments = 0;
    await forEachLimited(keys, concurrency, async (key) => {
      if (key.startsWith('q.')) {
        const e = await this.getSymbol(key.slice(2));
        if (!e) return;
        if (!e.cp) {
          unreadable.push(key.slice(2));
          return;
        }
        const cp = e.cp;
        if (cp.v === 1) {
          symbols.push({ symbol: cp.symbol, ss: cp.ss, q: cp.q, w: cp.w, s: cp.s, m: cp.m });
          return;
        }
        const bars = { s: [] as string[], m: [] as string[] };
        for (const [interval, refs, oldest] of [
          ['s', cp.cs, cp.os],
          ['m', cp.cm, cp.om],
        ] as const) {
          for (const ref of refs) {
            const key = segmentKey(cp.symbol, interval, cp.lb, ref);
            const seg = await this.getSegment(cp.symbol, interval, key);
            if (seg) {
              bars[interval].push(...seg.bars);
              segments++;
            } else missingSegments.push(key);
          }
          bars[interval].push(...cp[interval]);
          // Bars Redis had already trimmed stay out.
          if (oldest !== undefined) bars[interval] = bars[interval].filter((b) => barStart(b) >= oldest);
        }
        symbols.push({ symbol: cp.symbol, ss: cp.ss, q: cp.q, w: cp.w, s: bars.s, m: bars.m });
      } else if (key.startsWith('p.')) {
        const n = Number(key.slice(2));
        const e = await this.getPartition(n);
        if (e && Number.isSafeInteger(n)) partitions.set(n, e.seq);
      }
    });
    symbols.sort((a, b) => (a.symbol < b.symbol ? -1 : 1));
    return { symbols, partitions, segments, missingSegments, unreadable };
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
