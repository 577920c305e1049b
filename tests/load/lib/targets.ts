// The performance targets (docs/performance.md), evaluated against
// the scenario figures. A target whose figure is missing (scenario skipped
// or failed) is "not measured", never a pass.

export interface ScenarioResult {
  /** Stable id, e.g. "ghz-GetQuote", "ws-seed-1000". */
  id: string;
  title: string;
  status: 'ok' | 'failed' | 'skipped';
  error?: string;
  durationMs: number;
  /** Flat figures, e.g. { rps, p99Ms, baselineRps, rpsRatio }. */
  metrics: Record<string, number>;
  /** What limited the figure (the saturated process), from CPU sampling. */
  limitedBy?: string;
  /** The headline throughput against its bare baseline (drawn in the chart). */
  comparison?: { label: string; value: number; baseline: number; unit: string };
  /** Anything else worth keeping (per-process CPU, time series, raw summaries). */
  details?: Record<string, unknown>;
}

export type Comparison = '>=' | '<=' | '==';

export interface TargetSpec {
  id: string;
  title: string;
  scenario: string;
  metric: string;
  op: Comparison;
  threshold: number;
  /** How the figure and the goal are shown. */
  format: 'ratio' | 'rate' | 'ms' | 'share' | 'count';
  /** Extra context shown beside the figure, built from the scenario's metrics. */
  context?: (m: Record<string, number>) => string;
}

export interface TargetResult {
  id: string;
  title: string;
  scenario: string;
  figure: number | null;
  shown: string;
  goal: string;
  /** null: not measured (scenario skipped, failed, or the figure is missing). */
  pass: boolean | null;
  context?: string;
  /** Quick runs are smoke tests: their verdicts are indicative only. */
  indicative?: boolean;
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

export function formatFigure(format: TargetSpec['format'], x: number, op: Comparison = '>='): string {
  switch (format) {
    case 'ratio':
      // A ceiling ("p99 <= 1.5x bare") reads as a multiple, a floor as a share.
      return op === '<=' ? `${x.toFixed(2)}x bare` : `${(x * 100).toFixed(0)}% of bare`;
    case 'rate':
      return `${n0(x)}/s`;
    case 'ms':
      return x >= 1000 ? `${n0(x)} ms` : `${x.toFixed(1)} ms`;
    case 'share':
      return `${(x * 100).toFixed(x >= 0.99 ? 3 : 1)}%`;
    case 'count':
      return n0(x);
  }
}

export function formatGoal(t: TargetSpec): string {
  if (t.format === 'ratio' && t.op === '<=') return `<= ${t.threshold}x bare`;
  const shown =
    t.format === 'ratio'
      ? `${(t.threshold * 100).toFixed(0)}% of bare`
      : t.format === 'share'
        ? `${(t.threshold * 100).toFixed(1)}%`
        : t.format === 'ms'
          ? `${t.threshold} ms`
          : t.format === 'rate'
            ? `${n0(t.threshold)}/s`
            : n0(t.threshold);
  return `${t.op} ${shown}`;
}

export function compare(op: Comparison, x: number, threshold: number): boolean {
  if (op === '>=') return x >= threshold;
  if (op === '<=') return x <= threshold;
  return x === threshold;
}

const ratioCtx = (value: string, base: string, unit: string) => (m: Record<string, number>) =>
  m[value] !== undefined && m[base] !== undefined ? `${n0(m[value]!)} vs bare ${n0(m[base]!)} ${unit}` : '';

export const TARGETS: TargetSpec[] = [
  {
    id: 'getquote-rps',
    title: 'GetQuote throughput (ghz)',
    scenario: 'ghz-GetQuote',
    metric: 'rpsRatio',
    op: '>=',
    threshold: 0.9,
    format: 'ratio',
    context: (m) =>
      [
        ratioCtx('rps', 'baselineRps', 'rps')(m),
        m.rpsPerCoreRatio !== undefined
          ? `per core of server CPU: ${(m.rpsPerCoreRatio * 100).toFixed(0)}% of bare`
          : '',
      ]
        .filter(Boolean)
        .join('; '),
  },
  {
    id: 'getquote-p99',
    title: 'GetQuote p99 latency (ghz)',
    scenario: 'ghz-GetQuote',
    metric: 'p99Ratio',
    op: '<=',
    threshold: 1.5,
    format: 'ratio',
    context: (m) =>
      m.p99Ms !== undefined && m.baselineP99Ms !== undefined
        ? `${m.p99Ms.toFixed(1)} ms vs bare ${m.baselineP99Ms.toFixed(1)} ms (${(m.p99Ratio ?? 0).toFixed(2)}x)`
        : '',
  },
  {
    id: 'streamquotes-rate',
    title: 'StreamQuotes quote messages/s to 100 streams',
    scenario: 'stream-StreamQuotes',
    metric: 'quotesPerSecond',
    op: '>=',
    threshold: 70_000,
    format: 'rate',
    context: (m) =>
      m.baselineQuotesPerSecond !== undefined
        ? `bare grpc-js ${n0(m.baselineQuotesPerSecond)}/s (${((m.ratio ?? 0) * 100).toFixed(0)}%)`
        : '',
  },
  {
    id: 'ingest-rate',
    title: 'End-to-end ingest ticks/s (stored, applied)',
    scenario: 'e2e-ingest',
    metric: 'ticksPerSecond',
    op: '>=',
    threshold: 20_000,
    format: 'rate',
    context: (m) => (m.maxLagMs !== undefined ? `max apply lag ${n0(m.maxLagMs)} ms` : ''),
  },
  {
    id: 'ingest-loss',
    title: 'End-to-end ingest: loss check (ticks lost or doubled, symbols or clients off)',
    scenario: 'e2e-ingest',
    metric: 'lossOrDuplicates',
    op: '==',
    threshold: 0,
    format: 'count',
    context: (m) =>
      m.ticksAcked !== undefined
        ? `${n0(m.ticksAcked)} acked, ${n0(m.ticksApplied ?? 0)} applied, ${n0(m.symbolsMismatched ?? 0)} symbols off, ${n0(m.clientsMismatched ?? 0)} clients off`
        : '',
  },
  {
    id: 'seed-1000-p99',
    title: 'Seed, 1,000 WebSocket clients: quote delay p99',
    scenario: 'ws-seed-1000',
    metric: 'p99Ms',
    op: '<=',
    threshold: 50,
    format: 'ms',
    context: (m) =>
      m.p50Ms !== undefined ? `p50 ${m.p50Ms.toFixed(1)} ms, ${n0(m.clientsConnected ?? 0)} connected` : '',
  },
  {
    id: 'seed-1000-delivered',
    title: 'Seed, 1,000 WebSocket clients: ticks delivered',
    scenario: 'ws-seed-1000',
    metric: 'deliveredShare',
    op: '>=',
    threshold: 0.999,
    format: 'share',
  },
  {
    id: 'seed-5000-p99',
    title: 'Seed, 5,000 WebSocket clients: quote delay p99',
    scenario: 'ws-seed-5000',
    metric: 'p99Ms',
    op: '<=',
    threshold: 200,
    format: 'ms',
    context: (m) =>
      m.p50Ms !== undefined ? `p50 ${m.p50Ms.toFixed(1)} ms, ${n0(m.clientsConnected ?? 0)} connected` : '',
  },
  {
    id: 'seed-5000-delivered',
    title: 'Seed, 5,000 WebSocket clients: ticks delivered',
    scenario: 'ws-seed-5000',
    metric: 'deliveredShare',
    op: '>=',
    threshold: 0.999,
    format: 'share',
  },
  {
    id: 'fanout-frames',
    title: 'Fan-out frames/s vs bare ws (1,000 clients; 300 in quick runs)',
    scenario: 'ws-fanout',
    metric: 'framesRatio',
    op: '>=',
    threshold: 0.8,
    format: 'ratio',
    context: (m) =>
      [
        ratioCtx('framesPerSecond', 'baselineFramesPerSecond', 'frames/s')(m),
        m.framesPerCoreRatio !== undefined
          ? `per core of server CPU: ${(m.framesPerCoreRatio * 100).toFixed(0)}% of bare`
          : '',
      ]
        .filter(Boolean)
        .join('; '),
  },
];

export function evaluateTargets(
  scenarios: ScenarioResult[],
  opts: { quick?: boolean; targets?: TargetSpec[] } = {},
): TargetResult[] {
  const byId = new Map(scenarios.map((s) => [s.id, s]));
  return (opts.targets ?? TARGETS).map((t) => {
    const s = byId.get(t.scenario);
    const x = s?.status === 'ok' ? s.metrics[t.metric] : undefined;
    const measured = x !== undefined && Number.isFinite(x);
    const base: TargetResult = {
      id: t.id,
      title: t.title,
      scenario: t.scenario,
      figure: measured ? x : null,
      shown: measured
        ? formatFigure(t.format, x, t.op)
        : s
          ? `not measured (${s.status}${s.error ? `: ${s.error}` : ''})`
          : 'not measured (not run)',
      goal: formatGoal(t),
      pass: measured ? compare(t.op, x, t.threshold) : null,
    };
    const context = measured && t.context ? t.context(s!.metrics) : '';
    if (context) base.context = context;
    if (opts.quick) base.indicative = true;
    return base;
  });
}

export function verdictWord(pass: boolean | null): 'PASS' | 'FAIL' | 'NOT MEASURED' {
  return pass === null ? 'NOT MEASURED' : pass ? 'PASS' : 'FAIL';
}
