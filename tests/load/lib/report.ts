// The benchmark report: one JSON file with every figure (the record), a
// markdown summary a person reads (targets with PASS/FAIL beside each
// figure and beside the committed baseline, what limited it, the machine), and
// the SVG chart. `latest.*` are copies of the newest run. All of it is local
// output (tests/load/results/ is git-ignored).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { besideBaseline, type Baseline } from './baseline.js';
import { renderChart, type ChartData } from './chart.js';
import type { CpuReport } from './cpu.js';
import type { MachineFacts } from './machine.js';
import { verdictWord, type ScenarioResult, type TargetResult } from './targets.js';

export const REPORT_SCHEMA = 'tickmesh-bench/1';

export interface BenchReport {
  schema: typeof REPORT_SCHEMA;
  runId: string;
  startedAt: string;
  finishedAt: string;
  mode: 'full' | 'quick';
  command: string;
  stack: { mode: 'reused' | 'private'; endpoints: Record<string, string>; notes: string[] };
  machine: MachineFacts;
  scenarios: ScenarioResult[];
  targets: TargetResult[];
  /** The committed baseline the figures are shown beside (tests/load/baseline.json). */
  baseline?: Baseline;
  notes: string[];
}

/** A file-name-safe UTC timestamp: 2026-11-22T02-30-05Z. */
export function runStamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

/** Checks the shape other tools rely on; returns the problems (empty when valid). */
export function validateReport(r: unknown): string[] {
  const p: string[] = [];
  const o = r as Partial<BenchReport>;
  if (typeof o !== 'object' || o === null) return ['not an object'];
  if (o.schema !== REPORT_SCHEMA) p.push(`schema must be ${REPORT_SCHEMA}`);
  for (const k of ['runId', 'startedAt', 'finishedAt', 'command'] as const)
    if (typeof o[k] !== 'string') p.push(`${k} must be a string`);
  if (o.mode !== 'full' && o.mode !== 'quick') p.push('mode must be full or quick');
  if (typeof o.machine?.cores !== 'number' || typeof o.machine?.node !== 'string')
    p.push('machine must have cores and node');
  if (!Array.isArray(o.scenarios)) p.push('scenarios must be an array');
  else
    o.scenarios.forEach((s, i) => {
      if (typeof s.id !== 'string' || typeof s.title !== 'string')
        p.push(`scenarios[${i}] needs id and title`);
      if (!['ok', 'failed', 'skipped'].includes(s.status)) p.push(`scenarios[${i}].status invalid`);
      if (typeof s.metrics !== 'object' || s.metrics === null)
        p.push(`scenarios[${i}].metrics must be an object`);
      else
        for (const [k, v] of Object.entries(s.metrics))
          if (typeof v !== 'number' || !Number.isFinite(v))
            p.push(`scenarios[${i}].metrics.${k} must be a finite number`);
    });
  if (!Array.isArray(o.targets)) p.push('targets must be an array');
  else
    o.targets.forEach((t, i) => {
      if (typeof t.id !== 'string' || typeof t.shown !== 'string' || typeof t.goal !== 'string')
        p.push(`targets[${i}] needs id, shown and goal`);
      if (t.pass !== null && typeof t.pass !== 'boolean')
        p.push(`targets[${i}].pass must be boolean or null`);
      if (t.figure !== null && typeof t.figure !== 'number')
        p.push(`targets[${i}].figure must be a number or null`);
    });
  return p;
}

export function chartData(r: BenchReport): ChartData {
  const ok = r.scenarios.filter((s) => s.status === 'ok');
  const latency = ok
    .filter(
      (s) => s.id.startsWith('ws-seed-') && s.metrics.clients !== undefined && s.metrics.p99Ms !== undefined,
    )
    .map((s) => ({
      clients: s.metrics.clients!,
      p50Ms: s.metrics.p50Ms ?? 0,
      p90Ms: s.metrics.p90Ms ?? 0,
      p99Ms: s.metrics.p99Ms!,
    }));
  return {
    title: `tickmesh benchmark ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC (${r.mode}, ${r.machine.cores} cores)`,
    latency,
    latencyGoals: [
      { clients: 1000, p99Ms: 50 },
      { clients: 5000, p99Ms: 200 },
    ],
    throughput: ok.flatMap((s) => (s.comparison ? [s.comparison] : [])),
  };
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

function metricCell(k: string, v: number): string {
  if (/Ms$/.test(k)) return `${v.toFixed(v < 10 ? 2 : 1)} ms`;
  if (/Share$/.test(k)) return `${(v * 100).toFixed(3)}%`;
  if (/(Ratio|ratio)$/.test(k)) return v.toFixed(3);
  return Number.isInteger(v) || Math.abs(v) >= 100 ? n0(v) : v.toFixed(2);
}

function cpuLine(label: string, cpu: CpuReport | undefined): string {
  if (!cpu) return '';
  const top = cpu.processes
    .filter((p) => p.avgPct >= 1)
    .slice(0, 7)
    .map((p) => `${p.name} ${p.avgPct.toFixed(0)}%`)
    .join(', ');
  return `- CPU ${label} (average, % of one core): ${top || 'none'}; machine ${cpu.machineAvgBusyPct.toFixed(0)}% busy of ${cpu.cores} cores.`;
}

export function renderMarkdown(r: BenchReport, svgFile: string): string {
  const m = r.machine;
  const L: string[] = [];
  L.push(`# tickmesh benchmark: ${r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${r.mode})`);
  L.push('');
  if (m.loadAverageAtStart[0]! > m.cores) {
    L.push(
      `> **Busy machine**: load average ${m.loadAverageAtStart[0]} on ${m.cores} cores when the run started (other work was running). Figures are indicative only; the "Limited by" lines say how much CPU went elsewhere.\n`,
    );
  }
  if (r.mode === 'quick')
    L.push(
      '> **Quick smoke run** (`make bench-quick`): short windows and fewer clients. Figures are indicative only; run `make bench` for the real ones.\n',
    );
  L.push(
    `Machine: ${m.cores} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; ${m.natsServer}; ${m.redisServer.split(' ').slice(0, 3).join(' ')}; load average at start ${m.loadAverageAtStart.join(' / ')}. ` +
      `Stack: ${r.stack.mode === 'reused' ? 'the running `make up` stack' : 'a private stack started by the benchmark'}. Everything (services, infrastructure, load generators) ran on this one machine.`,
  );
  L.push('');
  L.push(`![latency and throughput](${svgFile})`);
  L.push('');
  L.push('## Targets');
  L.push('');
  if (r.baseline)
    L.push(
      `Baseline: run ${r.baseline.runId} (${r.baseline.machine.natsServer}), tests/load/baseline.json.\n`,
    );
  L.push('| target | figure | goal | result | baseline | detail |');
  L.push('|---|---|---|---|---|---|');
  for (const t of r.targets) {
    const word = verdictWord(t.pass);
    L.push(
      `| ${t.title} | ${t.shown} | ${t.goal} | **${word}**${t.indicative ? ' (indicative)' : ''} | ${besideBaseline(t, r.baseline)} | ${t.context ?? ''} |`,
    );
  }
  L.push('');
  L.push('## Scenarios');
  const notRun = r.scenarios.filter((s) => s.status === 'skipped');
  if (notRun.length) {
    L.push('');
    L.push(`Skipped: ${notRun.map((s) => `\`${s.id}\` (${s.error ?? 'skipped'})`).join(', ')}.`);
  }
  for (const s of r.scenarios) {
    if (s.status === 'skipped') continue;
    L.push('');
    L.push(`### ${s.title} \`${s.id}\``);
    L.push('');
    if (s.status !== 'ok') {
      L.push(`**${s.status.toUpperCase()}**${s.error ? `: ${s.error}` : ''}`);
      continue;
    }
    const entries = Object.entries(s.metrics);
    if (entries.length) {
      L.push('| figure | value |');
      L.push('|---|---|');
      for (const [k, v] of entries) L.push(`| ${k} | ${metricCell(k, v)} |`);
      L.push('');
    }
    if (s.limitedBy) L.push(`Limited by: ${s.limitedBy}.`);
    L.push('');
    const phases = (s.details?.cpuPhases ?? {}) as Record<string, CpuReport>;
    const lines = Object.keys(phases).length
      ? Object.entries(phases).map(([label, cpu]) => cpuLine(`during the ${label} run`, cpu))
      : [cpuLine('over the scenario', s.details?.cpu as CpuReport | undefined)];
    for (const line of lines) if (line) L.push(line);
    const notes = s.details?.notes as string[] | undefined;
    if (notes?.length) for (const n of notes) L.push(`- ${n}`);
  }
  if (r.notes.length) {
    L.push('');
    L.push('## Notes');
    L.push('');
    for (const n of r.notes) L.push(`- ${n}`);
  }
  L.push('');
  L.push(
    `Reproduce: \`${r.command}\` (full record: \`${r.runId}.json\`; how to read it: docs/performance.md).`,
  );
  L.push('');
  return L.join('\n');
}

export interface WrittenReport {
  json: string;
  markdown: string;
  svg: string;
}

/** Writes <runId>.json/.md/.svg into `dir` and refreshes latest.json/.md/.svg. */
export async function writeReport(dir: string, r: BenchReport): Promise<WrittenReport> {
  const problems = validateReport(r);
  if (problems.length) throw new Error(`report is invalid: ${problems.join('; ')}`);
  await mkdir(dir, { recursive: true });
  const base = join(dir, r.runId);
  const files = { json: `${base}.json`, markdown: `${base}.md`, svg: `${base}.svg` };
  const svg = renderChart(chartData(r));
  await writeFile(files.json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(files.svg, svg);
  await writeFile(files.markdown, renderMarkdown(r, `${r.runId}.svg`));
  await writeFile(join(dir, 'latest.md'), renderMarkdown(r, 'latest.svg'));
  await copyFile(files.svg, join(dir, 'latest.svg'));
  await copyFile(files.json, join(dir, 'latest.json'));
  return files;
}
