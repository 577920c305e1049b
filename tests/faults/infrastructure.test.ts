// Fault tests, part 2: the infrastructure fails under load — Redis restarted with its data
// gone, NATS restarted, MySQL/MariaDB restarted. Same load and checks as services.test.ts
// (tests/faults/lib/harness.ts; docs/reliability.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultHarness, type FaultResult } from './lib/harness.js';
import { faultLoad, report } from './lib/settings.js';

const h = new FaultHarness(faultLoad({ priceProxy: false }));

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

test('Redis restarted with its data gone: the cache is rebuilt from checkpoints and the stream', async (t) => {
  const epochBefore = await h.redis.get('tm:epoch');
  const r = await h.run({
    name: 'Redis restarted empty',
    expectNotReady: ['price-cache readiness'],
    expectClientNotice: true,
    inject: async () => {
      await h.stack.redis.stop();
      await sleep(3000);
      await h.stack.redis.start(); // no persistence: it comes back empty
      return Date.now();
    },
  });
  const epochAfter = await h.redis.get('tm:epoch');
  t.diagnostic(`epoch ${epochBefore} -> ${epochAfter}`);
  assert.notEqual(epochAfter, epochBefore, 'the rebuilt cache must carry a new epoch');
  check(t, r);
});

test('NATS restarted: ingest and apply resume, producers resend, nothing lost', async (t) => {
  const r = await h.run({
    name: 'NATS restarted',
    expectNotReady: ['ticker readiness', 'price-cache readiness', 'simulator readiness'],
    inject: async () => {
      await h.stack.nats.stop();
      await sleep(5000);
      await h.stack.nats.start();
      return Date.now();
    },
  });
  check(t, r);
});

test('MySQL restarted: customers and the api-key gateway go unready, then recover', async (t) => {
  const r = await h.run({
    name: 'MySQL restarted',
    expectNotReady: ['customers readiness', 'gateway readiness'],
    inject: async () => {
      await h.stack.mariadb!.stop();
      await sleep(5000);
      await h.stack.mariadb!.start();
      return Date.now();
    },
  });
  check(t, r);
});
