import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CpuSampler, cpuVerdict, parseMachineStat, parseProcStat } from './cpu.js';

void describe('CPU sampling', () => {
  void it('reads utime+stime even when the command name holds spaces and parentheses', () => {
    const stat = '4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 11 0 100 0 0';
    assert.equal(parseProcStat(stat), 1234 + 567);
  });

  void it('reads busy and total jiffies of the machine', () => {
    assert.deepEqual(parseMachineStat('cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4'), [155, 1000]);
  });

  void it('names the saturated process, or the busiest when none is', () => {
    const base = { durationMs: 1000, cores: 2, machineMaxBusyPct: 0 };
    assert.equal(
      cpuVerdict({
        ...base,
        machineAvgBusyPct: 95,
        processes: [
          { name: 'gateway', pid: 1, avgPct: 99, maxPct: 100 },
          { name: 'ws', pid: 2, avgPct: 90, maxPct: 95 },
        ],
      }),
      'saturated: gateway 99%, ws 90%, machine 95% busy (all 2 cores)',
    );
    assert.equal(
      cpuVerdict({
        ...base,
        machineAvgBusyPct: 40,
        processes: [{ name: 'ticker', pid: 1, avgPct: 30, maxPct: 50 }],
      }),
      'nothing saturated (busiest: ticker 30%, machine 40%, 50% of a core used outside the benchmark)',
    );
    assert.equal(
      cpuVerdict({
        ...base,
        machineAvgBusyPct: 50,
        processes: [{ name: 'gateway', pid: 1, avgPct: 95, maxPct: 99 }],
      }),
      'saturated: gateway 95%',
    );
    assert.equal(
      cpuVerdict({
        ...base,
        machineAvgBusyPct: 99,
        processes: [{ name: 'price-cache', pid: 1, avgPct: 42, maxPct: 60 }],
      }),
      'saturated: machine 99% busy (all 2 cores); busiest: price-cache 42%; 156% of a core used outside the benchmark',
    );
  });

  void it('measures a busy process', async () => {
    const sampler = new CpuSampler(2, 100);
    sampler.add('self', process.pid);
    sampler.add('gone', 2 ** 22 + 12345); // no such process: ignored
    sampler.start();
    const end = performance.now() + 400;
    while (performance.now() < end) {
      /* burn */
    }
    await sleep(150);
    const report = sampler.stop();
    const self = report.processes.find((p) => p.name === 'self');
    assert.ok(self, 'self sampled');
    // Any share: on a loaded machine the loop may get little of a core.
    assert.ok(self.maxPct > 0, `busy loop shows CPU (${self.maxPct}%)`);
    assert.equal(
      report.processes.find((p) => p.name === 'gone'),
      undefined,
    );
  });
});
