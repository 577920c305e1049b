import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { niceMax, renderChart } from './chart.js';
import type { MachineFacts } from './machine.js';
import {
  chartData,
  REPORT_SCHEMA,
  runStamp,
  validateReport,
  writeReport,
  type BenchReport,
} from './report.js';
import { evaluateTargets, type ScenarioResult } from './targets.js';

const machine: MachineFacts = {
  cores: 2,
  cpuModel: 'Test CPU',
  memoryGiB: 4,
  os: 'Debian',
  kernel: '6.1',
  node: 'v20.0.0',
  natsServer: 'nats-server: v2.9.10',
  redisServer: 'Redis server v=7.0.15',
  mariadb: 'mariadbd 10.11',
  ghz: 'v0.120.0',
  loadAverageAtStart: [0.1, 0.2, 0.3],
  freeMemoryGiBAtStart: 3,
  openFilesLimit: 'soft 65536, hard 65536',
};

function sampleReport(): BenchReport {
  const scenarios: ScenarioResult[] = [
    {
      id: 'ghz-GetQuote',
      title: 'GetQuote (ghz)',
      status: 'ok',
      durationMs: 20_000,
      metrics: {
        rps: 3500,
        baselineRps: 3600,
        rpsRatio: 3500 / 3600,
        p99Ms: 30,
        baselineP99Ms: 25,
        p99Ratio: 1.2,
      },
      comparison: { label: 'GetQuote', value: 3500, baseline: 3600, unit: 'rps' },
      limitedBy: 'saturated: price-cache 97%',
    },
    {
      id: 'ws-seed-1000',
      title: 'Seed 1,000',
      status: 'ok',
      durationMs: 30_000,
      metrics: { clients: 1000, p50Ms: 8, p90Ms: 20, p99Ms: 41, deliveredShare: 0.9995 },
    },
    {
      id: 'ws-seed-5000',
      title: 'Seed 5,000',
      status: 'ok',
      durationMs: 30_000,
      metrics: { clients: 5000, p50Ms: 30, p90Ms: 120, p99Ms: 260, deliveredShare: 0.97 },
    },
    {
      id: 'e2e-ingest',
      title: 'Ingest',
      status: 'failed',
      error: 'ticker did not start',
      durationMs: 100,
      metrics: {},
    },
  ];
  return {
    schema: REPORT_SCHEMA,
    runId: runStamp(new Date('2026-01-02T03:04:05.678Z')),
    startedAt: '2026-01-02T03:04:05.678Z',
    finishedAt: '2026-01-02T03:14:05.678Z',
    mode: 'full',
    command: 'make bench',
    stack: { mode: 'private', endpoints: {}, notes: [] },
    machine,
    scenarios,
    targets: evaluateTargets(scenarios),
    notes: ['shared machine'],
  };
}

void describe('report', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  void it('names runs with a file-safe UTC stamp', () => {
    assert.equal(runStamp(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03-04-05Z');
  });

  void it('writes JSON, markdown and SVG, and refreshes latest.*', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-report-'));
    dirs.push(dir);
    const r = sampleReport();
    const files = await writeReport(dir, r);
    assert.equal(files.json, join(dir, '2026-01-02T03-04-05Z.json'));

    const json = JSON.parse(await readFile(files.json, 'utf8')) as unknown;
    assert.deepEqual(validateReport(json), []);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')), json);

    const md = await readFile(files.markdown, 'utf8');
    assert.match(md, /!\[latency and throughput\]\(2026-01-02T03-04-05Z\.svg\)/);
    const latest = await readFile(join(dir, 'latest.md'), 'utf8');
    assert.match(latest, /\(latest\.svg\)/);
    // Every target is listed with its verdict beside its figure.
    for (const t of r.targets) {
      const row = md.split('\n').find((l) => l.startsWith(`| ${t.title} |`));
      assert.ok(row, `row for ${t.id}`);
      const word = t.pass === null ? 'NOT MEASURED' : t.pass ? 'PASS' : 'FAIL';
      assert.ok(row.includes(`**${word}**`), `${t.id}: ${row}`);
      assert.ok(row.includes(t.shown), `${t.id} figure`);
    }
    assert.match(md, /\| GetQuote throughput \(ghz\) \| 97% of bare \| >= 90% of bare \| \*\*PASS\*\*/);
    assert.match(
      md,
      /\| Seed, 5,000 WebSocket clients: quote delay p99 \| 260\.0 ms \| <= 200 ms \| \*\*FAIL\*\*/,
    );
    assert.match(
      md,
      /End-to-end ingest ticks\/s .*\| not measured \(failed: ticker did not start\) .*\*\*NOT MEASURED\*\*/,
    );
    assert.match(md, /Limited by: saturated: price-cache 97%/);
    assert.match(md, /2 × Test CPU/);

    const svg = await readFile(files.svg, 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.equal(await readFile(join(dir, 'latest.svg'), 'utf8'), svg);
  });

  void it('refuses to write an invalid report', async () => {
    const r = sampleReport();
    r.scenarios[0]!.metrics.rps = Number.NaN;
    await assert.rejects(
      writeReport(join(tmpdir(), 'never-written'), r),
      /metrics\.rps must be a finite number/,
    );
  });

  void it('validates the schema', () => {
    assert.deepEqual(validateReport(sampleReport()), []);
    assert.ok(validateReport({}).length > 3);
    assert.ok(validateReport({ ...sampleReport(), mode: 'slow' }).includes('mode must be full or quick'));
  });
});

void describe('chart', () => {
  void it('plots the seed scenarios against client count and each throughput against its baseline', () => {
    const d = chartData(sampleReport());
    assert.deepEqual(
      d.latency.map((p) => [p.clients, p.p99Ms]),
      [
        [1000, 41],
        [5000, 260],
      ],
    );
    assert.deepEqual(d.throughput, [{ label: 'GetQuote', value: 3500, baseline: 3600, unit: 'rps' }]);
    const svg = renderChart(d);
    assert.match(svg, /WebSocket quote delay vs clients/);
    assert.ok(svg.includes('97%  3.5k vs 3.6k rps'));
    assert.match(svg, /goal p99 50 ms/);
    assert.equal((svg.match(/<path d="M[^"]*L/g) ?? []).length, 3, 'one line per percentile');
  });

  void it('says "not measured" instead of drawing empty panels', () => {
    const svg = renderChart({ title: 't', latency: [], latencyGoals: [], throughput: [] });
    assert.equal((svg.match(/not measured/g) ?? []).length, 2);
  });

  void it('escapes text', () => {
    const svg = renderChart({ title: '<b>&', latency: [], latencyGoals: [], throughput: [] });
    assert.ok(svg.includes('&lt;b&gt;&amp;'));
  });

  void it('rounds axis maxima up to round numbers', () => {
    assert.equal(niceMax(41), 50);
    assert.equal(niceMax(260), 500);
    assert.equal(niceMax(1000), 1000);
    assert.equal(niceMax(0), 1);
  });
});
