// Checkpoints: Redis is a cache, JetStream the truth. Every symbol's state
// (quote hash, watermarks, retained bars, with the ss it covers) is kept in a
// JetStream KV bucket: `q.<SYM>` holds the quote, watermarks, the bars that
// are not sealed yet and the list of the symbol's sealed bar segments
// (`c.<SYM>.<s|m>.<late bound>.<first bar start>`, immutable, written once:
// bar-segments.ts).
// Per partition, `p.<n>` is the stream seq all those checkpoints cover, so a
// rebuild restores them and replays only the stream's tail. `q.*` writes are
// compare-and-set on the KV revision and only ever move a key forward (a
// higher ss), so replicas never regress a checkpoint (docs/price-cache.md
// "Checkpoints").
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';
import { barStart, type SegmentRef } from './bar-segments.js';
import type { Interval } from './state.js';

const bars = z.array(z.string());
const hash = z.record(z.string(), z.string());
const safeInt = z.number().int().refine(Number.isSafeInteger);
const segmentRef = z.tuple([safeInt, safeInt]);

const StoredForm = z.object({
  symbol: z.string(),
  ss: safeInt,
  /**
   * Identity of the tick stream `ss` and the watermarks' stream seqs refer to
   * (its creation time). Absent in records of versions that did not keep it:
   * those refer to the stream the `stream` key names (below).
   */
  sid: z.string().optional(),
  /** The quote hash, verbatim. */
  q: hash,
  /** Watermarks, verbatim. */
  w: hash,
  /** Bars (sorted-set members), oldest first. */
  s: bars,
  m: bars,
});

const CheckpointSchema = z.discriminatedUnion('v', [
  // Version 1 carried every retained bar inline; it is still restored.
  StoredForm.extend({ v: z.literal(1) }),
  // Version 2: `s` and `m` hold only the bars not in a sealed segment.
  StoredForm.extend({
    v: z.literal(2),
    /** LATE_TICK_BOUND_MS the segments were sealed under (another bound re-seals them). */
    lb: safeInt,
    /** Sealed segments of 1-second and 1-minute bars, oldest first. */
    cs: z.array(segmentRef),
    cm: z.array(segmentRef),
    /**
     * Start of the oldest bar Redis retained per interval (absent: none). A
     * listed segment may hold older bars that Redis had trimmed; a restore
     * leaves them out, whatever the retention is by then.
     */
    os: safeInt.optional(),
    om: safeInt.optional(),
  }),
]);

const SegmentSchema = z.object({ v: z.literal(1), symbol: z.string(), i: z.enum(['s', 'm']), bars });

/** A symbol's stored form; as a rebuild restores it, `s` and `m` hold every bar. */
export type RestoredSymbol = z.infer<typeof StoredForm>;
export type Checkpoint = z.infer<typeof CheckpointSchema>;
export type CheckpointV2 = Extract<Checkpoint, { v: 2 }>;
export type Segment = z.infer<typeof SegmentSchema>;

/** A checkpoint larger than this is not written (it would not fit a NATS message). */
export const MAX_CHECKPOINT_BYTES = 960 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCheckpoint(cp: Checkpoint): Uint8Array {
  return encoder.encode(JSON.stringify(cp));
}

export function decodeCheckpoint(data: Uint8Array): Checkpoint | undefined {
  return parseJson(CheckpointSchema, data);
}

/**
 * The late bound is part of the key: segments re-sealed under another bound
 * never overwrite ones a record still lists.
 */
export function segmentKey(symbol: string, interval: Interval, lateBoundMs: number, ref: SegmentRef): string {
  return `c.${symbol}.${interval}.${lateBoundMs}.${ref[0]}`;
}

/** Keys of every segment a record lists, 1-second ones first. */
export function listedSegmentKeys(cp: CheckpointV2): string[] {
  return [
    ...cp.cs.map((ref) => segmentKey(cp.symbol, 's', cp.lb, ref)),
    ...cp.cm.map((ref) => segmentKey(cp.symbol, 'm', cp.lb, ref)),
  ];
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
  return parseJson(SegmentSchema, data);
}

/** The value when `data` is JSON of that shape, else undefined (never throws). */
function parseJson<T>(schema: z.ZodType<T>, data: Uint8Array): T | undefined {
  try {
    const out = schema.safeParse(JSON.parse(decoder.decode(data)));
    return out.success ? out.data : undefined;
  } catch {
    return undefined;
  }
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

  /**
   * The stream identity the partition marks (and records without `sid`)
   * refer to; undefined before any replica recorded one.
   */
  async getStream(): Promise<{ stream: string; revision: number } | undefined> {
    const e = await this.kv.get('stream');
    if (!e || e.operation !== 'PUT') return undefined;
    return { stream: decoder.decode(e.value), revision: e.revision };
  }

  /** Records the stream the marks refer to, compare-and-set on the revision read (undefined: absent). */
  async setStream(stream: string, revision: number | undefined): Promise<boolean> {
    return this.compareAndSet('stream', encoder.encode(stream), revision);
  }

  /** Drops every partition mark (they refer to a stream that is gone). */
  async purgePartitions(partitions: number): Promise<void> {
    for (let n = 0; n < partitions; n++) await this.purgeKey(`p.${n}`);
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
    return this.compareAndSet(`q.${symbol}`, data, revision);
  }

  /** Writes `key` only if it is still at `revision` (undefined: absent); false when it moved. */
  private async compareAndSet(key: string, data: Uint8Array, revision: number | undefined): Promise<boolean> {
    try {
      if (revision !== undefined) await this.kv.update(key, data, revision);
      else await this.kv.create(key, data);
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
      if (await this.compareAndSet(`p.${n}`, encoder.encode(String(seq)), cur?.revision)) return true;
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
    /** What the `stream` key holds (the marks' stream). */
    stream: string | undefined;
    symbols: RestoredSymbol[];
    partitions: Map<number, number>;
    segments: number;
    missingSegments: string[];
    unreadable: string[];
  }> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys(['q.>', 'p.>'])) keys.push(k);
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
          symbols.push({ symbol: cp.symbol, ss: cp.ss, sid: cp.sid, q: cp.q, w: cp.w, s: cp.s, m: cp.m });
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
        symbols.push({ symbol: cp.symbol, ss: cp.ss, sid: cp.sid, q: cp.q, w: cp.w, s: bars.s, m: bars.m });
      } else if (key.startsWith('p.')) {
        const n = Number(key.slice(2));
        const e = await this.getPartition(n);
        if (e && Number.isSafeInteger(n)) partitions.set(n, e.seq);
      }
    });
    symbols.sort((a, b) => (a.symbol < b.symbol ? -1 : 1));
    const stream = (await this.getStream())?.stream;
    return { stream, symbols, partitions, segments, missingSegments, unreadable };
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
