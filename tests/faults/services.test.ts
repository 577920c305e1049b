// Fault tests, part 1: the services themselves fail, under load (the simulator at
// >= 1,000 ticks/s, producers streaming with resend, >= 100 WebSocket clients with API
// keys). After each fault the harness proves nothing acknowledged was lost or applied
// twice, no client saw a silent gap, readiness/liveness told the truth, and measures the
// recovery time (tests/faults/lib/harness.ts; docs/reliability.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultHarness, type FaultResult } from './lib/harness.js';
import { faultLoad, report } from './lib/settings.js';

const h = new FaultHarness(faultLoad({ priceProxy: true }));

before(async () => {
  await h.start();
});

after(async () => {
  await h.stop();
});

function check(t: { diagnostic(msg: string): void }, r: FaultResult): void {
  report(t, r);
  assert.deepEqual(r.problems, [], `${r.name}:\n${r.problems.join('\n')}`);
}

test('price-cache killed with SIGKILL, then restarted', async (t) => {
  const r = await h.run({
    name: 'kill -9 price-cache',
    expectNotReady: ['price-cache readiness', 'gateway readiness'],
    killed: ['price-cache'],
    expectClientNotice: true,
    inject: async () => {
      await h.stack.kill9('price-cache');
      await sleep(2000);
      const back = Date.now();
      h.stack.svc('price-cache').launch();
      return back;
    },
  });
  check(t, r);
});

test('price-cache unreachable from the gateway for 10 s (network partition)', async (t) => {
  const proxy = h.stack.priceProxy!;
  const r = await h.run({
    name: 'gateway -> price-cache partitioned 10 s',
    expectNotReady: ['gateway readiness'],
    expectClientNotice: true,
    inject: async () => {
      proxy.blackhole();
      await sleep(10_000);
      proxy.heal();
      return Date.now();
    },
  });
  check(t, r);
});

test('gateway killed with SIGKILL, then restarted: clients reconnect', async (t) => {
  const r = await h.run({
    name: 'kill -9 gateway',
    expectNotReady: ['gateway readiness'],
    killed: ['gateway'],
    expectReconnect: true,
    inject: async () => {
      await h.stack.kill9('gateway');
      await sleep(2000);
      const back = Date.now();
      h.stack.svc('gateway').launch();
      return back;
    },
  });
  check(t, r);
});
