// `make bench` / `make bench-quick`: runs every benchmark scenario against
// the running make-up stack (or a private one), each with its bare baseline
// in the same run, and writes tests/load/results/<run>.json/.md/.svg plus
// latest.* (git-ignored local output; docs/performance.md explains how to read
// them). Every figure is printed beside the committed baseline
// (tests/load/baseline.json); --update-baseline makes a full run the new one.
//
//   node --import tsx tests/load/run.ts [--quick] [--only ghz,seed,...] [--stack auto|reuse|private]
//     [--from-source] [--seed-clients 1000,5000] [--out tests/load/results]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { baselineOf, besideBaseline, readBaseline, writeBaseline } from './lib/baseline.js';
import { machineFacts } from './lib/machine.js';
import { startProcess, stopAll as stopAllProcesses, tsxCommand } from '@tickmesh/harness';
import { REPORT_SCHEMA, runStamp, writeReport, type BenchReport } from './lib/report.js';
import { evaluateTargets, verdictWord, type ScenarioResult } from './lib/targets.js';
import { FULL, QUICK, serviceClients, settle, skipped, type BenchContext } from './scenarios/context.js';
import { runIngest } from './scenarios/ingest.js';
import { runPublishTicks, runStreamQuotes } from './scenarios/streaming.js';
import { runUnary, UNARY_CASES } from './scenarios/unary.js';
import { runFanout, runSeed } from './scenarios/websocket.js';
import { reuseEndpoints, startOrReuseStack, type Stack } from './stack.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', default: '' },
    stack: { type: 'string', default: 'auto' },
    'reuse-endpoints': { type: 'string', default: '' },
    'from-source': { type: 'boolean', default: false },
    'seed-clients': { type: 'string', default: '' },
    'seed-encoding': { type: 'string', default: 'json' },
    'fanout-batch': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'tests', 'load', 'results') },
    'update-baseline': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    [
      'usage: node --import tsx tests/load/run.ts [options]',
      '  --quick                 one-minute smoke run (short windows, no 5,000-client scenario)',
      '  --only ghz,stream,seed,fanout,ingest   run only scenarios whose id contains one of these',
      '  --stack auto|reuse|private   reuse the make-up stack (default when it answers) or start a private one',
      '  --reuse-endpoints \'{"price":"host:port",...}\'   where the reused stack answers (default: the make-up ports)',
      '  --from-source           run the services of a private stack from source (tsx) instead of dist/',
      '  --seed-clients 1000,5000     client counts of the seed scenario',
      "  --seed-encoding json|proto   the seed clients' encoding: JSON text or the binary tickmesh.v1.proto",
      '  --fanout-batch N        ticks per PublishTicks request of the fan-out feed (default 1: one tick at a time)',
      '  --out DIR               where the report goes (default tests/load/results, git-ignored)',
      '  --update-baseline       after a full run, write its figures to tests/load/baseline.json',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

const started = new Date();
const t0 = performance.now();
const log = (line: string) => {
  const s = ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[${s}s] ${line}\n`);
};

function wanted(id: string): boolean {
  if (!values.only) return true;
  return values.only.split(',').some((w) => w && id.includes(w.trim()));
}

async function main(): Promise<number> {
  const quick = values.quick;
  if (quick && values['update-baseline']) {
    process.stderr.write(
      '--update-baseline needs a full run: a quick run is a smoke test, never a baseline\n',
    );
    return 2;
  }
  const settings = { ...(quick ? QUICK : FULL) };
  if (values['seed-clients'])
    settings.seedClients = values['seed-clients']
      .split(',')
      .map(Number)
      .filter((n) => n > 0);
  if (!['json', 'proto'].includes(values['seed-encoding']))
    throw new Error('--seed-encoding must be json or proto');
  settings.seedSubprotocol = `tickmesh.v1.${values['seed-encoding']}`;
  if (values['fanout-batch'] !== undefined) {
    const batch = Number(values['fanout-batch']);
    if (!Number.isInteger(batch) || batch < 1 || batch > 1000)
      throw new Error('--fanout-batch must be an integer in 1..1000');
    settings.fanoutBatch = batch;
  }
  if (!['auto', 'reuse', 'private'].includes(values.stack))
    throw new Error('--stack must be auto, reuse or private');
  const ghzPath = join(ROOT, '.tools', 'bin', 'ghz');
  if (!existsSync(ghzPath)) throw new Error('ghz is missing: run `make tools` (it installs .tools/bin/ghz)');
  const runId = runStamp(started);
  const logDir = join(ROOT, '.run', 'bench', runId);
  log(`tickmesh benchmark ${runId} (${quick ? 'quick' : 'full'}); logs in ${logDir}`);
  const machine = machineFacts(ghzPath);
  log(
    `machine: ${machine.cores} × ${machine.cpuModel}, Node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}, files ${machine.openFilesLimit}`,
  );
  // Node raises its soft limit to the hard one; the gateway of a private stack
  // inherits it and holds one socket per client (plus the load workers' own).
  const hard = /hard (\d+)/.exec(machine.openFilesLimit)?.[1];
  const need = Math.max(...settings.seedClients, settings.fanoutClients) + 2000;
  if (hard !== undefined && Number(hard) < need) {
    log(
      `warning: the open-files limit (${hard}) is below ${need}: raise it (ulimit -n) or the big client counts will fail`,
    );
  }
  if (machine.loadAverageAtStart[0]! > machine.cores) {
    log(
      `warning: load average ${machine.loadAverageAtStart[0]} on ${machine.cores} cores: other work will skew the figures`,
    );
  }

  const stack: Stack = await startOrReuseStack({
    mode: values.stack as 'auto' | 'reuse' | 'private',
    reuse: reuseEndpoints(values['reuse-endpoints'] || undefined),
    root: ROOT,
    logDir,
    fromSource: values['from-source'],
    log,
  });
  const scenarios: ScenarioResult[] = [];
  const clients = serviceClients(stack);
  try {
    const bareCmd = tsxCommand(join(ROOT, 'tests', 'load', 'baselines', 'bare-grpc-server.ts'));
    const bare = startProcess({
      name: 'bare-grpc',
      command: bareCmd.command,
      args: bareCmd.args,
      cwd: ROOT,
      logFile: join(logDir, 'bare-grpc.log'),
    });
    const ready = await bare.waitForLine(/^READY (.*)$/, 30_000);
    const barePort = (JSON.parse(ready[1]!) as { port: number }).port;
    log(`bare grpc-js server on 127.0.0.1:${barePort} (pid ${bare.pid})`);

    const ctx: BenchContext = {
      quick,
      settings,
      root: ROOT,
      ghzPath,
      stack,
      bareGrpc: `127.0.0.1:${barePort}`,
      barePid: bare.pid,
      runId,
      log,
      ...clients,
    };

    // Lightest writers first: the seed scenarios need a quiet pipeline, and
    // PublishTicks / ingest leave the biggest JetStream backlogs behind.
    const plan: Array<{ id: string; title: string; run: () => Promise<ScenarioResult> }> = [
      ...UNARY_CASES.map((c) => ({
        id: `ghz-${c.method}`,
        title: `${c.method} (ghz)`,
        run: () => runUnary(ctx, c),
      })),
      ...[1000, 5000, ...settings.seedClients.filter((n) => n !== 1000 && n !== 5000)].map((n) => ({
        id: `ws-seed-${n}`,
        title: `Seed ${n}`,
        run: () =>
          settings.seedClients.includes(n)
            ? runSeed(ctx, n)
            : Promise.resolve(
                skipped(
                  `ws-seed-${n}`,
                  `Seed: ${n} clients`,
                  quick ? 'not in the quick run' : 'not selected',
                ),
              ),
      })),
      { id: 'stream-StreamQuotes', title: 'StreamQuotes', run: () => runStreamQuotes(ctx) },
      { id: 'ws-fanout', title: 'Fan-out', run: () => runFanout(ctx) },
      { id: 'stream-PublishTicks', title: 'PublishTicks', run: () => runPublishTicks(ctx) },
      { id: 'e2e-ingest', title: 'End-to-end ingest', run: () => runIngest(ctx) },
    ];
    for (const [i, step] of plan.entries()) {
      if (!wanted(step.id)) {
        scenarios.push(skipped(step.id, step.title, 'not selected (--only)'));
        continue;
      }
      if (step.id.startsWith('ws-seed-') && !settings.seedClients.includes(Number(step.id.slice(8)))) {
        scenarios.push(await step.run());
        continue;
      }
      log(`--- scenario ${i + 1}/${plan.length}: ${step.id}`);
      const quiet = await settle(ctx);
      if (!quiet.settled)
        log(`the price-cache did not catch up within ${quiet.waitedMs / 1000} s; running anyway`);
      else if (quiet.waitedMs > 3000)
        log(`waited ${(quiet.waitedMs / 1000).toFixed(0)} s for the price-cache to catch up`);
      const result = await step.run();
      if (quiet.waitedMs > 3000 || !quiet.settled) {
        result.details = { ...result.details, settleWaitMs: quiet.waitedMs, settledBefore: quiet.settled };
      }
      scenarios.push(result);
    }
    await bare.stop();
  } finally {
    clients.price.close();
    clients.customers.close();
    log('stopping load processes and the stack');
    await stopAllProcesses();
    await stack.stop();
  }

  const notes = [
    ...stack.notes,
    `The machine was shared: load average ${machine.loadAverageAtStart.join(' / ')} at the start. Figures from a busy machine are indicative only.`,
  ];
  const report: BenchReport = {
    schema: REPORT_SCHEMA,
    runId,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    command: quick ? 'make bench-quick' : 'make bench',
    stack: { mode: stack.mode, endpoints: stack.endpoints, notes: stack.notes },
    machine,
    scenarios,
    targets: evaluateTargets(scenarios, { quick }),
    baseline: readBaseline(),
    notes,
  };
  const files = await writeReport(values.out, report);
  log(`report: ${files.markdown}`);
  log(`        ${files.json}`);
  log(`        ${files.svg}  (latest.md / latest.svg updated)`);
  process.stdout.write(`\nTargets (baseline: run ${report.baseline?.runId}, tests/load/baseline.json)\n`);
  for (const t of report.targets) {
    process.stdout.write(
      `  ${verdictWord(t.pass).padEnd(12)} ${t.title}: ${t.shown} (goal ${t.goal}; baseline ${besideBaseline(t, report.baseline)})${t.context ? ` — ${t.context}` : ''}\n`,
    );
  }
  if (values['update-baseline']) {
    writeBaseline(baselineOf(report));
    log(`tests/load/baseline.json now holds run ${report.runId}`);
  }
  return 0;
}

const stopOnSignal = (signal: NodeJS.Signals) => {
  log(`${signal}: stopping everything started by the benchmark`);
  void stopAllProcesses(3000).finally(() => process.exit(130));
};
process.once('SIGINT', stopOnSignal);
process.once('SIGTERM', stopOnSignal);

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await stopAllProcesses(3000);
    process.exit(1);
  },
);
