// The health timeline of the fault tests: every liveness and readiness probe of a stack,
// sampled on a fixed interval, to check "NOT_SERVING during the outage, SERVING after,
// liveness SERVING throughout".
import { httpGet, type ServiceName, type Stack } from '@tickmesh/harness';

export type ProbeResult = 'SERVING' | 'NOT_SERVING' | 'UNREACHABLE' | 'TIMEOUT' | 'UNKNOWN';

export interface Probe {
  /** e.g. "price-cache readiness" */
  name: string;
  run(): Promise<ProbeResult>;
}

export interface Sample {
  at: number;
  probe: string;
  result: ProbeResult;
}

/** A gRPC health probe (`service` "" or "liveness" = process, a service name = readiness). */
export function grpcProbe(stack: Stack, svc: ServiceName, service: string, name: string): Probe {
  return {
    name,
    run: async () => {
      if (!stack.svc(svc).isRunning()) return 'UNREACHABLE';
      try {
        const s = await stack.grpcHealth(svc, service, 2000);
        return s === 'SERVING' ? 'SERVING' : s === 'NOT_SERVING' ? 'NOT_SERVING' : 'UNKNOWN';
      } catch (err) {
        const code = (err as { code?: number }).code;
        return code === 4 ? 'TIMEOUT' : 'UNREACHABLE';
      }
    },
  };
}

/** An HTTP probe: 200 = SERVING, 503 = NOT_SERVING. */
export function httpProbe(url: string, name: string): Probe {
  return {
    name,
    run: async () => {
      const code = (await httpGet(url, 2000)).status;
      return code === 200 ? 'SERVING' : code === 503 ? 'NOT_SERVING' : code === 0 ? 'UNREACHABLE' : 'UNKNOWN';
    },
  };
}

/** The standard probes of a stack: liveness and readiness of every service it runs. */
export function stackProbes(stack: Stack): Probe[] {
  const probes: Probe[] = [];
  for (const [name, s] of stack.services) {
    if (s.spec.grpcAddress && s.spec.grpcService) {
      probes.push(grpcProbe(stack, name, '', `${name} liveness`));
      probes.push(grpcProbe(stack, name, s.spec.grpcService, `${name} readiness`));
    } else {
      probes.push(httpProbe(s.spec.liveUrl, `${name} liveness`));
      probes.push(httpProbe(s.spec.readyUrl, `${name} readiness`));
    }
  }
  return probes;
}

/**
 * Samples probes every intervalMs (each probe at most one request in flight), keeping a
 * bounded timeline to check "NOT_SERVING during the outage, SERVING after, liveness
 * SERVING throughout".
 */
export class HealthTimeline {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private static readonly MAX_SAMPLES = 500_000;

  constructor(
    private readonly probes: Probe[],
    private readonly intervalMs = 150,
  ) {}

  start(): this {
    this.timer ??= setInterval(() => this.round(), this.intervalMs);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private round(): void {
    for (const p of this.probes) {
      if (this.busy.has(p.name)) continue;
      this.busy.add(p.name);
      void p
        .run()
        .catch((): ProbeResult => 'UNKNOWN')
        .then((result) => {
          this.busy.delete(p.name);
          if (this.samples.length >= HealthTimeline.MAX_SAMPLES) this.samples.shift();
          this.samples.push({ at: Date.now(), probe: p.name, result });
        });
    }
  }

  between(probe: string, from: number, to: number): Sample[] {
    return this.samples.filter((s) => s.probe === probe && s.at >= from && s.at <= to);
  }

  /** First time at or after `from` when the probe answered `result`. */
  firstAfter(probe: string, result: ProbeResult, from: number): number | undefined {
    return this.samples.find((s) => s.probe === probe && s.at >= from && s.result === result)?.at;
  }

  /** The time from which the probe answered `result` on every sample up to now (undefined if not now). */
  steadySince(probe: string, result: ProbeResult, from: number): number | undefined {
    const list = this.samples.filter((s) => s.probe === probe && s.at >= from);
    if (list.length === 0 || list[list.length - 1]!.result !== result) return undefined;
    let i = list.length - 1;
    while (i > 0 && list[i - 1]!.result === result) i--;
    return list[i]!.at;
  }

  /** Counts of each result of a probe in a window. */
  summary(probe: string, from: number, to: number): Partial<Record<ProbeResult, number>> {
    const out: Partial<Record<ProbeResult, number>> = {};
    for (const s of this.between(probe, from, to)) out[s.result] = (out[s.result] ?? 0) + 1;
    return out;
  }

  /** Compact "SERVING x12 -> NOT_SERVING x30 -> SERVING x8" of a probe in a window. */
  transitions(probe: string, from: number, to: number): string {
    const runs: Array<[ProbeResult, number]> = [];
    for (const s of this.between(probe, from, to)) {
      const last = runs[runs.length - 1];
      if (last && last[0] === s.result) last[1]++;
      else runs.push([s.result, 1]);
    }
    return runs.map(([r, n]) => `${r} x${n}`).join(' -> ') || '(no samples)';
  }
}
