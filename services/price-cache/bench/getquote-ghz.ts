// ghz GetQuote against the price-cache and against a bare grpc-js unary
// server, same settings, same run. Goal: >= 90% of the bare rps at <= 1.5x
// its p99.
//
//   node --import tsx services/price-cache/bench/getquote-ghz.ts [--seconds 10] [--concurrency 50]
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { PriceServiceClient } from '@tickmesh/kit/proto';
import { createClient, kitPath, projectPath, encodeBatch, partitionOf, tickSubject } from '@tickmesh/kit';
import { arg, freePort, priceCacheEnv, runTs, startInfra, stopChild, waitUntil } from './common.js';

const SECONDS = arg('seconds', 10);
const CONCURRENCY = arg('concurrency', 50);
const GHZ = projectPath('.tools', 'bin', 'ghz');
const execFileP = promisify(execFile);

interface GhzResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  errors: number;
}

async function ghz(port: number, seconds: number): Promise<GhzResult> {
  const { stdout } = await execFileP(
    GHZ,
    [
      '--insecure',
      '--protoset',
      kitPath('descriptors', 'tickmesh.binpb'),
      '--call',
      'tickmesh.price.v1.PriceService/GetQuote',
      '-d',
      '{"symbol":"THYAO"}',
      '--concurrency',
      String(CONCURRENCY),
      '--connections',
      '1',
      '--cpus',
      '1',
      '--duration',
      `${seconds}s`,
      '--duration-stop',
      'wait',
      '--format',
      'json',
      `127.0.0.1:${port}`,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as {
    rps: number;
    latencyDistribution: Array<{ percentage: number; latency: number }> | null;
    statusCodeDistribution: Record<string, number>;
  };
  const pct = (p: number) =>
    (r.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? Number.NaN) / 1e6;
  const ok = r.statusCodeDistribution.OK ?? 0;
  const total = Object.values(r.statusCodeDistribution).reduce((a, b) => a + b, 0);
  return { rps: r.rps, p50Ms: pct(50), p99Ms: pct(99), ok, errors: total - ok };
}

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const infra = await startInfra();
const children: Array<ReturnType<typeof runTs>> = [];
try {
  const nc = await connect({ servers: infra.nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'TICKS', subjects: ['ticks.>'], storage: 'file' as never });
  const pcPort = await freePort();
  const pcMetrics = await freePort();
  children.push(runTs('services/price-cache/src/main.ts', priceCacheEnv(infra, pcPort, pcMetrics)));
  const bare = runTs('services/price-cache/bench/bare-server.ts', {}, { stdout: 'pipe', args: ['unary'] });
  children.push(bare);
  const [line] = (await once(bare.stdout!, 'data')) as [Buffer];
  const barePort = Number(/listening (\d+)/.exec(line.toString())![1]);
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${pcMetrics}/readyz`)).ok, 'price-cache ready');
  await jetstream(nc).publish(
    tickSubject(partitionOf('THYAO', 8)),
    encodeBatch([
      {
        symbol: 'THYAO',
        price: 286.25,
        size: 25,
        producerId: 'bench',
        producerSeq: 1,
        eventTimeMs: Date.now(),
        bid: 286,
        ask: 286.5,
      },
    ]),
  );
  const client = createClient(PriceServiceClient, `127.0.0.1:${pcPort}`, {
    unaryDeadlineMs: 2000,
    service: 'tickmesh.price.v1.PriceService',
  });
  await waitUntil(
    () => new Promise<boolean>((resolve) => client.getQuote({ symbol: 'THYAO' }, (err) => resolve(!err))),
    'a THYAO quote',
  );
  client.close();

  const ROUNDS = arg('rounds', 5);
  const per = SECONDS / ROUNDS;
  console.log(
    `ghz GetQuote: concurrency ${CONCURRENCY}, 1 connection, ghz on 1 CPU; ${ROUNDS} rounds of ${per} s per server, order alternating (after a 2 s warm-up each)`,
  );
  await ghz(barePort, 2);
  await ghz(pcPort, 2);
  // Short interleaved rounds: a burst of other load on the machine hits both alike.
  const runs: Record<'bare' | 'priceCache', GhzResult[]> = { bare: [], priceCache: [] };
  // Server CPU per call: less sensitive to other load on the machine than rps.
  const cpu = { bare: 0, priceCache: 0 };
  const pids = { bare: bare.pid!, priceCache: children[0]!.pid! };
  for (let i = 0; i < ROUNDS; i++) {
    const order: Array<'bare' | 'priceCache'> = i % 2 === 0 ? ['bare', 'priceCache'] : ['priceCache', 'bare'];
    for (const who of order) {
      const before = cpuSeconds(pids[who]);
      runs[who].push(await ghz(who === 'bare' ? barePort : pcPort, per));
      cpu[who] += cpuSeconds(pids[who]) - before;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = (rs: GhzResult[]): GhzResult => ({
    rps: median(rs.map((r) => r.rps)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    ok: rs.reduce((a, r) => a + r.ok, 0),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  });
  const b = summary(runs.bare);
  const p = summary(runs.priceCache);
  const row = (name: string, r: GhzResult) =>
    `${name.padEnd(12)} ${r.rps.toFixed(0).padStart(8)} rps   p50 ${r.p50Ms.toFixed(2).padStart(6)} ms   p99 ${r.p99Ms.toFixed(2).padStart(6)} ms   ok ${r.ok}  errors ${r.errors}   (medians of ${ROUNDS} rounds)`;
  console.log(row('bare grpc-js', b));
  console.log(row('price-cache', p));
  const rpsRatios = runs.priceCache.map((r, i) => r.rps / runs.bare[i]!.rps);
  const p99Ratios = runs.priceCache.map((r, i) => r.p99Ms / runs.bare[i]!.p99Ms);
  console.log(
    `per-round rps ratios: ${rpsRatios.map((r) => `${(100 * r).toFixed(0)}%`).join(' ')}; p99 ratios: ${p99Ratios.map((r) => r.toFixed(2)).join(' ')}`,
  );
  const rpsRatio = median(rpsRatios);
  const p99Ratio = median(p99Ratios);
  const cpuPerCall = (who: 'bare' | 'priceCache') =>
    (cpu[who] * 1e6) / runs[who].reduce((a, r) => a + r.ok, 0);
  console.log(
    `server CPU per call: bare ${cpuPerCall('bare').toFixed(0)} us, price-cache ${cpuPerCall('priceCache').toFixed(0)} us (${(cpuPerCall('priceCache') / cpuPerCall('bare')).toFixed(2)}x)`,
  );
  console.log(
    `median ratio: rps ${(100 * rpsRatio).toFixed(1)}% of bare (goal >= 90%), p99 ${p99Ratio.toFixed(2)}x bare (goal <= 1.5x)`,
  );
  console.log(
    JSON.stringify({
      bare: b,
      priceCache: p,
      rpsRatio: Number(rpsRatio.toFixed(3)),
      p99Ratio: Number(p99Ratio.toFixed(3)),
    }),
  );
  await nc.close();
} finally {
  for (const c of children) await stopChild(c);
  await infra.stop();
}
