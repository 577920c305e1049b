// Latency histograms (HDR, microseconds) that travel between processes as
// compressed base64 and merge exactly: percentiles of the merged histogram
// are those of all samples, unlike averaging per-worker percentiles.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** 1 µs to 1 h at 3 significant digits. */
export function newLatencyHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

// newLatencyHistogram's layout: values below 2^11 µs exactly, above that
// 1,024 sub-buckets per power of two (HDR's 3 significant digits).
const SUB_BUCKET_HALF_MAGNITUDE = 10;
const SUB_BUCKET_HALF = 1 << SUB_BUCKET_HALF_MAGNITUDE;
/** Values from 2^31 µs (~36 min) on go to the histogram directly. */
const FAST_LIMIT = 2 ** 31;

/**
 * Counts latencies into the buckets of newLatencyHistogram with integer
 * operations only, and drains them into such a histogram when it is read.
 * hdr-histogram-js computes each bucket with Math.log2 and Math.pow, which
 * was ~8% of a load worker's CPU at 5,000 clients (several recordings per
 * frame per client). Each count is re-recorded at its bucket's lowest value,
 * which lands in the same bucket: the drained histogram's percentiles are
 * those of recording every value directly.
 */
export class LatencyRecorder {
  private readonly counts = new Float64Array((31 - SUB_BUCKET_HALF_MAGNITUDE + 1) * SUB_BUCKET_HALF);
  private pending = false;

  constructor(private readonly histogram: Histogram = newLatencyHistogram()) {}

  /** Records `count` samples of `us` microseconds (a positive integer). */
  record(us: number, count = 1): void {
    if (us >= FAST_LIMIT) {
      this.histogram.recordValueWithCount(us, count);
      return;
    }
    const bucket = Math.max(0, 31 - Math.clz32(us) - SUB_BUCKET_HALF_MAGNITUDE);
    this.counts[((bucket + 1) << SUB_BUCKET_HALF_MAGNITUDE) + (us >>> bucket) - SUB_BUCKET_HALF]! += count;
    this.pending = true;
  }

  /** The histogram with every sample recorded so far. */
  get drained(): Histogram {
    if (!this.pending) return this.histogram;
    this.pending = false;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      const n = c[i]!;
      if (n === 0) continue;
      c[i] = 0;
      const bucket = Math.max(0, (i >> SUB_BUCKET_HALF_MAGNITUDE) - 1);
      const sub = bucket === 0 ? i : (i & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF;
      this.histogram.recordValueWithCount(sub * 2 ** bucket, n);
    }
    return this.histogram;
  }

  reset(): void {
    this.counts.fill(0);
    this.pending = false;
    this.histogram.reset();
  }
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(encoded: string): Histogram {
  return hdr.decodeFromCompressedBase64(encoded);
}

export function mergeHistograms(encoded: Iterable<string>): Histogram {
  const out = newLatencyHistogram();
  for (const e of encoded) out.add(decodeHistogram(e));
  return out;
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

const ms = (us: number) => Math.round(us / 10) / 100;

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
  return {
    count: h.totalCount,
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}
