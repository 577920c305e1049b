// Trend detection for the soak run: least-squares slopes of a metric over time, and the
// verdict on growth (pure, unit-tested in trend.test.ts).

export interface Point {
  /** Minutes since the start. */
  x: number;
  y: number;
}

/** Least-squares slope of y over x (y units per x unit); NaN with fewer than 3 points. */
export function slope(points: Point[]): number {
  return fit(points).slope;
}

/** Least-squares fit: slope and its standard error (NaN with fewer than 3 points). */
export function fit(points: Point[]): { slope: number; stderr: number } {
  const p = points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y));
  if (p.length < 3) return { slope: NaN, stderr: NaN };
  const n = p.length;
  const mx = p.reduce((a, q) => a + q.x, 0) / n;
  const my = p.reduce((a, q) => a + q.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const q of p) {
    num += (q.x - mx) * (q.y - my);
    den += (q.x - mx) ** 2;
  }
  if (den === 0) return { slope: NaN, stderr: NaN };
  const b = num / den;
  const a = my - b * mx;
  const residuals = p.reduce((acc, q) => acc + (q.y - (a + b * q.x)) ** 2, 0);
  return { slope: b, stderr: Math.sqrt(residuals / (n - 2) / den) };
}

/** The points of the second half of the run (after warm-up: JIT, heap sizing, caches filling). */
export function secondHalf(points: Point[]): Point[] {
  if (points.length === 0) return [];
  const end = points[points.length - 1]!.x;
  return points.filter((p) => p.x >= end / 2);
}

export interface TrendLimit {
  /** What is measured, e.g. "gateway RSS (MB)". */
  name: string;
  points: Point[];
  /** Largest allowed slope over the second half, in y units per minute. */
  maxSlopePerMin: number;
}

export interface TrendVerdict {
  name: string;
  slopePerMin: number;
  /** Standard error of the slope: GC sawtooth and load noise make short runs uncertain. */
  stderrPerMin: number;
  maxSlopePerMin: number;
  ok: boolean;
}

/**
 * One verdict per limit. A trend fails when the slope exceeds the limit by more than two
 * standard errors (so the growth is real, not the GC sawtooth of a short run); a slope that
 * cannot be computed (too few points) fails too.
 */
export function judge(limits: TrendLimit[]): TrendVerdict[] {
  return limits.map((l) => {
    const f = fit(secondHalf(l.points));
    return {
      name: l.name,
      slopePerMin: f.slope,
      stderrPerMin: f.stderr,
      maxSlopePerMin: l.maxSlopePerMin,
      ok: Number.isFinite(f.slope) && f.slope - 2 * f.stderr <= l.maxSlopePerMin,
    };
  });
}

/** "10m", "90s", "1h", or milliseconds. */
export function parseDuration(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`bad duration ${JSON.stringify(text)} (use e.g. 90s, 10m, 1h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
}
