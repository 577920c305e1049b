// The feed simulator process (in-process here) against this file's own
// nats-server: ticks land in JetStream under sim-<market>, the same seed
// stores the same ticks, sequences keep increasing across restarts, and
// /readyz follows NATS while /healthz does not.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { parseConfig, isOnTick, loadUniverse } from '@tickmesh/kit';
import { startNats, stopAll, waitUntil, type NatsTestServer } from '@tickmesh/harness';
import { simulatorConfigSpec } from '../src/config.js';
import { defaultSimProducerId, startSimulatorApp, type SimulatorApp } from '../src/simulator-app.js';
import { readStream, ticksOf } from './support/stream-contents.js';

const universe = loadUniverse('bist30');
let nats: NatsTestServer;
let nc: NatsConnection;
const running: SimulatorApp[] = [];

function config(over: Record<string, string> = {}) {
  return parseConfig(simulatorConfigSpec, {
    LOG_LEVEL: 'silent',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    NATS_URL: nats.url,
    HEALTH_CHECK_INTERVAL_MS: '200',
    SIM_SEED: '42',
    SIM_TICKS_PER_SECOND: '300',
    PUBLISH_TIMEOUT_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    ...over,
  });
}

async function start(over: Record<string, string> = {}): Promise<SimulatorApp> {
  const app = await startSimulatorApp(config(over));
  running.push(app);
  return app;
}

const status = (app: SimulatorApp, path: string) =>
  fetch(`http://127.0.0.1:${app.metrics.port}${path}`).then((r) => r.status);

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
});

after(async () => {
  for (const app of running) await app.stop();
  await nc?.close();
  await stopAll();
});

describe('feed simulator', () => {
  it('publishes valid ticks as sim-<market>, reproducible by seed, with sequences that survive a restart', async () => {
    assert.equal(defaultSimProducerId('bist30'), 'sim-bist30');
    assert.equal(defaultSimProducerId('/data/markets/XNAS.json'), 'sim-xnas');
    const a = await start();
    assert.equal(a.producerId, 'sim-bist30');
    await waitUntil(() => a.simulator.produced >= 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks produced',
    });
    await a.publisher.idle();
    await a.stop();
    const aStoppedAt = Date.now();
    const b = await start({ SIM_PRODUCER_ID: 'sim-again' }); // same seed, another identity
    await waitUntil(() => b.simulator.produced >= 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks produced again',
    });
    await b.stop();
    const c = await start(); // sim-bist30 again: a restart
    await waitUntil(() => c.simulator.produced >= 50, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks after the restart',
    });
    await c.stop();

    const batches = await readStream(nc, 'TICKS');
    const first = ticksOf(batches, 'sim-bist30');
    const firstRun = first.filter((t) => t.eventTimeMs <= aStoppedAt); // before the restart
    const again = ticksOf(batches, 'sim-again');
    const shape = (t: { symbol: string; price: number; size: number; bid?: number; ask?: number }) => [
      t.symbol,
      t.price,
      t.size,
      t.bid,
      t.ask,
    ];
    // stream order differs across partitions: compare each symbol's own sequence
    let compared = 0;
    for (const inst of universe.instruments) {
      const x = firstRun.filter((t) => t.symbol === inst.symbol).map(shape);
      const y = again.filter((t) => t.symbol === inst.symbol).map(shape);
      const n = Math.min(x.length, y.length, 5);
      assert.deepEqual(x.slice(0, n), y.slice(0, n), `${inst.symbol}: the same seed gives the same ticks`);
      compared += n;
    }
    assert.ok(compared >= 60, `compared only ${compared} ticks`);
    assert.ok(first.length > firstRun.length, 'the restarted run stored ticks too');
    // the run of a, then the restarted c: all of one producer, seqs strictly increasing per symbol
    const lastSeq = new Map<string, number>();
    for (const t of first) {
      assert.ok(t.producerSeq > (lastSeq.get(t.symbol) ?? 0), `${t.symbol}: seq went back`);
      lastSeq.set(t.symbol, t.producerSeq);
      const inst = universe.bySymbol.get(t.symbol)!;
      assert.ok(t.price > 0 && isOnTick(t.price, inst.decimals, inst.tickUnits));
      assert.ok(t.eventTimeMs > Date.now() - 120_000 && t.eventTimeMs <= Date.now());
    }
    assert.equal(
      new Set(first.map((t) => t.producerSeq)).size,
      first.length,
      'no seq used twice across the restart',
    );
  });

  it('/readyz follows NATS, /healthz stays up, and ticking resumes when NATS is back', async () => {
    const app = await start({ SIM_PRODUCER_ID: 'sim-outage' });
    await waitUntil(async () => (await status(app, '/readyz')) === 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ready',
    });
    assert.equal(await status(app, '/healthz'), 200);
    await nats.stop();
    await waitUntil(async () => (await status(app, '/readyz')) === 503, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'not ready while NATS is down',
    });
    assert.equal(await status(app, '/healthz'), 200);
    await nats.start();
    await waitUntil(async () => (await status(app, '/readyz')) === 200, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ready again',
    });
    const before = (await readStream(nc, 'TICKS').catch(() => [])).length;
    await waitUntil(async () => (await readStream(nc, 'TICKS')).length > before + 10, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks after NATS came back',
    });
    await app.stop();
  });
});
