// Which process was the bottleneck: samples each process's CPU time from
// /proc/<pid>/stat (and the whole machine's from /proc/stat) during a
// scenario, so the report can say what limited each figure.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcessCpu {
  name: string;
  pid: number;
  /** Average CPU over the scenario, in % of one core (a busy Node main thread is ~100). */
  avgPct: number;
  maxPct: number;
}

export interface CpuReport {
  durationMs: number;
  cores: number;
  /** Whole machine: busy share of all cores, 0-100. */
  machineAvgBusyPct: number;
  machineMaxBusyPct: number;
  processes: ProcessCpu[];
  /** One line: which process (or the machine) was saturated, if any. */
  verdict: string;
}

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of a process in clock ticks, or undefined when it is gone. */
export function parseProcStat(stat: string): number | undefined {
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

function processTicks(pid: number): number | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** [busy, total] jiffies of all cores from the first line of /proc/stat. */
export function parseMachineStat(stat: string): [number, number] {
  const fields = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0); // without guest (already in user)
  return [total - idle, total];
}

function machineTicks(): [number, number] {
  try {
    return parseMachineStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return [0, 0];
  }
}

interface Tracked {
  name: string;
  pid: number;
  last: number | undefined;
  samples: number[];
}

export class CpuSampler {
  private readonly tracked = new Map<number, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private started = 0;
  private lastAt = 0;
  private lastMachine: [number, number] = [0, 0];
  private readonly machineSamples: number[] = [];

  constructor(
    private readonly cores: number,
    private readonly intervalMs = 500,
  ) {}

  /** Adds a process to watch (may be called while sampling). */
  add(name: string, pid: number | undefined): void {
    if (pid === undefined || this.tracked.has(pid)) return;
    this.tracked.set(pid, { name, pid, last: processTicks(pid), samples: [] });
  }

  start(): void {
    this.started = this.lastAt = performance.now();
    this.lastMachine = machineTicks();
    for (const t of this.tracked.values()) t.last = processTicks(t.pid);
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    const seconds = (now - this.lastAt) / 1000;
    if (seconds <= 0) return;
    this.lastAt = now;
    const hz = ticksPerSecond();
    for (const t of this.tracked.values()) {
      const ticks = processTicks(t.pid);
      if (ticks !== undefined && t.last !== undefined)
        t.samples.push(((ticks - t.last) / hz / seconds) * 100);
      t.last = ticks;
    }
    const m = machineTicks();
    const dTotal = m[1] - this.lastMachine[1];
    if (dTotal > 0) this.machineSamples.push(((m[0] - this.lastMachine[0]) / dTotal) * 100);
    this.lastMachine = m;
  }

  stop(): CpuReport {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const processes = [...this.tracked.values()]
      .filter((t) => t.samples.length > 0)
      .map((t) => ({
        name: t.name,
        pid: t.pid,
        avgPct: round1(mean(t.samples)),
        maxPct: round1(Math.max(...t.samples)),
      }))
      .sort((a, b) => b.avgPct - a.avgPct);
    const report = {
      durationMs: Math.round(performance.now() - this.started),
      cores: this.cores,
      machineAvgBusyPct: round1(mean(this.machineSamples)),
      machineMaxBusyPct: round1(this.machineSamples.length ? Math.max(...this.machineSamples) : 0),
      processes,
    };
    return { ...report, verdict: cpuVerdict(report) };
  }
}

/**
 * A Node process is saturated when its average passes 85% of one core (its
 * main thread does nearly all the work); the machine when it is 90% busy.
 */
export function cpuVerdict(r: Omit<CpuReport, 'verdict'>): string {
  const hot = r.processes.filter((p) => p.avgPct >= 85).map((p) => `${p.name} ${p.avgPct.toFixed(0)}%`);
  const top = r.processes[0];
  const busiest = top ? `busiest: ${top.name} ${top.avgPct.toFixed(0)}%` : '';
  // CPU used by processes the benchmark does not know (other work on a shared machine).
  const ours = r.processes.reduce((a, p) => a + p.avgPct, 0);
  const outside = Math.max(0, r.machineAvgBusyPct * r.cores - ours);
  const others = outside >= 20 ? `${outside.toFixed(0)}% of a core used outside the benchmark` : '';
  if (r.machineAvgBusyPct >= 90) {
    const machine = `machine ${r.machineAvgBusyPct.toFixed(0)}% busy (all ${r.cores} cores)`;
    return `saturated: ${[...hot, machine].join(', ')}${hot.length ? '' : `; ${busiest}`}${others ? `; ${others}` : ''}`;
  }
  if (hot.length) return `saturated: ${hot.join(', ')}${others ? `; ${others}` : ''}`;
  return `nothing saturated (${[busiest, `machine ${r.machineAvgBusyPct.toFixed(0)}%`, others].filter(Boolean).join(', ')})`;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const round1 = (x: number) => Math.round(x * 10) / 10;
