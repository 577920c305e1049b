// Fault test: Redis down long enough for the TICKS stream to reach its byte
// limit under load. The stream keeps limits retention, so without the
// ticker's retention guard its oldest messages, acknowledged and not yet
// applied, would be deleted. With it, ingest closes (RESOURCE_EXHAUSTED, the
// simulator pauses) before that, Redis comes back empty, the cache is rebuilt
// from the checkpoints and the stream, ingest reopens by itself, and the
// usual exactness check holds: nothing acknowledged is lost.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { metricValue, waitUntil } from '@tickmesh/harness';
import { FaultHarness } from './lib/harness.js';
import { catchUp } from './lib/model.js';
import { faultLoad, report } from './lib/settings.js';

/** Small enough to fill within a minute of the fault load (about 100-200 KB/s). */
const MAX_BYTES = 6_000_000;

const load = faultLoad({ priceProxy: false });
const streamEnv = { TICKS_STREAM_MAX_BYTES: String(MAX_BYTES) };
const h = new FaultHarness({
  ...load,
  stack: {
    ...load.stack,
    env: { ...load.stack?.env, ticker: streamEnv, simulator: streamEnv },
  },
});

before(async () => {
  await h.start();
});

after(async () => {
  await h.stop();
});

async function headroom(): Promise<number> {
  return metricValue(await h.stack.metrics('ticker'), 'tickmesh_ticks_stream_headroom_bytes') ?? NaN;
}

test('Redis down until the stream is full: ingest closes before an unapplied tick is deleted', async (t) => {
  const jsm = await jetstreamManager(h.nc);
  let closedFor = '';
  // The stream stays at its limit from now on, deleting applied messages: the model folds
  // them in as they come, before they go.
  let folding = true;
  const fold = (async () => {
    while (folding) {
      await catchUp(h.nc, h.model).catch(() => undefined);
      await sleep(250);
    }
  })();
  const r = await h.run({
    name: 'retention pressure while Redis is down',
    expectNotReady: ['price-cache readiness'],
    expectClientNotice: true,
    // Ingest was closed for seconds at full load: the backlog is replayed before live ticks return.
    recoveryBoundMs: 40_000,
    inject: async () => {
      await h.stack.redis.stop();
      const downAt = Date.now();
      await waitUntil(async () => (await headroom()) < MAX_BYTES * 0.1, {
        timeoutMs: 150_000,
        intervalMs: 250,
        what: 'ingest to close on the retention guard',
      });
      closedFor = `stream full ${((Date.now() - downAt) / 1000).toFixed(1)} s after Redis went down`;
      const { state } = await jsm.streams.info('TICKS');
      t.diagnostic(`${closedFor}: ${state.bytes} bytes, messages ${state.first_seq}..${state.last_seq}`);
      await sleep(3000); // closed for a while: producers are refused, the simulator waits
      await h.stack.redis.start(); // empty: rebuilt from the checkpoints and the stream after them
      return Date.now();
    },
  });
  folding = false;
  await fold;
  report(t, r);
  assert.ok(closedFor, 'ingest closed');
  assert.deepEqual(r.problems, [], `${r.name}:\n${r.problems.join('\n')}`);
});
