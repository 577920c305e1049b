// The WebSocket transport over real sockets: fan-out frames must take the
// pre-framed path (one socket write of bytes built once per frame) and still
// arrive as ordinary text messages, large and small; the ws.send fallback
// must produce the same messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { OutFrame } from '../src/fanout.js';
import { preframingAvailable, wireBytes, WsTransport } from '../src/ws-transport.js';
import { heartbeatMessage } from '../src/protocol.js';
import { QuoteMirror } from '../src/quote-mirror.js';
import { ServerMessage } from '@tickmesh/kit/proto';
import { appliedUpdates, quote } from './support/quotes.js';

async function pair(): Promise<{ server: WebSocket; client: WebSocket; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const accepted = once(wss, 'connection');
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await once(client, 'open');
  const [server] = (await accepted) as [WebSocket];
  return {
    server,
    client,
    close: async () => {
      client.terminate();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Turns off ws's automatic pongs on the client: `answer` (if any) is what it does on each ping. */
function manualPongs(client: WebSocket, answer?: () => void): { count: number } {
  (client as unknown as { _autoPong: boolean })._autoPong = false;
  const pings = { count: 0 };
  client.on('ping', () => {
    pings.count++;
    answer?.();
  });
  return pings;
}

function collect(client: WebSocket, n: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve) => {
    client.on('message', (data: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false, 'text frames');
      got.push(data.toString());
      if (got.length === n) resolve(got);
    });
  });
}

void test('ws-transport: the pre-framed path is available with the installed ws', () => {
  assert.equal(preframingAvailable, true, 'ws Sender.frame not found: every send would fall back to ws.send');
});

void test('ws-transport: pre-framed sends arrive intact (7-bit, 16-bit and 64-bit lengths), one frame shared by sockets', async () => {
  const a = await pair();
  const b = await pair();
  try {
    const ta = new WsTransport(a.server, { closeGraceMs: 1000 });
    const tb = new WsTransport(b.server, { closeGraceMs: 1000 });
    assert.equal(ta.preframed, true);
    assert.equal(tb.preframed, true);
    const texts = ['{"type":"quotes"}', 'x'.repeat(300), 'ü'.repeat(40_000), 'y'.repeat(70_000)];
    const gotA = collect(a.client, texts.length);
    const gotB = collect(b.client, texts.length);
    for (const t of texts) {
      const frame = OutFrame.text(t);
      ta.send(frame);
      const built = frame.wire;
      assert.ok(built, 'the first send builds the wire bytes');
      tb.send(frame);
      assert.equal(frame.wire, built, 'the second socket reuses the same bytes');
      assert.equal(wireBytes(frame), built);
    }
    assert.deepEqual(await gotA, texts);
    assert.deepEqual(await gotB, texts);
  } finally {
    await a.close();
    await b.close();
  }
});

void test('ws-transport: the ws.send fallback delivers the same messages', async () => {
  const p = await pair();
  try {
    const t = new WsTransport(p.server, { closeGraceMs: 1000, preframe: false });
    assert.equal(t.preframed, false);
    const texts = ['{"a":1}', 'z'.repeat(200_000)];
    const got = collect(p.client, texts.length);
    for (const s of texts) t.send(OutFrame.text(s));
    assert.deepEqual(await got, texts);
  } finally {
    await p.close();
  }
});

for (const preframe of [true, false]) {
  void test(`ws-transport: read-lag probes ride with data frames, at most one in flight (${preframe ? 'pre-framed' : 'ws.send'})`, async () => {
    const p = await pair();
    try {
      let now = 1_000_000;
      const answered: number[] = [];
      const t = new WsTransport(p.server, {
        closeGraceMs: 1000,
        probeIntervalMs: 500,
        preframe,
        now: () => now,
        onProbeAnswered: (ms) => answered.push(ms),
      });
      assert.equal(t.preframed, preframe, 'the path under test');
      const pings: number[] = [];
      p.client.on('ping', (data: Buffer) => pings.push(data.readUInt32BE(0)));
      const got = collect(p.client, 4);
      t.send(OutFrame.text('one')); // carries probe 1
      assert.equal(t.readLagMs, 0);
      now += 40;
      assert.equal(t.readLagMs, 40, 'the probe is in flight');
      t.send(OutFrame.text('two')); // one in flight: no second probe
      while (answered.length === 0) await sleep(5);
      assert.equal(pings.length, 1);
      assert.deepEqual(answered, [40]);
      assert.equal(t.readLagMs, 0, 'answered');
      now += 100;
      t.send(OutFrame.text('three')); // answered, but within the interval: no probe
      now += 500;
      t.send(OutFrame.text('four')); // due again
      while (answered.length < 2) await sleep(5);
      assert.deepEqual(
        await got,
        ['one', 'two', 'three', 'four'],
        'the messages arrive intact around the pings',
      );
      assert.equal(pings.length, 2);
      assert.equal(pings[1], pings[0]! + 1);
    } finally {
      await p.close();
    }
  });
}

void test('ws-transport: an interval given as a function is read at each send, so it can widen and narrow while connected', async () => {
  const p = await pair();
  try {
    let now = 1_000_000;
    let intervalMs = 100;
    const answered: number[] = [];
    const t = new WsTransport(p.server, {
      closeGraceMs: 1000,
      probeIntervalMs: () => intervalMs,
      now: () => now,
      onProbeAnswered: (ms) => answered.push(ms),
    });
    let pings = 0;
    p.client.on('ping', () => pings++);
    const probedAfter = async (gapMs: number): Promise<boolean> => {
      now += gapMs;
      const before = answered.length;
      t.send(OutFrame.text('x'));
      await sleep(30);
      while (answered.length < pings) await sleep(5);
      return answered.length > before;
    };
    assert.equal(await probedAfter(0), true, 'the first frame carries a probe');
    assert.equal(await probedAfter(150), true, '150 ms > 100 ms');
    intervalMs = 1000; // more clients: wider
    assert.equal(await probedAfter(150), false);
    assert.equal(await probedAfter(500), false, '650 ms < 1000 ms');
    assert.equal(await probedAfter(400), true, '1050 ms');
    intervalMs = 100; // clients left: narrower again
    assert.equal(await probedAfter(150), true);
    intervalMs = 0; // probes with data off
    assert.equal(await probedAfter(5000), false);
    assert.equal(pings, 4);
  } finally {
    await p.close();
  }
});

void test('ws-transport: probe() pings an idle client once and reports how long it has gone unanswered', async () => {
  const p = await pair();
  try {
    let now = 5_000;
    const t = new WsTransport(p.server, { closeGraceMs: 1000, now: () => now });
    const pings = manualPongs(p.client); // and none sent: a client that does not answer
    assert.equal(t.probe(), 0);
    now += 3000;
    assert.equal(t.probe(), 3000, 'still unanswered; no second ping');
    assert.equal(t.readLagMs, 3000);
    await sleep(50);
    assert.equal(pings.count, 1);
    p.client.pong(Buffer.from([0, 0, 0, 9])); // a pong that answers nothing of ours
    await sleep(50);
    assert.equal(t.readLagMs, 3000, 'unsolicited pongs are ignored');
  } finally {
    await p.close();
  }
});

void test('ws-transport: a peer whose pongs do not echo the payload stays alive; its lag is then not measured', async () => {
  const p = await pair();
  try {
    let now = 10_000;
    const t = new WsTransport(p.server, { closeGraceMs: 1000, probeIntervalMs: 100, now: () => now });
    // Empty pongs: not what RFC 6455 asks, but seen in the wild.
    const pings = manualPongs(p.client, () => p.client.pong());
    const pinged = async (n: number) => {
      while (pings.count < n) await sleep(5);
      await sleep(20); // let the pong come back
    };
    t.send(OutFrame.text('m1')); // carries probe 1
    await pinged(1);
    now += 500;
    assert.equal(t.readLagMs, 500, 'the probe is not answered by an empty pong');
    assert.equal(t.probe(), 0, 'but the pong counts for liveness: a new ping goes out');
    await pinged(2);
    assert.equal(t.probe(), 0);
    await pinged(3); // the third pong that answers no probe
    assert.equal(t.readLagMs, 0, 'lag is not measured for this peer any more');
    now += 60_000;
    assert.equal(t.readLagMs, 0);
    t.send(OutFrame.text('m2'));
    now += 1000;
    t.send(OutFrame.text('m3'));
    await sleep(30);
    assert.equal(pings.count, 3, 'no probes ride with data any more');
    assert.equal(t.probe(), 0, 'liveness pings go on');
    await pinged(4);
  } finally {
    await p.close();
  }
});

for (const preframe of [true, false]) {
  void test(`ws-transport: a binary (tickmesh.v1.proto) connection gets the frame as one protobuf binary message (${preframe ? 'pre-framed' : 'ws.send'})`, async () => {
    const p = await pair();
    try {
      let failures = 0;
      const t = new WsTransport(p.server, {
        closeGraceMs: 1000,
        preframe,
        encoding: 'proto',
        onEncodeFailure: () => failures++,
      });
      assert.equal(t.preframed, preframe, 'the path under test');
      const closed = once(p.client, 'close');
      const got = new Promise<Buffer[]>((resolve) => {
        const all: Buffer[] = [];
        p.client.on('message', (data: Buffer, isBinary: boolean) => {
          assert.equal(isBinary, true, 'binary frames');
          all.push(data);
          if (all.length === 2) resolve(all);
        });
      });
      // Built as the fan-out builds it: from quotes the mirror encoded once.
      const mirror = new QuoteMirror(10);
      const frame = OutFrame.quotes(appliedUpdates(mirror, quote('THYAO', 5), quote('GARAN', 6)));
      t.send(frame);
      t.send(OutFrame.text(heartbeatMessage(77)));
      // No binary form: never thrown, never skipped silently (a gap): closed with 1011.
      t.send(OutFrame.text('{"type":"mystery"}'));
      const [quotes, heartbeat] = await got;
      const [code] = (await closed) as [number];
      assert.equal(code, 1011);
      assert.equal(failures, 1);
      assert.deepEqual(
        ServerMessage.decode(quotes!).quotes!.quotes.map((q) => `${q.symbol}:${q.seq}`),
        ['THYAO:5', 'GARAN:6'],
      );
      assert.deepEqual(ServerMessage.decode(heartbeat!).heartbeat, { tsMs: 77 });
      if (preframe)
        assert.ok(frame.protoWire, 'the framed bytes are cached on the frame for the next socket');
    } finally {
      await p.close();
    }
  });
}
