// The load of the fault tests (overridable by env for a quick local run or a heavier one)
// and how results are printed.
import type { FaultResult, HarnessOptions } from './harness.js';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};

/** "K=V,K=V" from an env var: extra service settings for experiments (e.g. a shorter ack wait). */
function envList(name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env[name] ?? '').split(',')) {
    const i = pair.indexOf('=');
    if (i > 0) out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}

export function faultLoad(o: { priceProxy: boolean }): HarnessOptions {
  return {
    simRate: num('FAULTS_SIM_RATE', 1000),
    clients: num('FAULTS_WS_CLIENTS', 100),
    allSymbolClients: num('FAULTS_WS_ALL_CLIENTS', 5),
    producers: num('FAULTS_PRODUCERS', 2),
    producerRate: num('FAULTS_PRODUCER_RATE', 100),
    gatewayAuth: 'api-key',
    log: (line) => process.stderr.write(`# ${line}\n`),
    stack: {
      priceProxy: o.priceProxy,
      env: {
        // A silent upstream is noticed after 3 heartbeats: 3 s instead of 15 s, so a 10 s
        // partition is seen (docs/reliability.md discusses the production value).
        'price-cache': { STREAM_HEARTBEAT_MS: '1000', ...envList('FAULTS_PRICE_CACHE_ENV') },
      },
    },
  };
}

export function report(t: { diagnostic(msg: string): void }, r: FaultResult): void {
  t.diagnostic(
    `${r.name}: outage ${(r.outageMs / 1000).toFixed(1)} s; recovery ${(r.recoveryMs / 1000).toFixed(2)} s after the dependency returned (readiness ${(r.readinessMs / 1000).toFixed(2)} s, live ticks at every client ${(r.clientsMs / 1000).toFixed(2)} s)`,
  );
  for (const [probe, line] of Object.entries(r.timeline)) t.diagnostic(`  ${probe}: ${line}`);
  t.diagnostic(`  ${r.stats}`);
}
