// Soak run (`make soak`; not in CI): a private stack under moderate load for SOAK_DURATION
// (default 10 min): the simulator at 500 ticks/s, a producer streaming 100 ticks/s with
// resend, 200 WebSocket clients, unary calls to the price-cache and the customer service.
// Every SOAK_SAMPLE (default 10 s) it samples each service's RSS (/proc) and event-loop
// delay p99 (prom-client's nodejs_eventloop_lag_p99_seconds), and the clients' delivery
// latency (tick event time -> receipt). It prints a table and fails (exit 1) when, over the
// second half of the run, RSS grows faster than SOAK_RSS_SLOPE_MB_PER_MIN (default 1 MB/min)
// for any service, or the clients' p99 latency grows faster than SOAK_LATENCY_SLOPE_MS_PER_MIN
// (default 20 ms/min) by more than two standard errors, or a client saw a protocol violation,
// or a service crashed. Runs shorter than 5 minutes print the trends without judging them.
//
//   node --import tsx tests/soak/soak.ts                    # 10 minutes
//   SOAK_DURATION=90s SOAK_SAMPLE=5s node --import tsx tests/soak/soak.ts
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomerServiceClient, type CreateCustomerResponse, PriceServiceClient } from '@tickmesh/kit/proto';
import { createClient, loadUniverse } from '@tickmesh/kit';
import { metricValue, startStack, waitUntil, type ServiceName, type Stack } from '@tickmesh/harness';
import { ProducerLoad } from '../faults/lib/producers.js';
import { TrackedClient } from '../faults/lib/ws-tracker.js';
import { judge, parseDuration, type Point, type TrendLimit } from './trend.js';

const DURATION_MS = parseDuration(process.env.SOAK_DURATION, 10 * 60_000);
const SAMPLE_MS = parseDuration(process.env.SOAK_SAMPLE, 10_000);
const RSS_SLOPE = Number(process.env.SOAK_RSS_SLOPE_MB_PER_MIN) || 1;
const LATENCY_SLOPE = Number(process.env.SOAK_LATENCY_SLOPE_MS_PER_MIN) || 20;
const SIM_RATE = Number(process.env.SOAK_SIM_RATE) || 500;
const CLIENTS = Number(process.env.SOAK_WS_CLIENTS) || 200;
/**
 * Below this, the second half of the run is still warm-up (V8 sizing its heaps, JIT, caches
 * filling): trends are printed but not judged, so a short run checks the machinery only.
 */
const MIN_JUDGED_MS = 5 * 60_000;

const log = (line: string) => process.stdout.write(`${line}\n`);

interface Row {
  min: number;
  rss: Partial<Record<ServiceName, number>>;
  /** V8 heap in use (MB): tells heap growth (a leak) from allocator/heap-sizing noise in RSS. */
  heap: Partial<Record<ServiceName, number>>;
  loop: Partial<Record<ServiceName, number>>;
  p50: number;
  p99: number;
  quotesPerS: number;
  unaryErrors: number;
}

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<number> {
  log(
    `soak: ${DURATION_MS / 1000} s, sample every ${SAMPLE_MS / 1000} s; simulator ${SIM_RATE} ticks/s, ${CLIENTS} WebSocket clients, 1 producer at 100 ticks/s, unary calls`,
  );
  const stack: Stack = await startStack({ simRate: SIM_RATE, log });
  const universe = loadUniverse('bist30');
  const symbols = universe.instruments.map((i) => i.symbol);
  let window: number[] = [];
  const clients = Array.from({ length: CLIENTS }, (_, i) => {
    const follow: string[] | '*' =
      i < 10 ? '*' : [0, 1, 2].map((k) => symbols[(i * 3 + k) % symbols.length]!);
    return new TrackedClient({
      url: stack.wsUrl,
      symbols: follow,
      onLatency: (ms) => {
        if (window.length < 2_000_000) window.push(ms);
      },
    });
  });
  const producer = new ProducerLoad(
    'soak-producer',
    stack.svc('ticker').spec.grpcAddress!,
    universe.instruments,
    100,
    7,
  );
  const price = createClient(PriceServiceClient, stack.svc('price-cache').spec.grpcAddress!, {
    unaryDeadlineMs: 5000,
    service: 'tickmesh.price.v1.PriceService',
  });
  const customers = createClient(CustomerServiceClient, stack.svc('customers').spec.grpcAddress!, {
    unaryDeadlineMs: 5000,
    service: 'tickmesh.customer.v1.CustomerService',
  });
  let unaryErrors = 0;
  let running = true;
  const rows: Row[] = [];
  try {
    for (const c of clients) c.start();
    producer.start();
    await waitUntil(() => clients.every((c) => c.subscribed), {
      timeoutMs: 60_000,
      what: 'every client subscribed',
    });
    const customer = await new Promise<CreateCustomerResponse>((resolve, reject) =>
      customers.createCustomer({ firstName: 'Soak', lastName: 'Test', email: 'soak@example.com' }, (e, r) =>
        e ? reject(e) : resolve(r),
      ),
    );
    // Periodic unary calls: a quote every 100 ms, a customer read every 200 ms.
    const unary = (async () => {
      let i = 0;
      while (running) {
        const s = symbols[i++ % symbols.length]!;
        price.getQuote({ symbol: s }, (e) => e && e.code !== 5 && unaryErrors++);
        if (i % 2 === 0) customers.getCustomer({ id: customer.customer!.id }, (e) => e && unaryErrors++);
        if (i % 50 === 0) price.listQuotes({ symbols: [] }, (e) => e && unaryErrors++);
        await sleep(100);
      }
    })();

    const t0 = Date.now();
    let quotesBefore = clients.reduce((a, c) => a + c.tracker.counts.quotes, 0);
    let errorsBefore = 0;
    log(
      `\n${'min'.padStart(5)} | ${['ticker', 'simulator', 'price-cache', 'customers', 'gateway'].map((n) => `${n} RSS/heap, loop`.padStart(22)).join(' |')} | ${'ws p50/p99 ms'.padStart(14)} | ${'quotes/s'.padStart(8)} | err`,
    );
    while (Date.now() - t0 < DURATION_MS) {
      await sleep(SAMPLE_MS);
      const row: Row = {
        min: (Date.now() - t0) / 60_000,
        rss: {},
        heap: {},
        loop: {},
        p50: NaN,
        p99: NaN,
        quotesPerS: 0,
        unaryErrors: 0,
      };
      for (const [name, svc] of stack.services) {
        row.rss[name] = (svc.rss() ?? NaN) / 2 ** 20;
        try {
          const text = await stack.metrics(name);
          row.loop[name] = (metricValue(text, 'nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000;
          row.heap[name] = (metricValue(text, 'nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20;
        } catch {
          row.loop[name] = NaN;
          row.heap[name] = NaN;
        }
      }
      const sorted = window.sort((a, b) => a - b);
      window = [];
      row.p50 = percentile(sorted, 0.5);
      row.p99 = percentile(sorted, 0.99);
      const quotes = clients.reduce((a, c) => a + c.tracker.counts.quotes, 0);
      row.quotesPerS = (quotes - quotesBefore) / (SAMPLE_MS / 1000);
      quotesBefore = quotes;
      row.unaryErrors = unaryErrors - errorsBefore;
      errorsBefore = unaryErrors;
      rows.push(row);
      const cell = (n: ServiceName) =>
        `${(row.rss[n] ?? NaN).toFixed(0)}/${(row.heap[n] ?? NaN).toFixed(0)} MB ${(row.loop[n] ?? NaN).toFixed(0)} ms`.padStart(
          22,
        );
      log(
        `${row.min.toFixed(1).padStart(5)} | ${(['ticker', 'simulator', 'price-cache', 'customers', 'gateway'] as ServiceName[]).map(cell).join(' |')} | ${`${row.p50}/${row.p99}`.padStart(14)} | ${row.quotesPerS.toFixed(0).padStart(8)} | ${row.unaryErrors}`,
      );
    }
    running = false;
    await unary;
  } finally {
    running = false;
    for (const c of clients) await c.close();
    await producer.stop().catch(() => undefined);
    price.close();
    customers.close();
  }

  // Verdicts over the second half of the run.
  const limits: TrendLimit[] = [];
  for (const name of stack.services.keys())
    limits.push({
      name: `${name} RSS (MB)`,
      points: rows.map((r): Point => ({ x: r.min, y: r.rss[name] ?? NaN })),
      maxSlopePerMin: RSS_SLOPE,
    });
  limits.push({
    name: 'WebSocket delivery p99 (ms)',
    points: rows.map((r) => ({ x: r.min, y: r.p99 })),
    maxSlopePerMin: LATENCY_SLOPE,
  });
  const verdicts = judge(limits);
  // Heap in use, printed beside RSS to tell a leak (heap grows) from heap sizing (RSS steps).
  const heapTrends = judge(
    [...stack.services.keys()].map((name) => ({
      name: `${name} heap used (MB)`,
      points: rows.map((r): Point => ({ x: r.min, y: r.heap[name] ?? NaN })),
      maxSlopePerMin: RSS_SLOPE,
    })),
  );
  log('\ntrend over the second half (least-squares slope per minute, +- standard error):');
  for (const v of verdicts)
    log(
      `  ${v.ok ? 'ok  ' : 'FAIL'} ${v.name.padEnd(30)} ${v.slopePerMin.toFixed(2).padStart(8)} +- ${v.stderrPerMin.toFixed(2).padStart(6)} / min (limit ${v.maxSlopePerMin}, fails when slope - 2 SE > limit)`,
    );
  log('heap in use over the second half (for diagnosis, not judged):');
  for (const v of heapTrends)
    log(
      `       ${v.name.padEnd(30)} ${v.slopePerMin.toFixed(2).padStart(8)} +- ${v.stderrPerMin.toFixed(2).padStart(6)} / min`,
    );
  const violations = clients.reduce((a, c) => a + c.tracker.violationCount, 0);
  const crashes = stack.crashes();
  log(`client protocol violations: ${violations}; crashes: ${crashes.length}; unary errors: ${unaryErrors}`);
  for (const c of crashes) log(c);
  const judged = DURATION_MS >= MIN_JUDGED_MS;
  if (!judged)
    log(`(a run shorter than ${MIN_JUDGED_MS / 60_000} min is mostly warm-up: trends printed, not judged)`);
  const failed = (judged && verdicts.some((v) => !v.ok)) || violations > 0 || crashes.length > 0;
  await stack.stop({ keepLogs: failed });
  if (failed) log(`logs kept in ${stack.logDir}`);
  log(failed ? 'SOAK FAILED' : 'SOAK PASSED');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
