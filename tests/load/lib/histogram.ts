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
