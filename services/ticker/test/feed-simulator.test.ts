// The simulator's real-time runner with a fake publisher: pacing, identity,
// backpressure and the market session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tick } from '@tickmesh/kit/proto';
import { loadUniverse } from '@tickmesh/kit';
import { FeedSimulator } from '../src/feed-simulator.js';
import { SeqAllocator } from '../src/producer-ids.js';
import { TickGenerator } from '../src/tick-generator.js';

const universe = loadUniverse('bist30');

function fakePublisher(room = Infinity) {
  const got: Tick[] = [];
  let wake: (() => void) | undefined;
  return {
    got,
    free(n: number) {
      room += n;
      wake?.();
    },
    trySubmit(t: Tick) {
      if (got.length >= room) return false;
      got.push({ ...t });
      return true;
    },
    waitForSpace: (_s: string, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        wake = resolve;
        signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      }),
  };
}

function simulator(
  publisher: ReturnType<typeof fakePublisher>,
  over: Partial<ConstructorParameters<typeof FeedSimulator>[0]> = {},
) {
  return new FeedSimulator({
    generator: new TickGenerator({
      instruments: universe.instruments,
      seed: 5,
      minIntervalMs: 1,
      maxIntervalMs: 1,
      ticksPerSecond: 500,
    }),
    publisher,
    producerId: 'sim-test',
    seq: new SeqAllocator(),
    ...over,
  });
}

describe('FeedSimulator', () => {
  it('sends at the scheduled rate with increasing seqs and clock event times', async () => {
    const pub = fakePublisher();
    const sim = simulator(pub);
    const started = Date.now();
    sim.start();
    await sleep(400);
    await sim.stop();
    const elapsed = Date.now() - started;
    // 500 ticks/s: generous bounds, this is a shared machine
    assert.ok(
      pub.got.length > 50 && pub.got.length <= (elapsed * 500) / 1000 + 2,
      `${pub.got.length} ticks in ${elapsed} ms`,
    );
    assert.equal(sim.produced, pub.got.length);
    for (let i = 1; i < pub.got.length; i++) assert.ok(pub.got[i]!.producerSeq > pub.got[i - 1]!.producerSeq);
    assert.ok(
      pub.got.every(
        (t) => t.producerId === 'sim-test' && t.eventTimeMs >= started && t.eventTimeMs <= Date.now(),
      ),
    );
  });

  it('waits while the publisher pushes back, and does not burst the backlog afterwards', async () => {
    const pub = fakePublisher(10);
    const sim = simulator(pub, { maxCatchUpMs: 50 });
    sim.start();
    await sleep(400); // stuck at 10 for ~400 ms: ~200 ticks of schedule missed
    assert.equal(pub.got.length, 10);
    pub.free(1000);
    await sleep(30);
    await sim.stop();
    assert.ok(pub.got.length < 10 + 100, `burst of ${pub.got.length - 10} after the pause`);
  });

  it('stays silent while the market session is closed', async () => {
    const pub = fakePublisher();
    const today = new Date().getUTCDay() || 7;
    const closed = {
      timeZone: 'UTC',
      open: '00:00',
      close: '23:59',
      days: [1, 2, 3, 4, 5, 6, 7].filter((d) => d !== today),
    };
    // open every weekday but today (UTC): closed now
    const sim = simulator(pub, { session: closed });
    sim.start();
    await sleep(300);
    await sim.stop();
    assert.equal(pub.got.length, 0);
  });
});
