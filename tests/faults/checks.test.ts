// Unit tests of the fault suite's own checkers: they must catch what they claim to catch,
// or the fault tests would pass vacuously. No servers: pure logic plus loopback sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tick } from '@tickmesh/kit/proto';
import { loadUniverse } from '@tickmesh/kit';
import type { QuoteState } from '../../services/price-cache/src/state.js';
import { TcpProxy, waitUntil } from '@tickmesh/harness';
import { HealthTimeline } from './lib/timeline.js';
import { compareWithRedis, TickModel } from './lib/model.js';
import { QuoteTracker, type WsQuote } from './lib/ws-tracker.js';

const universe = loadUniverse('bist30');
const NOON = Date.UTC(2026, 10, 18, 9, 0, 0); // 12:00 in Istanbul
const DAY = 86_400_000;

function tick(
  producerId: string,
  producerSeq: number,
  symbol: string,
  price: number,
  size = 10,
  eventTimeMs = NOON,
): Tick {
  return { producerId, producerSeq, symbol, price, size, eventTimeMs };
}

function stored(seq: number, last: number, volume: number, day = '2026-11-18'): QuoteState {
  return {
    ss: 1,
    seq,
    day,
    last,
    bid: 0,
    ask: 0,
    open: last,
    high: last,
    low: last,
    prevClose: last,
    volume,
    trades: seq,
    lastSize: 0,
    eventTimeMs: NOON,
    maxEventTimeMs: NOON,
    appliedTimeMs: NOON,
  };
}

test('the model counts a resent tick once, keeps stream order for last, and sums volume per day', () => {
  const m = new TickModel(universe, ['p']);
  m.apply(1, [tick('p', 1, 'THYAO', 285.5), tick('p', 2, 'THYAO', 285.75)]);
  // a resend of seq 2, re-batched with a new tick
  m.apply(2, [tick('p', 2, 'THYAO', 285.75), tick('p', 3, 'THYAO', 286)]);
  m.apply(3, [tick('sim', 7, 'THYAO', 286.25, 5)]);
  const t = m.symbols.get('THYAO')!;
  assert.equal(t.count, 4);
  assert.equal(m.duplicates, 1);
  assert.equal(t.last, 28625); // minor units (2 decimals)
  assert.equal(t.volume, 35);
  assert.ok(m.has('p', 3));
  assert.ok(!m.has('p', 4));
  assert.throws(() => m.has('sim', 7), /not tracked/);
  assert.throws(() => m.apply(3, []), /after 3/);
  // a later trading day restarts volume; a tick of an earlier day is dropped
  m.apply(4, [tick('p', 4, 'THYAO', 287, 3, NOON + DAY)]);
  m.apply(5, [tick('p', 5, 'THYAO', 288, 4, NOON)]);
  assert.equal(t.count, 5);
  assert.equal(t.volume, 3);
  assert.equal(t.last, 28700);
  assert.equal(m.staleDay, 1);
});

test('the comparison reports lost, doubled, wrong and unexpected state', () => {
  const m = new TickModel(universe);
  m.apply(1, [tick('p', 1, 'THYAO', 285.5, 10), tick('p', 2, 'GARAN', 130, 5)]);
  assert.deepEqual(
    compareWithRedis(
      m,
      new Map([
        ['THYAO', stored(1, 28550, 10)],
        ['GARAN', stored(1, 1300, 5)],
      ]),
    ),
    [],
  );
  const lost = compareWithRedis(m, new Map([['THYAO', stored(1, 28550, 10)]]));
  assert.match(lost.join('\n'), /GARAN: 1 ticks in the stream, no quote/);
  const twice = compareWithRedis(
    m,
    new Map([
      ['THYAO', stored(2, 28550, 20)],
      ['GARAN', stored(1, 1300, 5)],
    ]),
  );
  assert.match(twice.join('\n'), /THYAO: seq 2 in Redis, 1 distinct ticks .*applied twice/);
  const wrongLast = compareWithRedis(
    m,
    new Map([
      ['THYAO', stored(1, 28555, 10)],
      ['GARAN', stored(1, 1300, 5)],
    ]),
  );
  assert.match(wrongLast.join('\n'), /THYAO: last 28555/);
  const wrongVolume = compareWithRedis(
    m,
    new Map([
      ['THYAO', stored(1, 28550, 11)],
      ['GARAN', stored(1, 1300, 5)],
    ]),
  );
  assert.match(wrongVolume.join('\n'), /THYAO: volume 11/);
  const extra = compareWithRedis(
    m,
    new Map([
      ['THYAO', stored(1, 28550, 10)],
      ['GARAN', stored(1, 1300, 5)],
      ['AKBNK', stored(1, 6050, 1)],
    ]),
  );
  assert.match(extra.join('\n'), /AKBNK: quote in Redis without any tick/);
});

const q = (symbol: string, seq: number, epoch = 1, extra: Partial<WsQuote> = {}): WsQuote => ({
  symbol,
  seq,
  epoch,
  last: 1,
  volume: seq,
  ts: 0,
  ...extra,
});

test('the client checker accepts what the protocol allows', () => {
  const c = new QuoteTracker();
  c.newConnection();
  c.onMessage({ type: 'snapshot', quotes: [q('A', 5)], missing: ['B'] }, 1);
  c.onMessage({ type: 'quotes', quotes: [q('A', 6), q('A', 7), q('B', 1)] }, 2);
  c.onMessage({ type: 'quotes', quotes: [q('A', 12, 1, { conflated: true })] }, 3);
  // an upstream break, announced, then a new epoch with its snapshot
  c.onMessage({ type: 'notice', code: 'upstream_down' }, 4);
  c.onMessage({ type: 'resnapshot', reason: 'epoch', epoch: 2 }, 5);
  c.onMessage({ type: 'snapshot', quotes: [q('A', 3, 2), q('B', 1, 2)] }, 6);
  c.onMessage({ type: 'quotes', quotes: [q('A', 4, 2)] }, 7);
  // a new connection starts from its own snapshot
  c.newConnection();
  c.onMessage({ type: 'snapshot', quotes: [q('A', 1, 3)] }, 8);
  assert.deepEqual(c.violations, []);
  assert.equal(c.state.get('A')!.seq, 1);
  assert.equal(c.counts.notices, 1);
  assert.equal(c.counts.resnapshots, 1);
  assert.equal(c.counts.conflated, 1);
});

test('the client checker catches silent gaps, repeats and unannounced epochs', () => {
  const c = new QuoteTracker();
  c.newConnection();
  c.onMessage({ type: 'snapshot', quotes: [q('A', 5), q('B', 1)] }, 1);
  c.onMessage({ type: 'quotes', quotes: [q('A', 7)] }, 2); // gap, not marked
  c.onMessage({ type: 'quotes', quotes: [q('A', 7)] }, 3); // repeat
  c.onMessage({ type: 'quotes', quotes: [q('B', 2, 9)] }, 4); // new epoch, no resnapshot
  c.onMessage({ type: 'resnapshot', reason: 'upstream' }, 5);
  c.onMessage({ type: 'quotes', quotes: [q('A', 8)] }, 6); // before the promised snapshot
  assert.equal(c.violationCount, 4);
  assert.match(c.violations[0]!, /silent gap 5 -> 7/);
  assert.match(c.violations[1]!, /repeat or step back/);
  assert.match(c.violations[2]!, /without a resnapshot/);
  assert.match(c.violations[3]!, /between a resnapshot and its snapshot/);
  // a gap after a notice was announced: counted, not a violation
  const d = new QuoteTracker();
  d.newConnection();
  d.onMessage({ type: 'snapshot', quotes: [q('A', 1)] }, 1);
  d.onMessage({ type: 'notice', code: 'upstream_down' }, 2);
  d.onMessage({ type: 'quotes', quotes: [q('A', 9)] }, 3);
  assert.equal(d.violationCount, 0);
  assert.equal(d.counts.announcedGaps, 1);
});

test('the health timeline finds outages and steady recovery', () => {
  const tl = new HealthTimeline([], 150);
  const push = (at: number, result: 'SERVING' | 'NOT_SERVING' | 'UNREACHABLE') =>
    tl.samples.push({ at, probe: 'x readiness', result });
  push(0, 'SERVING');
  push(100, 'NOT_SERVING');
  push(200, 'NOT_SERVING');
  push(300, 'SERVING');
  push(400, 'UNREACHABLE');
  push(500, 'SERVING');
  push(600, 'SERVING');
  assert.equal(tl.steadySince('x readiness', 'SERVING', 0), 500);
  assert.equal(tl.firstAfter('x readiness', 'NOT_SERVING', 50), 100);
  assert.deepEqual(tl.summary('x readiness', 100, 400), { NOT_SERVING: 2, SERVING: 1, UNREACHABLE: 1 });
  assert.equal(
    tl.transitions('x readiness', 0, 600),
    'SERVING x1 -> NOT_SERVING x2 -> SERVING x1 -> UNREACHABLE x1 -> SERVING x2',
  );
  push(700, 'NOT_SERVING');
  assert.equal(tl.steadySince('x readiness', 'SERVING', 0), undefined);
});

test('the TCP proxy passes data, holds it during a blackhole, delivers it on heal, and resets', async () => {
  const echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port });
  try {
    const sock = net.connect(proxy.port, '127.0.0.1');
    sock.on('error', () => undefined);
    await once(sock, 'connect');
    let got = '';
    const received = () => got;
    sock.on('data', (d: Buffer) => (got += d.toString()));
    const waitFor = (want: string) =>
      waitUntil(() => received() === want, {
        timeoutMs: 2000,
        intervalMs: 20,
        what: `"${want}" through the proxy`,
      });
    sock.write('one');
    await waitFor('one');
    assert.equal(received(), 'one');
    proxy.blackhole();
    sock.write('two');
    await sleep(300);
    assert.equal(received(), 'one', 'nothing passes during a blackhole');
    proxy.heal();
    await waitFor('onetwo');
    assert.equal(received(), 'onetwo', 'held data arrives after heal');
    // (events.once would reject on the 'error' a reset raises: wait for 'close' itself)
    const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));
    const sockClosed = closed(sock);
    proxy.reset();
    await sockClosed;
    const refused = net.connect(proxy.port, '127.0.0.1');
    refused.on('error', () => undefined);
    await closed(refused);
    proxy.heal();
  } finally {
    proxy.close();
    echo.close();
  }
});
