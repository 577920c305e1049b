// The JetStream side against a real nats-server of this test file's own:
// stream set-up, dedupe of a re-published batch, and no loss of any tick
// reported stored while NATS is stopped and restarted mid-publishing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Tick } from '@tickmesh/kit/proto';
import { encodeBatch } from '@tickmesh/kit';
import { startNats, stopAll, waitUntil, type NatsTestServer } from '@tickmesh/harness';
import { jetStreamPublishFn } from '../src/jetstream-publish.js';
import { TickPublisher, type StoreResult } from '../src/tick-publisher.js';
import { ensureTicksStream, type TicksStreamSettings } from '../src/ticks-stream.js';
import { orderViolation, readStream, ticksOf } from './support/stream-contents.js';

let nats: NatsTestServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

const settings = (over: Partial<TicksStreamSettings> = {}): TicksStreamSettings => ({
  name: 'TICKS',
  replicas: 1,
  maxAgeMs: 3_600_000,
  maxBytes: 64 * 1024 * 1024,
  duplicateWindowMs: 120_000,
  maxMsgSize: 1 << 20,
  ...over,
});

function makePublisher(over: Partial<ConstructorParameters<typeof TickPublisher>[0]> = {}) {
  return new TickPublisher({
    partitions: 8,
    maxBatchTicks: 50,
    queueTicks: 500,
    retryMinMs: 50,
    retryMaxMs: 500,
    publish: jetStreamPublishFn({
      js: jetstream(nc, { timeout: 1000 }),
      stream: 'TICKS',
      timeoutMs: 1000,
      recreate: { jsm, settings: settings(), minIntervalMs: 500 },
    }),
    ...over,
  });
}

const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'ASELS', 'BIMAS', 'SISE', 'KCHOL', 'EREGL'];
function tick(producerId: string, seq: number): Tick {
  return {
    symbol: SYMBOLS[seq % SYMBOLS.length]!,
    price: 100 + (seq % 7),
    size: seq % 100,
    producerId,
    producerSeq: seq,
    eventTimeMs: 1_700_000_000_000 + seq,
    bid: undefined,
    ask: undefined,
  };
}

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  jsm = await jetstreamManager(nc, { timeout: 5000 });
});

after(async () => {
  await nc?.close();
  await stopAll();
});

describe('TICKS stream set-up', () => {
  it('is created when absent, left intact when present, and updated in place when a setting changes', async () => {
    assert.equal(await ensureTicksStream(jsm, settings()), 'created');
    const info = await jsm.streams.info('TICKS');
    assert.deepEqual(info.config.subjects, ['ticks.>']);
    assert.equal(info.config.storage, 'file');
    assert.equal(info.config.duplicate_window, 120_000 * 1e6);
    assert.equal(info.config.max_age, 3_600_000 * 1e6);

    const js = jetstream(nc);
    await js.publish('ticks.0', encodeBatch([tick('setup', 1)]), { msgID: 'setup/0/1/1' });
    assert.equal(await ensureTicksStream(jsm, settings()), 'unchanged');
    const again = await jsm.streams.info('TICKS');
    assert.equal(again.state.messages, 1, 'messages kept');
    assert.equal(again.created, info.created, 'the same stream, not a new one');

    assert.equal(await ensureTicksStream(jsm, settings({ maxAgeMs: 7_200_000 })), 'updated');
    const updated = await jsm.streams.info('TICKS');
    assert.equal(updated.config.max_age, 7_200_000 * 1e6);
    assert.equal(updated.state.messages, 1, 'an update keeps the messages');
    assert.equal(await ensureTicksStream(jsm, settings()), 'updated');
  });
});

describe('publishing', () => {
  it('stores the same message once when it is published twice', async () => {
    const js = jetstream(nc);
    const data = encodeBatch([tick('dup', 1), tick('dup', 9)]);
    const first = await js.publish('ticks.3', data, { msgID: 'dup/3/1/9' });
    const second = await js.publish('ticks.3', data, { msgID: 'dup/3/1/9' });
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.seq, first.seq);

    // The same through the publisher: a second process re-publishing the same ticks (a
    // retry whose ack was lost) forms the same batches with the same ids: stored once.
    const ticks = Array.from({ length: 40 }, (_, i) => tick('dup-pub', i + 1));
    const publish = async () => {
      const p = makePublisher({ maxBatchTicks: 1000 });
      const results: StoreResult[] = [];
      // queued in one synchronous step, so each partition's ticks form one batch
      for (const t of ticks)
        assert.equal(
          p.trySubmit({ ...t }, (err, r) => (err ? assert.fail(err) : results.push(r!))),
          true,
        );
      await p.idle();
      await p.close(1000);
      return results;
    };
    const first40 = await publish();
    const mid = (await jsm.streams.info('TICKS')).state.messages;
    const second40 = await publish();
    assert.equal((await jsm.streams.info('TICKS')).state.messages, mid, 'no new message');
    assert.ok(first40.every((r) => !r.duplicate));
    assert.ok(second40.every((r) => r.duplicate));
    assert.equal(ticksOf(await readStream(nc, 'TICKS'), 'dup-pub').length, 40);
  });

  it('loses no tick reported stored while NATS is stopped and restarted mid-publishing', async () => {
    const p = makePublisher();
    const acked = new Set<number>();
    let submitted = 0;
    let stop = false;
    const producer = (async () => {
      for (let seq = 1; !stop; seq++) {
        const t = tick('outage', seq);
        // as fast as backpressure allows, but yield so the outage can happen meanwhile
        while (!p.trySubmit(t, (err, r?: StoreResult) => !err && r && acked.add(seq)))
          await p.waitForSpace(t.symbol);
        submitted++;
        if (seq % 50 === 0) await sleep(5);
      }
    })();
    await waitUntil(() => acked.size > 500, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'ticks stored before the outage',
    });
    await nats.stop();
    const ackedAtStop = acked.size;
    await sleep(1500);
    await waitUntil(() => p.failing, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'the publisher to notice the outage',
    });
    await nats.start();
    await waitUntil(() => acked.size > ackedAtStop + 500, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'ticks stored after the restart',
    });
    stop = true;
    await producer;
    await Promise.race([p.idle(), sleep(20_000)]);
    assert.equal(p.queued, 0, 'everything queued got stored');
    await p.close(1000);

    const batches = await readStream(nc, 'TICKS');
    const stored = new Set(ticksOf(batches, 'outage').map((t) => t.producerSeq));
    const missing = [...acked].filter((s) => !stored.has(s));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} ticks reported stored are missing`);
    assert.equal(acked.size, submitted, 'with NATS back, every submitted tick was eventually stored');
    assert.equal(orderViolation(batches), undefined);
  });

  it('re-creates the stream when it disappears, and retries the batch into it', async () => {
    await jsm.streams.delete('TICKS');
    const p = makePublisher();
    const result = await Promise.race([
      p.submit(tick('recreate', 1)),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('not stored within 15 s')), 15_000),
      ),
    ]);
    assert.ok(result.streamSeq >= 1);
    assert.equal(ticksOf(await readStream(nc, 'TICKS'), 'recreate').length, 1);
    await p.close(1000);
  });
});
