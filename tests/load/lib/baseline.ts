// The committed baseline (tests/load/baseline.json): the headline figure of every
// target from a full run on the reference machine. Reports and the run's summary
// print each new figure beside it, so a change in efficiency shows even when every
// goal still passes. Run output itself stays out of git (tests/load/results/).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from './report.js';
import type { TargetResult } from './targets.js';

export const BASELINE_SCHEMA = 'tickmesh-bench-baseline/1';
export const BASELINE_PATH = fileURLToPath(new URL('../baseline.json', import.meta.url));

export interface BaselineFigure {
  title: string;
  figure: number | null;
  shown: string;
  goal: string;
}

export interface Baseline {
  schema: typeof BASELINE_SCHEMA;
  /** The run the figures come from. */
  runId: string;
  machine: { cores: number; cpuModel: string; node: string; natsServer: string };
  targets: Record<string, BaselineFigure>;
}

/** The baseline of a full run's report; quick runs are smoke tests and never a baseline. */
export function baselineOf(r: BenchReport): Baseline {
  if (r.mode !== 'full') throw new Error('only a full run (make bench) can become the baseline');
  const { cores, cpuModel, node, natsServer } = r.machine;
  return {
    schema: BASELINE_SCHEMA,
    runId: r.runId,
    machine: { cores, cpuModel, node, natsServer },
    targets: Object.fromEntries(
      r.targets.map((t) => [t.id, { title: t.title, figure: t.figure, shown: t.shown, goal: t.goal }]),
    ),
  };
}

export function readBaseline(path = BASELINE_PATH): Baseline {
  const b = JSON.parse(readFileSync(path, 'utf8')) as Partial<Baseline>;
  if (b.schema !== BASELINE_SCHEMA || typeof b.targets !== 'object' || b.targets === null)
    throw new Error(`${path}: not a ${BASELINE_SCHEMA} file`);
  return b as Baseline;
}

export function writeBaseline(b: Baseline, path = BASELINE_PATH): void {
  writeFileSync(path, `${JSON.stringify(b, null, 2)}\n`);
}

/** How a target's figure compares with the baseline's: "95,075/s (+3%)", or "—" when either is missing. */
export function besideBaseline(t: TargetResult, b: Baseline | undefined): string {
  const base = b?.targets[t.id];
  if (!base) return '—';
  if (t.figure === null || base.figure === null || base.figure === 0) return base.shown;
  const change = (t.figure / base.figure - 1) * 100;
  const sign = change >= 0 ? '+' : '−';
  return `${base.shown} (now ${sign}${Math.abs(change).toFixed(0)}%)`;
}
