import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baselineOf, besideBaseline, readBaseline, writeBaseline, type Baseline } from './baseline.js';
import { renderMarkdown, type BenchReport } from './report.js';
import { TARGETS, type TargetResult } from './targets.js';

const target = (id: string, figure: number | null, shown: string): TargetResult => ({
  id,
  title: id,
  scenario: 's',
  figure,
  shown,
  goal: '>= 1',
  pass: figure !== null,
});

const baseline: Baseline = {
  schema: 'tickmesh-bench-baseline/1',
  runId: 'r1',
  machine: { cores: 2, cpuModel: 'cpu', node: 'v20', natsServer: 'nats-server: v2.12.15' },
  targets: { rate: { title: 'rate', figure: 100_000, shown: '100,000/s', goal: '>= 70,000/s' } },
};

void describe('bench baseline', () => {
  void it('the committed baseline names every target the benchmark evaluates', () => {
    const committed = readBaseline();
    assert.deepEqual(Object.keys(committed.targets).sort(), TARGETS.map((t) => t.id).sort());
  });

  void it('shows a figure beside the baseline with the relative change', () => {
    assert.equal(besideBaseline(target('rate', 103_000, '103,000/s'), baseline), '100,000/s (now +3%)');
    assert.equal(besideBaseline(target('rate', 90_000, '90,000/s'), baseline), '100,000/s (now −10%)');
    assert.equal(besideBaseline(target('rate', null, 'not measured'), baseline), '100,000/s');
    assert.equal(besideBaseline(target('new-target', 1, '1'), baseline), '—');
    assert.equal(besideBaseline(target('rate', 1, '1'), undefined), '—');
  });

  void it('only a full run becomes the baseline, and it round-trips through the file', async () => {
    const report = {
      runId: 'r2',
      mode: 'full',
      machine: { cores: 2, cpuModel: 'cpu', node: 'v20', natsServer: 'nats-server: v2.12.15' },
      targets: [target('rate', 95_000, '95,000/s')],
    } as unknown as BenchReport;
    const b = baselineOf(report);
    assert.equal(b.runId, 'r2');
    assert.deepEqual(b.targets.rate, { title: 'rate', figure: 95_000, shown: '95,000/s', goal: '>= 1' });
    assert.throws(() => baselineOf({ ...report, mode: 'quick' }), /only a full run/);

    const dir = await mkdtemp(join(tmpdir(), 'bench-baseline-'));
    try {
      writeBaseline(b, join(dir, 'baseline.json'));
      assert.deepEqual(readBaseline(join(dir, 'baseline.json')), b);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('the report shows each target beside the baseline', () => {
    const report = {
      runId: 'r3',
      startedAt: '2026-01-02T03:04:05.000Z',
      finishedAt: '2026-01-02T03:14:05.000Z',
      command: 'make bench',
      mode: 'full',
      stack: { mode: 'private', endpoints: {}, notes: [] },
      machine: {
        cores: 2,
        cpuModel: 'cpu',
        memoryGiB: 8,
        os: 'Debian',
        node: 'v20',
        natsServer: 'nats-server: v2.12.15',
        redisServer: 'Redis server v=7.0.15',
        loadAverageAtStart: [0.1, 0.1, 0.1],
      },
      scenarios: [],
      targets: [target('rate', 103_000, '103,000/s')],
      baseline,
      notes: [],
    } as unknown as BenchReport;
    const md = renderMarkdown(report, 'r3.svg');
    assert.match(md, /Baseline: run r1 /);
    assert.match(md, /\| rate \| 103,000\/s \| >= 1 \| \*\*PASS\*\* \| 100,000\/s \(now \+3%\) \|/);
  });
});
