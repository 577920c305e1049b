// The gateway over real sockets: a scripted PriceService over real gRPC, the
// gateway in-process on a free port, and `ws` clients.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { ScriptedMarket, startScriptedUpstream, type ScriptedUpstream } from './support/scripted-upstream.js';
import { metricValue, startTestGateway, type TestGateway } from './support/gateway-harness.js';
import { PROTO, TestClient, type Msg } from './support/ws-client.js';
import { ClientMessage } from '@tickmesh/kit/proto';
import { waitUntil } from '@tickmesh/harness';

const SYMBOLS = ['AKBNK', 'GARAN', 'THYAO', 'ASELS'];

async function ready(gw: TestGateway): Promise<void> {
  await waitUntil(() => gw.feed.isLive, { timeoutMs: 15_000, intervalMs: 25, what: 'upstream live' });
}

async function welcomed(
  url: string,
  opts: Parameters<typeof TestClient.connect>[1] = {},
): Promise<TestClient> {
  const c = await TestClient.connect(url, opts);
  await c.next((m) => m.type === 'welcome');
  return c;
}

void describe('gateway protocol', () => {
  let up: ScriptedUpstream;
  let gw: TestGateway;
  const market = new ScriptedMarket(SYMBOLS.map((symbol, i) => ({ symbol, price: 50 + i * 10 })));

  before(async () => {
    up = await startScriptedUpstream(market);
    gw = await startTestGateway(up.port, {
      MAX_SUBSCRIPTIONS_PER_CONNECTION: '3',
      MAX_FRAME_BYTES: '1024',
      CLIENT_MESSAGES_PER_SECOND: '5',
      CLIENT_MESSAGES_BURST: '10',
      CLIENT_FLOOD_TOLERANCE: '5',
      MAX_CONNECTIONS_PER_IP: '20',
      ALLOWED_ORIGINS: 'http://allowed.example',
    });
    await ready(gw);
  });
  after(async () => {
    await gw?.close();
    await up?.stop();
  });

  void test('welcome advertises the protocol, heartbeat and limits', async () => {
    const c = await TestClient.connect(gw.url);
    const w = await c.next((m) => m.type === 'welcome');
    assert.equal(w.protocol, 'tickmesh.v1');
    assert.equal(w.heartbeatMs, 5000);
    assert.equal(w.authRequired, false);
    assert.equal(w.upstream, 'up');
    assert.deepEqual(w.limits, {
      maxSubscriptions: 3,
      messagesPerSecond: 5,
      messagesBurst: 10,
      maxFrameBytes: 1024,
    });
    assert.equal(c.ws.protocol, 'tickmesh.v1.json');
    c.close();
  });

  void test('subscribe: reply, snapshot, then updates with per-symbol seq, epoch and event time', async () => {
    const c = await welcomed(gw.url);
    const id = c.op({ op: 'subscribe', symbols: ['THYAO', 'GARAN'] });
    const reply = await c.answer(id);
    assert.deepEqual(reply, { type: 'reply', op: 'subscribe', id, subscriptions: ['GARAN', 'THYAO'] });
    const snap = await c.next((m) => m.type === 'snapshot');
    const snapQuotes = snap.quotes as Array<Record<string, number | string>>;
    assert.deepEqual(snapQuotes.map((q) => q.symbol).sort(), ['GARAN', 'THYAO']);
    assert.deepEqual(snap.missing, []);
    const seqAtSnapshot = snapQuotes.find((q) => q.symbol === 'THYAO')!.seq as number;
    const sent = [market.tick('THYAO'), market.tick('AKBNK'), market.tick('GARAN'), market.tick('THYAO')];
    const got = await c.waitUntil(
      () => {
        const qs = c.quotes();
        return qs.length >= 3 ? qs : undefined;
      },
      10_000,
      'three updates',
    );
    assert.deepEqual(
      got.map((q) => `${q.symbol}:${q.seq}`),
      [`THYAO:${seqAtSnapshot + 1}`, `GARAN:${sent[2]!.seq}`, `THYAO:${seqAtSnapshot + 2}`],
      'AKBNK is not subscribed: never sent',
    );
    const q = got[0]!;
    assert.equal(q.epoch, 1);
    assert.equal(q.ts, sent[0]!.eventTimeMs);
    assert.equal(q.last, sent[0]!.last);
    c.close();
  });

  void test('"*" subscribes to everything; unsubscribe stops updates', async () => {
    const c = await welcomed(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: '*' }));
    const snap = await c.next((m) => m.type === 'snapshot');
    assert.equal((snap.quotes as unknown[]).length, SYMBOLS.length);
    market.tick('ASELS');
    await c.next((m) => m.type === 'quotes' && (m.quotes as Msg[]).some((q) => q.symbol === 'ASELS'));
    const un = await c.answer(c.op({ op: 'unsubscribe', symbols: ['*'] }));
    assert.deepEqual(un.subscriptions, []);
    await c.answer(c.op({ op: 'subscribe', symbols: ['AKBNK'] }));
    await c.next((m) => m.type === 'snapshot');
    await c.answer(c.op({ op: 'unsubscribe', symbols: ['AKBNK'] }));
    await c.answer(c.op({ op: 'subscribe', symbols: ['GARAN'] }));
    await c.next((m) => m.type === 'snapshot');
    const before = c.quotes().length;
    market.tick('AKBNK');
    market.tick('ASELS');
    const g = market.tick('GARAN');
    // GARAN was ticked last: once it arrived, the others would have too.
    await c.next(
      (m) => m.type === 'quotes' && (m.quotes as Msg[]).some((q) => q.symbol === 'GARAN' && q.seq === g.seq),
    );
    const after = c.quotes().slice(before);
    assert.deepEqual(
      after.map((q) => q.symbol),
      ['GARAN'],
    );
    c.close();
  });

  void test('bad input gets its error code, changes nothing, and the connection stays usable', async () => {
    const c = await welcomed(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: ['THYAO'] }));
    await c.next((m) => m.type === 'snapshot');

    c.raw('this is not json');
    assert.deepEqual(await c.next((m) => m.type === 'error'), {
      type: 'error',
      code: 'bad_json',
      message: 'message is not valid JSON',
    });
    c.raw('{"op":"sell","id":11}');
    const unknown = await c.answer(11);
    assert.equal(unknown.code, 'unknown_op');
    c.raw('{"op":"subscribe","id":12,"symbols":["GARAN","thy.ao"]}');
    const badSymbol = await c.answer(12);
    assert.equal(badSymbol.code, 'bad_symbol');
    assert.match(String(badSymbol.message), /symbols\[1\]/);
    c.raw('{"op":"subscribe","id":13,"symbols":["A1","A2","A3"]}');
    const tooMany = await c.answer(13);
    assert.equal(tooMany.code, 'too_many_symbols');
    c.raw('{"op":"subscribe","id":14}');
    assert.equal((await c.answer(14)).code, 'bad_request');
    c.raw(Buffer.from([1, 2, 3]), true);
    const binary = await c.next((m) => m.type === 'error');
    assert.equal(binary.code, 'bad_request');

    const pong = await c.answer(c.op({ op: 'ping' }));
    assert.equal(pong.type, 'pong');
    // Nothing changed: still THYAO only, still receiving it.
    const r = await c.answer(c.op({ op: 'subscribe', symbols: ['THYAO'] }));
    assert.deepEqual(r.subscriptions, ['THYAO']);
    const t = market.tick('THYAO');
    await c.next((m) => m.type === 'quotes' && (m.quotes as Msg[]).some((q) => q.seq === t.seq));
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.close();
  });

  void test('an oversized frame is refused with close 1009', async () => {
    const c = await welcomed(gw.url);
    c.raw(JSON.stringify({ op: 'ping', pad: 'x'.repeat(2000) }));
    const closed = await c.closed;
    assert.equal(closed.code, 1009);
  });

  void test('a message flood gets rate_limited errors, then close 4029', async () => {
    const c = await welcomed(gw.url);
    for (let i = 0; i < 40; i++) c.raw(JSON.stringify({ op: 'ping', id: i }));
    const closed = await c.closed;
    assert.equal(closed.code, 4029);
    const pongs = c.messages.filter((m) => m.type === 'pong').length;
    const limited = c.messages.filter((m) => m.type === 'error' && m.code === 'rate_limited').length;
    assert.ok(pongs >= 10 && pongs <= 12, `the burst is served (${pongs})`);
    assert.ok(limited >= 5, `then rate_limited errors (${limited})`);
    assert.ok(
      (await metricValue(gw.registry, 'tickmesh_gateway_client_errors_total', { code: 'rate_limited' })) >= 5,
    );
  });

  void test('subprotocols: unknown ones are refused; none offered means JSON; JSON preferred over binary', async () => {
    await assert.rejects(TestClient.connect(gw.url, { protocols: ['tickmesh.v9.json'] }));
    const c = await TestClient.connect(gw.url, { protocols: [] });
    assert.equal((await c.next()).type, 'welcome');
    c.close();
    const both = await TestClient.connect(gw.url, { protocols: [PROTO, 'tickmesh.v1.json'] });
    assert.equal(both.ws.protocol, 'tickmesh.v1.json');
    both.close();
    const bin = await TestClient.connect(gw.url, { protocols: [PROTO] });
    assert.equal(bin.ws.protocol, PROTO);
    bin.close();
  });

  void test('binary subprotocol tickmesh.v1.proto: the same session as protobuf messages, same quotes as JSON', async () => {
    const b = await TestClient.connect(gw.url, { protocols: [PROTO] });
    const w = await b.next((m) => m.type === 'welcome');
    assert.equal(w.protocol, 'tickmesh.v1');
    assert.equal(w.heartbeatMs, 5000);
    assert.deepEqual(w.limits, {
      maxSubscriptions: 3,
      messagesPerSecond: 5,
      messagesBurst: 10,
      maxFrameBytes: 1024,
    });
    const j = await welcomed(gw.url);

    const id = b.op({ op: 'subscribe', symbols: ['THYAO', 'GARAN'] });
    assert.deepEqual(await b.answer(id), {
      type: 'reply',
      op: 'subscribe',
      id,
      subscriptions: ['GARAN', 'THYAO'],
      principal: '',
    });
    await j.answer(j.op({ op: 'subscribe', symbols: ['THYAO', 'GARAN'] }));
    const snap = await b.next((m) => m.type === 'snapshot');
    assert.deepEqual((snap.quotes as Msg[]).map((q) => q.symbol).sort(), ['GARAN', 'THYAO']);
    assert.deepEqual(snap.missing, []);
    await j.next((m) => m.type === 'snapshot');

    market.tick('THYAO');
    market.tick('GARAN');
    market.tick('THYAO');
    const enough = (c: TestClient) => () => (c.quotes().length >= 3 ? c.quotes() : undefined);
    const binQuotes = await b.waitUntil(enough(b), 10_000, 'three binary updates');
    const jsonQuotes = await j.waitUntil(enough(j), 10_000, 'three JSON updates');
    const fields = ['symbol', 'seq', 'epoch', 'last', 'bid', 'ask', 'open', 'high', 'low', 'prevClose'];
    const key = (q: Record<string, unknown>, ts: unknown) =>
      [...fields, 'volume', 'change', 'changePct', 'lastSize'].map((f) => String(q[f])).join('|') +
      `|${String(ts)}`;
    assert.deepEqual(
      binQuotes.map((q) => key(q, q.eventTimeMs)),
      jsonQuotes.map((q) => key(q, q.ts)),
    );

    // Bad input: its error code, nothing changed, the connection stays usable.
    b.raw(Buffer.from([0xff, 0xff, 0xff]), true);
    assert.deepEqual(await b.next((m) => m.type === 'error'), {
      type: 'error',
      code: 'bad_request',
      message: 'not a tickmesh.gateway.v1.ClientMessage',
      id: '',
    });
    b.raw('{"op":"ping","id":1}');
    assert.match(String((await b.next((m) => m.type === 'error')).message), /text frames/);
    const bad = await b.answer(b.op({ op: 'subscribe', symbols: ['thy.ao'] }));
    assert.equal(bad.code, 'bad_symbol');
    b.raw(Buffer.from(ClientMessage.encode({ id: 'nothing' }).finish()), true);
    assert.equal((await b.answer('nothing')).code, 'unknown_op');
    const pong = await b.answer(b.op({ op: 'ping' }));
    assert.equal(pong.type, 'pong');
    const r = await b.answer(b.op({ op: 'unsubscribe', symbols: ['GARAN'] }));
    assert.deepEqual(r.subscriptions, ['THYAO']);
    const t = market.tick('THYAO');
    await b.next((m) => m.type === 'quotes' && (m.quotes as Msg[]).some((q) => q.seq === t.seq));
    assert.equal(b.ws.readyState, WebSocket.OPEN);
    b.close();
    j.close();
  });

  void test('origin allowlist: other browser origins get 403; listed ones and non-browsers pass', async () => {
    await assert.rejects(TestClient.connect(gw.url, { origin: 'http://evil.example' }), /403/);
    const ok = await welcomed(gw.url, { origin: 'http://allowed.example' });
    ok.close();
    assert.ok(
      (await metricValue(gw.registry, 'tickmesh_gateway_connections_rejected_total', { reason: 'origin' })) >=
        1,
    );
  });

  void test('too many connections from one IP: close 4009', async () => {
    const open: TestClient[] = [];
    try {
      await waitUntil(() => gw.ws.connectionCount === 0, {
        timeoutMs: 10_000,
        intervalMs: 25,
        what: 'earlier clients gone',
      });
      for (let i = 0; i < 20; i++) open.push(await TestClient.connect(gw.url));
      const extra = await TestClient.connect(gw.url);
      const closed = await extra.closed;
      assert.equal(closed.code, 4009);
      assert.equal(closed.reason, 'too many connections');
    } finally {
      for (const c of open) c.close();
    }
    // Released: a new one is welcome again.
    await waitUntil(() => gw.ws.connectionCount === 0, {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: 'connections released',
    });
    (await welcomed(gw.url)).close();
  });

  void test('HTTP: health, readiness, metrics, the page with its headers, and nothing else', async () => {
    const healthz = await fetch(`${gw.http}/healthz`);
    assert.equal(healthz.status, 200);
    const readyz = await fetch(`${gw.http}/readyz`);
    assert.equal(readyz.status, 200);
    assert.deepEqual(
      ((await readyz.json()) as { dependencies: Record<string, unknown> }).dependencies.upstream,
      { up: true },
    );
    const metrics = await (await fetch(`${gw.http}/metrics`)).text();
    for (const name of [
      'tickmesh_gateway_connections',
      'tickmesh_gateway_frames_sent_total',
      'tickmesh_gateway_quotes_sent_total',
      'tickmesh_gateway_conflated_updates_total',
      'tickmesh_gateway_slow_client_closes_total',
      'tickmesh_gateway_tick_to_send_seconds_bucket',
    ]) {
      assert.ok(metrics.includes(name), name);
    }
    const page = await fetch(`${gw.http}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    const csp = page.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /https?:/, 'no external source allowed');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const html = await page.text();
    assert.match(html, /<table/);
    assert.doesNotMatch(html, /https?:\/\//, 'no external reference in the page');
    const etag = page.headers.get('etag')!;
    assert.equal((await fetch(`${gw.http}/`, { headers: { 'if-none-match': etag } })).status, 304);
    assert.match((await fetch(`${gw.http}/app.js`)).headers.get('content-type')!, /javascript/);
    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/services/gateway/src/main.ts',
      '/public/app.js',
      '/nope',
    ]) {
      assert.equal((await fetch(`${gw.http}${path}`)).status, 404, path);
    }
    assert.equal((await fetch(`${gw.http}/`, { method: 'POST', body: 'x' })).status, 405);
    const notWs = await fetch(`${gw.http}/ws`);
    assert.equal(notWs.status, 404, 'a plain GET of /ws is not a page');
  });
});

void describe('slow clients', () => {
  let up: ScriptedUpstream;
  let gw: TestGateway;
  const market = new ScriptedMarket(
    Array.from({ length: 20 }, (_, i) => ({ symbol: `SYM${i}`, price: 100 + i })),
  );

  before(async () => {
    up = await startScriptedUpstream(market);
    gw = await startTestGateway(up.port, {
      CLIENT_HIGH_WATER_BYTES: '65536',
      CLIENT_MAX_BUFFER_BYTES: '67108864',
      SLOW_CLIENT_TIMEOUT_MS: '1500',
      SLOW_CLIENT_CLOSE_GRACE_MS: '60000',
    });
    await ready(gw);
  });
  after(async () => {
    await gw?.close();
    await up?.stop();
  });

  void test('a client that never reads is conflated, then closed 4008; a normal client keeps every update, promptly', async () => {
    const normal = await welcomed(gw.url);
    const stuck = await welcomed(gw.url);
    await normal.answer(normal.op({ op: 'subscribe', symbols: '*' }));
    await stuck.answer(stuck.op({ op: 'subscribe', symbols: '*' }));
    await normal.next((m) => m.type === 'snapshot');
    await stuck.next((m) => m.type === 'snapshot');
    // Stop reading: the kernel buffers fill, then the gateway's socket buffer.
    (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    const delays: number[] = [];
    const seen = new Map<string, number>();
    let gaps = 0;
    let conflated = 0;
    normal.ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Msg;
      if (m.type !== 'quotes') return;
      for (const q of m.quotes as Array<{ symbol: string; seq: number; ts: number; conflated?: boolean }>) {
        delays.push(Date.now() - q.ts);
        const prev = seen.get(q.symbol);
        if (prev !== undefined && q.seq !== prev + 1) gaps++;
        if (q.conflated) conflated++;
        seen.set(q.symbol, q.seq);
      }
    });

    // Drive large batches until the stuck client has been closed (bounded).
    const deadline = Date.now() + 60_000;
    let rounds = 0;
    while ((await metricValue(gw.registry, 'tickmesh_gateway_slow_client_closes_total')) === 0) {
      assert.ok(Date.now() < deadline, 'the stuck client was never closed');
      for (let i = 0; i < 10; i++) market.tickAll();
      rounds++;
      await sleep(10);
    }
    assert.ok(
      (await metricValue(gw.registry, 'tickmesh_gateway_conflated_updates_total')) > 0,
      'conflated before being closed',
    );

    // The normal client got every update in order, none conflated.
    const lastSeq = market.quotes.get('SYM0')!.seq;
    await normal.waitUntil(
      () => (seen.get('SYM0') === lastSeq ? true : undefined),
      20_000,
      'normal client caught up',
    );
    assert.equal(gaps, 0);
    assert.equal(conflated, 0);
    delays.sort((a, b) => a - b);
    const median = delays[Math.floor(delays.length / 2)]!;
    assert.ok(median < 1000, `normal client median delay ${median} ms over ${rounds} rounds`);

    // Reading again, the stuck client finds conflated catch-up data, then the 4008 close.
    (stuck.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await stuck.closed;
    assert.equal(closed.code, 4008);
    assert.equal(closed.reason, 'too slow');
    assert.equal(normal.ws.readyState, WebSocket.OPEN);
    normal.close();
  });
});

void describe('read lag', () => {
  let up: ScriptedUpstream;
  let gw: TestGateway;
  const market = new ScriptedMarket(
    Array.from({ length: 4 }, (_, i) => ({ symbol: `LAG${i}`, price: 10 + i })),
  );

  before(async () => {
    up = await startScriptedUpstream(market);
    gw = await startTestGateway(up.port, {
      CLIENT_MAX_READ_LAG_MS: '300',
      CLIENT_LAG_PROBE_MS: '100',
      SLOW_CLIENT_TIMEOUT_MS: '30000',
    });
    await ready(gw);
  });
  after(async () => {
    await gw?.close();
    await up?.stop();
  });

  void test('a client that stops reading at low volume (nothing backs up in user space) is conflated, then caught up without a silent gap', async () => {
    const c = await welcomed(gw.url);
    await c.answer(c.op({ op: 'subscribe', symbols: '*' }));
    const snap = await c.next((m) => m.type === 'snapshot');
    const seen = new Map<string, number>();
    for (const q of snap.quotes as Array<{ symbol: string; seq: number }>) seen.set(q.symbol, q.seq);
    let silentGaps = 0;
    let conflatedSeen = 0;
    c.ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Msg;
      if (m.type !== 'quotes') return;
      for (const q of m.quotes as Array<{ symbol: string; seq: number; conflated?: boolean }>) {
        const prev = seen.get(q.symbol)!;
        if (q.conflated) conflatedSeen++;
        else if (q.seq !== prev + 1) silentGaps++;
        seen.set(q.symbol, q.seq);
      }
    });
    const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    // A few hundred bytes every 20 ms: the kernel buffers absorb it all, so
    // only the unanswered probe shows that the client is behind.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      market.tickAll();
      await sleep(20);
    }
    assert.ok(
      (await metricValue(gw.registry, 'tickmesh_gateway_conflated_updates_total')) > 0,
      'updates were conflated while the client read nothing',
    );
    socket.resume();
    const last = new Map([...market.quotes].map(([s, q]) => [s, q.seq]));
    await c.waitUntil(
      () => ([...last].every(([s, seq]) => seen.get(s) === seq) ? true : undefined),
      10_000,
      'caught up to the latest seq of every symbol',
    );
    assert.ok(conflatedSeen > 0, 'the catch-up frame marks the skipped updates');
    assert.equal(silentGaps, 0);
    assert.equal(await metricValue(gw.registry, 'tickmesh_gateway_slow_client_closes_total'), 0);
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    // The probe that went unanswered while paused was answered once it read again: a slow round trip.
    const lag = 'tickmesh_gateway_client_read_lag_seconds';
    const slow =
      (await metricValue(gw.registry, `${lag}_count`)) -
      (await metricValue(gw.registry, `${lag}_bucket`, { le: '0.25' }));
    assert.ok(slow > 0, 'a probe round trip over 250 ms was measured');
    c.close();
  });
});

void describe('read-lag probe budget', () => {
  void test('past CLIENT_LAG_PROBES_PER_SECOND each client is probed less often, and again as often when clients leave', async () => {
    const market = new ScriptedMarket([{ symbol: 'THYAO', price: 100 }]);
    const up = await startScriptedUpstream(market);
    // 4 clients within 5 probes/s: every 800 ms each instead of the 100 ms floor.
    const gw = await startTestGateway(up.port, {
      CLIENT_LAG_PROBE_MS: '100',
      CLIENT_LAG_PROBES_PER_SECOND: '5',
      HEARTBEAT_MS: '60000',
    });
    const interval = 'tickmesh_gateway_lag_probe_interval_seconds';
    try {
      await ready(gw);
      assert.equal(await metricValue(gw.registry, interval), 0.1, 'no clients: the floor');
      const clients = await Promise.all(Array.from({ length: 4 }, () => welcomed(gw.url)));
      assert.equal(await metricValue(gw.registry, interval), 0.8);
      let pings = 0;
      const watched = clients[0]!;
      await watched.answer(watched.op({ op: 'subscribe', symbols: ['THYAO'] }));
      watched.ws.on('ping', () => pings++);
      const started = Date.now();
      while (Date.now() - started < 1600) {
        market.tickAll();
        await sleep(20);
      }
      const elapsed = Date.now() - started;
      // The interval is a least gap, so at most elapsed/800 + 1 probes; the 100 ms floor would give ~16.
      assert.ok(pings >= 1, 'probes still go out');
      assert.ok(pings <= Math.floor(elapsed / 800) + 1, `${pings} probes in ${elapsed} ms`);
      clients[1]!.close();
      clients[2]!.close();
      const intervalIs = (seconds: number) => async () =>
        (await metricValue(gw.registry, interval)) === seconds;
      await waitUntil(intervalIs(0.4), { timeoutMs: 5000, intervalMs: 25, what: 'two clients left: 400 ms' });
      for (const c of [clients[0]!, clients[3]!]) c.close();
      await waitUntil(intervalIs(0.1), {
        timeoutMs: 5000,
        intervalMs: 25,
        what: 'all gone: the floor again',
      });
    } finally {
      await gw.close();
      await up.stop();
    }
  });
});

void describe('connection lifetime', () => {
  void test('each connection is closed with 1001 after a lifetime between half and all of MAX_CONNECTION_AGE_MS, spread out', async () => {
    const market = new ScriptedMarket([{ symbol: 'THYAO', price: 100 }]);
    const up = await startScriptedUpstream(market);
    const gw = await startTestGateway(up.port, { MAX_CONNECTION_AGE_MS: '1000', HEARTBEAT_MS: '100' });
    try {
      await ready(gw);
      const opened = Date.now();
      const clients = await Promise.all(Array.from({ length: 12 }, () => welcomed(gw.url)));
      const closes = await Promise.all(
        clients.map(async (c) => {
          const closed = await c.closed;
          return { ...closed, afterMs: Date.now() - opened };
        }),
      );
      for (const c of closes) {
        assert.equal(c.code, 1001);
        assert.equal(c.reason, 'connection lifetime reached');
        // Drawn from [500, 1000] ms, checked every 50 ms; connecting took a little too.
        assert.ok(c.afterMs >= 450 && c.afterMs <= 1600, `closed after ${c.afterMs} ms`);
      }
      const times = closes.map((c) => c.afterMs).sort((a, b) => a - b);
      assert.ok(
        times.at(-1)! - times[0]! >= 100,
        `closes spread out, not in one wave: ${times.join(', ')} ms`,
      );
      assert.equal(await metricValue(gw.registry, 'tickmesh_gateway_lifetime_closes_total'), 12);
      // A client that reconnects is simply a new connection with a new lifetime.
      const again = await welcomed(gw.url);
      assert.equal(again.ws.readyState, WebSocket.OPEN);
      again.close();
    } finally {
      await gw.close();
      await up.stop();
    }
  });
});

void describe('shutdown', () => {
  void test('clients are closed with 1001 and readiness goes off', async () => {
    const market = new ScriptedMarket([{ symbol: 'THYAO', price: 100 }]);
    const up = await startScriptedUpstream(market);
    const gw = await startTestGateway(up.port);
    try {
      await ready(gw);
      const c = await welcomed(gw.url);
      await c.answer(c.op({ op: 'subscribe', symbols: '*' }));
      const stopping = gw.close();
      const closed = await c.closed;
      assert.equal(closed.code, 1001);
      assert.equal(closed.reason, 'server shutting down');
      assert.equal(gw.health.readiness().ok, false);
      await stopping;
    } finally {
      await gw.close();
      await up.stop();
    }
  });
});
