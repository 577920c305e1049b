// The upstream side over real gRPC: a PriceService restart, an epoch reset,
// and servers ageing connections out (GOAWAY) while quotes flow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitUntil } from '@tickmesh/harness';
import { ScriptedMarket, startScriptedUpstream } from './support/scripted-upstream.js';
import { metricValue, startTestGateway } from './support/gateway-harness.js';
import { TestClient, type Msg } from './support/ws-client.js';

interface Q {
  symbol: string;
  seq: number;
  epoch: number;
  conflated?: boolean;
}

void test('an upstream restart: clients are told at once, stay connected, get a resnapshot and keep receiving', async () => {
  const market = new ScriptedMarket([
    { symbol: 'THYAO', price: 250 },
    { symbol: 'GARAN', price: 120 },
  ]);
  const up = await startScriptedUpstream(market);
  const gw = await startTestGateway(up.port);
  try {
    await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live' });
    const c = await TestClient.connect(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: ['THYAO'] }));
    await c.next((m) => m.type === 'snapshot');
    market.tick('THYAO');
    await c.next((m) => m.type === 'quotes');

    await up.stop();
    const notice = await c.next((m) => m.type === 'notice', 15_000);
    assert.equal(notice.code, 'upstream_down');
    await waitUntil(async () => (await fetch(`${gw.http}/readyz`)).status === 503, {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: 'not ready',
    });
    assert.equal((await fetch(`${gw.http}/healthz`)).status, 200, 'liveness is unaffected');

    // Meanwhile the market moved on; the restarted server has the new state.
    market.tick('THYAO');
    market.tick('THYAO');
    await up.restart();
    const resnap = await c.next((m) => m.type === 'resnapshot', 20_000);
    assert.equal(resnap.reason, 'upstream');
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.deepEqual(
      (snap.quotes as Q[]).map((q) => [q.symbol, q.seq]),
      [['THYAO', market.quotes.get('THYAO')!.seq]],
    );
    const t = market.tick('THYAO');
    const q = await c.next((m) => m.type === 'quotes');
    assert.equal((q.quotes as Q[])[0]!.seq, t.seq);
    assert.equal(c.ws.readyState, c.ws.OPEN, 'the client never lost its connection');
    await waitUntil(async () => (await fetch(`${gw.http}/readyz`)).status === 200, {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: 'ready again',
    });
    c.close();
  } finally {
    await gw.close();
    await up.stop();
  }
});

void test('an epoch reset re-snapshots every client with the new epoch', async () => {
  const market = new ScriptedMarket([{ symbol: 'AKBNK', price: 60 }], { epoch: 5 });
  const up = await startScriptedUpstream(market);
  const gw = await startTestGateway(up.port);
  try {
    await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live' });
    const c = await TestClient.connect(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: '*' }));
    await c.next((m) => m.type === 'snapshot');
    for (let i = 0; i < 5; i++) market.tick('AKBNK');
    await c.next((m) => m.type === 'quotes' && (m.quotes as Q[]).some((q) => q.seq === 6));
    market.reset(6);
    const resnap = await c.next((m) => m.type === 'resnapshot');
    assert.deepEqual([resnap.reason, resnap.epoch], ['epoch', 6]);
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.deepEqual(
      (snap.quotes as Q[]).map((q) => [q.seq, q.epoch]),
      [[1, 6]],
    );
    market.tick('AKBNK');
    const next = await c.next((m) => m.type === 'quotes');
    assert.deepEqual(
      (next.quotes as Q[]).map((q) => [q.seq, q.epoch]),
      [[2, 6]],
    );
    c.close();
  } finally {
    await gw.close();
    await up.stop();
  }
});

/** Ticks continuously while servers age connections out; returns what the client saw. */
async function throughAgeing(
  gatewayEnv: Record<string, string>,
): Promise<{ messages: Msg[]; streams: number; rotations: number }> {
  const symbols = ['A1', 'B2', 'C3'];
  const market = new ScriptedMarket(
    symbols.map((symbol, i) => ({ symbol, price: 10 + i })),
    { heartbeatMs: 200 },
  );
  // Connections are aged out every ~1.5 s; streams on them get 1 s more.
  const up = await startScriptedUpstream(market, { maxConnectionAgeMs: 1500, maxConnectionAgeGraceMs: 1000 });
  const gw = await startTestGateway(up.port, gatewayEnv);
  try {
    await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live' });
    const c = await TestClient.connect(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: '*' }));
    await c.next((m) => m.type === 'snapshot');
    const until = Date.now() + 6000;
    let i = 0;
    while (Date.now() < until) {
      market.tick(symbols[i++ % symbols.length]!);
      await sleep(15);
    }
    const last = market.quotes.get('A1')!.seq;
    await c.waitUntil(
      () => (c.quotes().some((q) => q.symbol === 'A1' && q.seq === last) ? true : undefined),
      10_000,
      'last update',
    );
    c.close();
    return {
      messages: c.messages,
      streams: up.streamsOpened,
      rotations: await metricValue(gw.registry, 'tickmesh_gateway_upstream_rotations_total'),
    };
  } finally {
    await gw.close();
    await up.stop();
  }
}

function assertSeamless(messages: Msg[]): void {
  const types = new Set(messages.map((m) => m.type));
  assert.ok(
    !types.has('notice') && !types.has('resnapshot') && !types.has('error'),
    `unexpected: ${[...types].join(',')}`,
  );
  const seqs = new Map<string, number>();
  const snapshot = messages.find((m) => m.type === 'snapshot')!;
  for (const q of snapshot.quotes as Q[]) seqs.set(q.symbol, q.seq);
  let n = 0;
  for (const m of messages) {
    if (m.type !== 'quotes') continue;
    for (const q of m.quotes as Q[]) {
      assert.equal(
        q.seq,
        seqs.get(q.symbol)! + 1,
        `${q.symbol}: seq ${q.seq} after ${seqs.get(q.symbol)} (gap or repeat)`,
      );
      assert.ok(!q.conflated, 'nothing conflated');
      seqs.set(q.symbol, q.seq);
      n++;
    }
  }
  assert.ok(n > 100, `enough updates crossed the switches (${n})`);
}

void test('make-before-break on connection ageing (GOAWAY seen on the channel): no gap, no repeat, no notice', async () => {
  const r = await throughAgeing({ UPSTREAM_ROTATE_INTERVAL_MS: '0' });
  assertSeamless(r.messages);
  assert.ok(r.streams >= 3, `the stream was replaced as connections aged (${r.streams} streams)`);
  assert.ok(r.rotations >= 2, `rotations counted (${r.rotations})`);
});

void test('make-before-break by periodic rotation (below the ageing grace): no gap, no repeat, no notice', async () => {
  const r = await throughAgeing({ UPSTREAM_ROTATE_INTERVAL_MS: '400' });
  assertSeamless(r.messages);
  assert.ok(r.streams >= 6, `rotated (${r.streams} streams)`);
});
