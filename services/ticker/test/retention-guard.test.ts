// The retention guard: ingest closes before the stream's byte limit deletes a
// tick the price-cache has not applied, and reopens once it caught up. The
// arithmetic alone, then the whole guard against a real nats-server whose
// partition consumers stop acknowledging (a price-cache whose Redis is down).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  AckPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadUniverse, partitionSubjects, ResourceExhaustedError } from '@tickmesh/kit';
import type { Tick } from '@tickmesh/kit/proto';
import { startNats, stopAll, waitUntil, type NatsTestServer } from '@tickmesh/harness';
import { IngestService } from '../src/ingest-service.js';
import { jetStreamPublishFn } from '../src/jetstream-publish.js';
import { SeqAllocator } from '../src/producer-ids.js';
import { Kvm } from '@nats-io/kv';
import {
  headroomBytes,
  jetStreamRetentionView,
  RetentionGuard,
  unappliedPositions,
  type RetentionView,
} from '../src/retention-guard.js';
import { TickPublisher } from '../src/tick-publisher.js';
import { readStream, ticksOf } from './support/stream-contents.js';

const consumer = (over: Record<string, unknown>) =>
  ({
    num_pending: 0,
    num_ack_pending: 0,
    delivered: { stream_seq: 0 },
    ack_floor: { stream_seq: 0 },
    ...over,
    config: {
      durable_name: 'price-cache-p0',
      filter_subjects: ['ticks.0', 'ticks.0.>'],
      max_ack_pending: 1,
      ...(over.config as object),
    },
  }) as unknown as ConsumerInfo;

describe('retention arithmetic', () => {
  it('headroom: bytes until the oldest unapplied message would be deleted', () => {
    const v = { bytes: 900, maxBytes: 1000, firstSeq: 101, lastSeq: 200, oldestUnapplied: 151 };
    assert.equal(headroomBytes(v), 100 + 450 / 2, 'the bytes before it count at half');
    assert.equal(headroomBytes({ ...v, oldestUnapplied: 101 }), 100);
    assert.equal(headroomBytes({ ...v, oldestUnapplied: undefined }), Infinity, 'all applied');
    assert.equal(headroomBytes({ ...v, maxBytes: -1 }), Infinity, 'no byte limit');
  });

  it('finds where each partition consumer waits, not where its ack floor is', () => {
    assert.deepEqual(unappliedPositions([consumer({})]), [], 'caught up');
    // A quiet partition: acked long ago, one message in flight now.
    assert.deepEqual(
      unappliedPositions([
        consumer({ num_ack_pending: 1, delivered: { stream_seq: 9000 }, ack_floor: { stream_seq: 12 } }),
      ]),
      [{ seq: 9000 }],
    );
    assert.deepEqual(
      unappliedPositions([
        consumer({ num_pending: 3, delivered: { stream_seq: 40 }, ack_floor: { stream_seq: 40 } }),
      ]),
      [{ after: 40, filters: ['ticks.0', 'ticks.0.>'] }],
    );
    assert.deepEqual(
      unappliedPositions([
        consumer({ num_pending: 3, config: { durable_name: 'audit', filter_subjects: ['ticks.>'] } }),
        consumer({ num_pending: 3, config: { durable_name: undefined } }),
      ]),
      [],
      'only durable consumers of partition subjects count',
    );
  });
});

describe('the guard on a real stream', () => {
  let nats: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const MAX_BYTES = 150_000;

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url, timeout: 5000 });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'TICKS',
      subjects: ['ticks.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_bytes: MAX_BYTES,
    });
    // The price-cache's consumers, which stop acknowledging (its Redis is down).
    for (let n = 0; n < 4; n++) {
      await jsm.consumers.add('TICKS', {
        durable_name: `price-cache-p${n}`,
        filter_subjects: partitionSubjects(n),
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: 1,
      });
    }
  });

  after(async () => {
    await nc?.close();
    await stopAll();
  });

  const symbols = ['THYAO', 'GARAN', 'AKBNK', 'ASELS'];
  const tick = (seq: number): Tick => ({
    symbol: symbols[seq % symbols.length]!,
    price: 100,
    size: seq,
    producerId: 'filler',
    producerSeq: seq,
    eventTimeMs: 0,
    bid: undefined,
    ask: undefined,
  });

  /** The price-cache applies everything: every partition consumer acknowledges all it has. */
  async function catchUp(): Promise<void> {
    for (let n = 0; n < 4; n++) {
      const c = await jetstream(nc).consumers.get('TICKS', `price-cache-p${n}`);
      if ((await c.info()).num_pending === 0) continue;
      const messages = await c.consume({ max_messages: 100 });
      for await (const m of messages) {
        m.ack();
        if (m.info.pending === 0) break;
      }
      await messages.close();
    }
  }

  /** The ingest service over a publisher gated by a guard that looks at `view` every 50 ms. */
  async function gatedIngest(view: () => Promise<RetentionView>) {
    const guard = new RetentionGuard(view, { reserveRatio: 0.1, checkIntervalMs: 50 });
    await guard.start();
    const publisher = new TickPublisher({
      partitions: 4,
      maxBatchTicks: 20,
      queueTicks: 100,
      retryMinMs: 50,
      retryMaxMs: 500,
      publish: jetStreamPublishFn({ js: jetstream(nc, { timeout: 2000 }), stream: 'TICKS', timeoutMs: 2000 }),
      gate: guard,
    });
    const ingest = new IngestService({
      publisher,
      rules: { universe: loadUniverse('bist30'), openMode: false, maxFutureMs: 60_000 },
      isAvailable: () => true,
      unaryProducerId: 'unused',
      unarySeq: new SeqAllocator(),
      unaryTimeoutMs: 2000,
      stream: { maxInFlight: 100, ackIntervalMs: 5, unavailableAfterMs: 2000 },
    });
    const close = async () => {
      guard.stop();
      await publisher.close(1000);
    };
    return { guard, publisher, ingest, close };
  }

  /**
   * Publishes from `first` with 4 concurrent callers until ingest closes; returns the seqs
   * acked and the error. The rate stays well below what the reserve covers between two checks.
   */
  async function fillUntilClosed(ingest: IngestService, first: number) {
    const signal = new AbortController().signal;
    let next = first;
    let exhausted: unknown;
    const acked: number[] = [];
    const worker = async () => {
      while (!exhausted && next < first + 50_000) {
        const seq = next++;
        try {
          await ingest.publishTick({ tick: tick(seq) }, { signal });
          acked.push(seq);
        } catch (err) {
          exhausted ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    return { acked, exhausted };
  }

  it('closes ingest before an unapplied tick is deleted, and reopens once the price-cache caught up', async () => {
    const { publisher, ingest, close } = await gatedIngest(jetStreamRetentionView(jsm, 'TICKS'));
    const signal = new AbortController().signal;
    try {
      // A replica took one message of every partition and holds it: applying is stuck.
      const inFlight: JsMsg[] = [];
      for (let seq = 1; seq <= 40; seq++) await ingest.publishTick({ tick: tick(seq) }, { signal });
      for (let n = 0; n < 4; n++) {
        const m = await (
          await jetstream(nc).consumers.get('TICKS', `price-cache-p${n}`)
        ).next({ expires: 1000 });
        if (m) inFlight.push(m);
      }
      assert.ok(inFlight.length > 0, 'a message in flight');
      const { acked: ackedSeqs, exhausted } = await fillUntilClosed(ingest, 41);
      const acked = 40 + ackedSeqs.length;
      assert.ok(
        exhausted instanceof ResourceExhaustedError,
        `ingest closed with RESOURCE_EXHAUSTED: ${String(exhausted)}`,
      );
      assert.equal((exhausted as ResourceExhaustedError).code, grpc.status.RESOURCE_EXHAUSTED);
      assert.ok(acked > 100, `the stream took ${acked} ticks first`);
      const stored = new Set(ticksOf(await readStream(nc, 'TICKS'), 'filler').map((t) => t.producerSeq));
      const lost = [...Array.from({ length: 40 }, (_, i) => i + 1), ...ackedSeqs].filter(
        (s) => !stored.has(s),
      );
      // Only ticks the consumers had already acknowledged may be gone: none were.
      assert.deepEqual(lost, [], 'no acknowledged tick was deleted');

      // The price-cache catches up: everything is acknowledged; ingest opens again by itself.
      for (const m of inFlight) m.ack();
      await catchUp();
      await waitUntil(() => publisher.exhausted === undefined, { timeoutMs: 5000, what: 'ingest reopened' });
      const again = await ingest.publishTick({ tick: tick(50_000) }, { signal });
      assert.equal(again.duplicate, false);
    } finally {
      await close();
    }
  });

  it('keeps what follows the checkpoints too: a Redis that comes back empty is rebuilt from them', async () => {
    const signal = new AbortController().signal;
    // Every consumer is caught up (the test above); the checkpoints are not.
    const kv = await new Kvm(nc).create('tickmesh_checkpoints', { history: 1 });
    const { state } = await jsm.streams.info('TICKS');
    for (let n = 0; n < 4; n++) await kv.put(`p.${n}`, String(state.last_seq));
    const view = jetStreamRetentionView(jsm, 'TICKS', { bucket: 'tickmesh_checkpoints', partitions: 4 });
    const { publisher, ingest, close } = await gatedIngest(view);
    try {
      const { acked, exhausted } = await fillUntilClosed(ingest, 100_000);
      assert.ok(exhausted instanceof ResourceExhaustedError, `ingest closed: ${String(exhausted)}`);
      const stored = new Set(ticksOf(await readStream(nc, 'TICKS'), 'filler').map((t) => t.producerSeq));
      assert.deepEqual(
        acked.filter((s) => !stored.has(s)),
        [],
        'nothing after the checkpoints was deleted',
      );
      // The price-cache applies and checkpoints what it has: ingest opens again.
      await catchUp();
      for (let n = 0; n < 4; n++)
        await kv.put(`p.${n}`, String((await jsm.streams.info('TICKS')).state.last_seq));
      await waitUntil(() => publisher.exhausted === undefined, { timeoutMs: 5000, what: 'ingest reopened' });
      assert.equal((await ingest.publishTick({ tick: tick(200_000) }, { signal })).duplicate, false);
    } finally {
      await close();
    }
  });
});
