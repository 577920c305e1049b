// The TICKS stream deleted and re-created (an operator, a lost NATS store):
// its seqs restart at 1. The price-cache must notice (a running replica, and
// one that starts afterwards), keep the state it applied from the old stream,
// apply every tick of the new one once — including ticks resent across the
// break, which the watermarks drop — and do it under a new epoch. Real NATS
// and Redis; the new stream is written to while the replicas notice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  startNats,
  startRedis,
  waitUntil,
  type NatsTestServer,
  type RedisTestServer,
} from '@tickmesh/harness';
import type { Tick } from '@tickmesh/kit/proto';
import { applyMessage, newView, symbolsOf, type SymbolView } from '../src/reducer.js';
import { KEY } from '../src/redis-store.js';
import { encodeBar } from '../src/state.js';
import {
  connectTestNats,
  createTickStream,
  ctx,
  makeTicks,
  publishTicks,
  readStream,
  redisState,
  sortedMap,
  startReplica,
  testEnv,
  whenReady,
  type Replica,
  type SymbolSnapshot,
} from './support.js';

const T0 = Date.UTC(2024, 2, 4, 7, 0, 0);
const SYMBOLS = ['THYAO', 'GARAN', 'AKBNK', 'EKGYO', 'ZZZ1'];

type Messages = Array<{ seq: number; ticks: Tick[] }>;

/**
 * The documented result: the old streams' messages folded in order, then, at
 * each re-creation, every stream seq the state holds set to 0, then the next
 * stream's messages.
 */
function expectedAcross(streams: Messages[]): Map<string, SymbolSnapshot> {
  const views = new Map<string, SymbolView>();
  streams.forEach((messages, i) => {
    if (i > 0) {
      for (const v of views.values()) {
        if (v.state) v.state.ss = 0;
        for (const w of v.watermarks.values()) w.ss = 0;
      }
    }
    for (const m of messages) {
      for (const s of symbolsOf(m.ticks)) if (!views.has(s)) views.set(s, newView(s));
      applyMessage(views, m.ticks, m.seq, ctx, 0);
    }
  });
  const out = new Map<string, SymbolSnapshot>();
  for (const [symbol, v] of views) {
    if (!v.state) continue;
    const { appliedTimeMs: _a, ...state } = v.state;
    const bars = (i: 's' | 'm', keep: number) =>
      [...v.bars[i].values()]
        .sort((a, b) => a.start - b.start)
        .slice(-keep)
        .map(encodeBar);
    out.set(symbol, {
      state,
      watermarks: Object.fromEntries([...v.watermarks].map(([p, w]) => [p, `${w.seq}:${w.ss}`]).sort()),
      bars1s: bars('s', 60),
      bars1m: bars('m', 30),
    });
  }
  return out;
}

async function waitForState(
  redis: Redis,
  expected: Map<string, SymbolSnapshot>,
  what: string,
): Promise<void> {
  let last = '';
  const want = JSON.stringify(sortedMap(expected));
  try {
    await waitUntil(
      async () => {
        if ((await redis.get(KEY.epoch)) === null) return false;
        last = JSON.stringify(sortedMap(await redisState(redis)));
        return last === want;
      },
      { timeoutMs: 60_000, what },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\n expected ${want.slice(0, 600)}\n actual   ${last.slice(0, 600)}`,
      {
        cause: err,
      },
    );
  }
}

/** One producer publishing batches back to back, retrying a batch until a stream stores it. */
class Load {
  private running = true;
  private done: Promise<void>;
  acked = 0;
  constructor(
    private readonly js: JetStreamClient,
    private seq: number,
    private readonly until: number,
  ) {
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    while (this.running && this.seq <= this.until) {
      const batch = makeTicks({ producer: 'P', firstSeq: this.seq, n: 5, symbols: SYMBOLS, t0: T0 });
      for (;;) {
        try {
          await publishTicks(this.js, batch);
          break;
        } catch {
          await sleep(50); // no stream for a moment: the same batch again, as the ticker does
        }
      }
      this.seq += 5;
      this.acked = this.seq - 1;
      await sleep(10);
    }
  }
  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    return this.acked;
  }
}

describe('a re-created tick stream', () => {
  let nats: NatsTestServer;
  let redisServer: RedisTestServer;
  let nc: NatsConnection;
  let redis: Redis;
  const replicas: Replica[] = [];

  before(async () => {
    nats = await startNats();
    redisServer = await startRedis();
    nc = await connectTestNats(nats.url);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    await createTickStream(nc);
  });
  after(async () => {
    for (const r of replicas) await r.stop().catch(() => undefined);
    redis?.disconnect();
    await nc?.close();
    await nats?.stop();
    await redisServer?.stop();
  });

  it('is noticed running and at start, moved onto under a new epoch, every tick applied once', async () => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const env = testEnv(nats.url, redisServer.url);
    const a = await startReplica(env, 'a');
    const b = await startReplica(env, 'b');
    replicas.push(a, b);
    await Promise.all([whenReady(a), whenReady(b)]);
    const streams: Messages[] = [];

    // Old stream: load, then everything acked is applied.
    let load = new Load(js, 1, 300);
    await sleep(800);
    let acked = await load.stop();
    streams.push(await readStream(nc));
    await waitForState(redis, expectedAcross(streams), 'the first stream applied');
    const epoch1 = await redis.get(KEY.epoch);

    // Deleted under the running replicas; the load goes on, retrying until the
    // stream is back, and the producer resends its last 40 ticks across the break.
    await jsm.streams.delete('TICKS');
    load = new Load(js, acked + 1, acked + 400);
    await sleep(300);
    await createTickStream(nc);
    await publishTicks(
      js,
      makeTicks({ producer: 'P', firstSeq: acked - 39, n: 40, symbols: SYMBOLS, t0: T0 }),
      {
        msgIdSuffix: '/resend',
      },
    );
    acked = await load.stop();
    streams.push(await readStream(nc));
    await waitForState(redis, expectedAcross(streams), 'the re-created stream applied, the resends dropped');
    const epoch2 = await redis.get(KEY.epoch);
    assert.notEqual(epoch2, epoch1, 'a new epoch');
    const recreated = async (r: Replica) => (await r.app.metrics.streamRecreated.get()).values[0]?.value ?? 0;
    assert.equal((await recreated(a)) + (await recreated(b)), 1, 'one replica moved the cache, once');

    // Re-created while no replica runs: noticed at start.
    await a.stop();
    await b.stop();
    await jsm.streams.delete('TICKS');
    await createTickStream(nc);
    await publishTicks(
      js,
      makeTicks({ producer: 'P', firstSeq: acked - 9, n: 60, symbols: SYMBOLS, t0: T0 }),
    );
    acked += 50;
    const c = await startReplica(env, 'c');
    replicas.push(c);
    streams.push(await readStream(nc));
    await waitForState(redis, expectedAcross(streams), 'a stream re-created while stopped');
    assert.notEqual(await redis.get(KEY.epoch), epoch2);
    assert.equal(await recreated(c), 1);

    // Checkpoints follow: a rebuild from them and this stream ends in the same state.
    await sleep(1500);
    await redis.flushall();
    await waitForState(redis, expectedAcross(streams), 'rebuilt from checkpoints of the new stream');
    // Each symbol's seq counts every distinct tick once, whichever stream carried it.
    const state = await redisState(redis);
    const total = [...state.values()].reduce((n, s) => n + (s.state?.seq ?? 0), 0);
    assert.equal(total, acked, 'every acked tick applied once');
  });
});
