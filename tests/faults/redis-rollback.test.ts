// Fault test: Redis goes back in time under load. A snapshot is taken, the
// load goes on for a few seconds (applied, acknowledged), then Redis is
// killed and started from that older snapshot, as after a failover to a
// lagging replica or a restore from an RDB file. The epoch the old copy
// carries is the current one, so only the apply script's position check can
// tell: the price-cache must refuse it, rebuild under a new epoch from the
// checkpoints and the stream, and end exact (Redis equals the stream model).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultHarness } from './lib/harness.js';
import { faultLoad, report } from './lib/settings.js';

const h = new FaultHarness(faultLoad({ priceProxy: false }));

before(async () => {
  await h.start();
});

after(async () => {
  await h.stop();
});

test('Redis restarted from an older snapshot under load: refused, rebuilt under a new epoch, exact', async (t) => {
  const dir = h.stack.redis.dataDir;
  const dump = path.join(dir, 'dump.rdb');
  const older = path.join(dir, 'older.rdb');
  let epochOfSnapshot: string | null = null;
  const r = await h.run({
    name: 'Redis restored from an older snapshot',
    expectNotReady: ['price-cache readiness'],
    expectClientNotice: true,
    inject: async () => {
      await h.redis.save();
      await copyFile(dump, older);
      epochOfSnapshot = await h.redis.get('tm:epoch');
      await sleep(3000); // applied and acknowledged after the snapshot
      await h.stack.redis.kill();
      await copyFile(older, dump);
      await sleep(2000);
      await h.stack.redis.start(); // loads dump.rdb: the older copy, with the current epoch
      return Date.now();
    },
  });
  report(t, r);
  const epochAfter = await h.redis.get('tm:epoch');
  t.diagnostic(`epoch ${epochOfSnapshot} -> ${epochAfter}`);
  assert.notEqual(epochAfter, epochOfSnapshot, 'the rolled-back Redis was rebuilt under a new epoch');
  assert.deepEqual(r.problems, [], `${r.name}:\n${r.problems.join('\n')}`);
});
