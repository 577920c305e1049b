// The WebSocket load generator's pure parts: source addresses, shares and
// what a client makes of each frame of the gateway protocol.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressCount, shares, sourceAddress } from '../ws-loadgen/addresses.js';
import { ClientState, WorkerStats } from '../ws-loadgen/client-state.js';
import { decodeFrame, decodeProtoFrame, FrameDecoder } from '../ws-loadgen/frame-decoder.js';
import { ServerMessage } from '@tickmesh/kit/proto';
import { summarize } from './histogram.js';

void describe('source addresses', () => {
  void it('puts at most maxPerIp clients on each address, from 127.0.0.2 up', () => {
    assert.equal(sourceAddress(0, 100), '127.0.0.2');
    assert.equal(sourceAddress(99, 100), '127.0.0.2');
    assert.equal(sourceAddress(100, 100), '127.0.0.3');
    assert.equal(sourceAddress(4999, 200), '127.0.0.26');
    assert.equal(addressCount(5000, 200), 25);
    const counts = new Map<string, number>();
    for (let i = 0; i < 5000; i++)
      counts.set(sourceAddress(i, 100), (counts.get(sourceAddress(i, 100)) ?? 0) + 1);
    assert.equal(counts.size, 50);
    assert.ok([...counts.values()].every((n) => n <= 100));
  });

  void it('continues past 127.0.0.254 on 127.0.1.x', () => {
    assert.equal(sourceAddress(252, 1), '127.0.0.254');
    assert.equal(sourceAddress(253, 1), '127.0.1.2');
  });

  void it('rejects nonsense', () => {
    assert.throws(() => sourceAddress(-1, 10));
    assert.throws(() => sourceAddress(0, 0));
  });

  void it('splits clients over workers contiguously and evenly', () => {
    assert.deepEqual(shares(10, 3), [
      { from: 0, to: 4 },
      { from: 4, to: 7 },
      { from: 7, to: 10 },
    ]);
    assert.deepEqual(shares(1, 4), [{ from: 0, to: 1 }]);
  });
});

void describe('a load client', () => {
  const quote = (symbol: string, seq: number, ts: number, extra = '') =>
    `{"symbol":"${symbol}","seq":${seq},"epoch":3,"last":10.5,"volume":${seq * 10},"ts":${ts}${extra}}`;

  void it('follows the protocol: welcome, reply, snapshot, quotes', () => {
    const stats = new WorkerStats();
    const replies: unknown[] = [];
    const c = new ClientState(stats, 1, (id) => replies.push(id));
    c.handleFrame('{"type":"welcome","protocol":"tickmesh.v1"}', 0);
    c.handleFrame('{"type":"reply","op":"subscribe","id":1}', 0);
    assert.equal(c.welcomed, true);
    assert.equal(c.subscribed, true);
    assert.deepEqual(replies, [1]);
    c.handleFrame(
      `{"type":"snapshot","quotes":[${quote('AAA', 5, 1000)},${quote('BBB', 9, 1000)}],"missing":[]}`,
      0,
    );
    stats.startMeasuring();
    c.startMeasuring();
    // Received 1,005.5 ms after event time 1,000 ms → 5.5 ms.
    c.handleFrame(
      `{"type":"quotes","quotes":[${quote('AAA', 6, 1000)},${quote('BBB', 11, 1000, ',"conflated":true')}]}`,
      1_005_500,
    );
    c.handleFrame(`{"type":"quotes","quotes":[${quote('AAA', 7, 1002)}]}`, 1_012_000);
    assert.equal(stats.quotes, 3);
    assert.equal(stats.quoteFrames, 2);
    assert.equal(stats.conflated, 1);
    const d = summarize(stats.delay);
    assert.equal(d.count, 3);
    assert.equal(Math.round(d.maxMs), 10);
    // AAA: 6, 7 of (5, 7]; BBB: 11 of (9, 11] (10 was conflated away).
    assert.deepEqual(c.tally({ AAA: { epoch: 3, seq: 7 }, BBB: { epoch: 3, seq: 11 } }), {
      expected: 4,
      received: 3,
    });
    assert.deepEqual(c.latest.get('BBB'), { epoch: 3, seq: 11, last: 10.5, volume: 110 });
  });

  void it('records delays only inside the measured window; seqs count after it too', () => {
    const stats = new WorkerStats();
    const c = new ClientState(stats);
    c.handleFrame(`{"type":"snapshot","quotes":[${quote('AAA', 5, 1000)}]}`, 0);
    stats.startMeasuring();
    c.startMeasuring();
    c.handleFrame(`{"type":"quotes","quotes":[${quote('AAA', 6, 1000)}]}`, 1_005_000);
    stats.stopRecordingDelays(); // mark
    c.handleFrame(`{"type":"quotes","quotes":[${quote('AAA', 7, 1000)}]}`, 1_900_000);
    assert.equal(stats.delay.totalCount, 1);
    assert.equal(Math.round(summarize(stats.delay).maxMs), 5);
    assert.deepEqual(c.tally({ AAA: { epoch: 3, seq: 7 } }), { expected: 2, received: 2 });
  });

  void it('compares its final state with the expected one', () => {
    const stats = new WorkerStats();
    const c = new ClientState(stats);
    c.handleFrame(`{"type":"snapshot","quotes":[${quote('AAA', 5, 1)}]}`, 0);
    assert.deepEqual(c.finalStateDiffs({ AAA: { epoch: 3, seq: 5, last: 10.5, volume: 50 } }), []);
    assert.deepEqual(c.finalStateDiffs({ AAA: { epoch: 3, seq: 6, last: 10.5, volume: 60 } }), ['AAA']);
    assert.deepEqual(c.finalStateDiffs({ ZZZ: { epoch: 3, seq: 1, last: 1, volume: 1 } }), ['ZZZ']);
  });

  void it('counts errors by code and survives garbage', () => {
    const stats = new WorkerStats();
    const c = new ClientState(stats);
    c.handleFrame('{"type":"error","code":"rate_limited","message":"slow down"}', 0);
    c.handleFrame('not json', 0);
    c.handleFrame('{"type":"quotes","quotes":[{"symbol":1}]}', 0);
    c.handleFrame('{"type":"mystery"}', 0);
    c.handleFrame('{"type":"heartbeat","ts":1}', 0);
    c.handleFrame('{"type":"resnapshot","reason":"epoch"}', 0);
    assert.deepEqual(stats.errors, { rate_limited: 1 });
    assert.equal(stats.badFrames, 3);
    assert.equal(stats.heartbeats, 1);
    assert.equal(stats.resnapshots, 1);
    assert.equal(stats.frames, 6);
  });
});

void describe('the frame decoder shared by a worker', () => {
  const frame = (seq: number) =>
    Buffer.from(`{"type":"quotes","quotes":[{"symbol":"AAA","seq":${seq},"epoch":3,"ts":1000}]}`);

  void it('parses identical bytes once and tells different bytes apart', () => {
    const d = new FrameDecoder(2);
    const a = d.decode(frame(1));
    assert.equal(d.decode(frame(1)), a, 'same bytes (another buffer): the same decode');
    const b = d.decode(frame(2));
    assert.notEqual(b, a);
    assert.equal(b.quotes[0]!.seq, 2);
    assert.deepEqual([d.hits, d.misses], [1, 2]);
    d.decode(frame(3)); // evicts seq 1 (capacity 2)
    assert.equal(d.decode(frame(2)), b);
    assert.notEqual(d.decode(frame(1)), a, 'evicted: parsed again');
    assert.deepEqual([d.hits, d.misses], [2, 4]);
  });

  void it('groups event times so a frame costs a few histogram calls, with the same values', () => {
    const f = decodeFrame(
      '{"type":"quotes","quotes":[' +
        '{"symbol":"A","seq":1,"epoch":1,"ts":1000},{"symbol":"B","seq":1,"epoch":1,"ts":1002,"conflated":true},' +
        '{"symbol":"C","seq":1,"epoch":1,"ts":1000},{"symbol":"D","seq":1,"epoch":1}]}',
    );
    assert.deepEqual(f.eventTimes, [
      { tsUs: 1_000_000, count: 2 },
      { tsUs: 1_002_000, count: 1 },
    ]);
    assert.equal(f.conflatedCount, 1);
    const stats = new WorkerStats();
    stats.startMeasuring();
    const c = new ClientState(stats);
    c.startMeasuring();
    c.handleFrame(
      '{"type":"quotes","quotes":[{"symbol":"A","seq":1,"epoch":1,"ts":1000},{"symbol":"C","seq":1,"epoch":1,"ts":1000},{"symbol":"B","seq":1,"epoch":1,"ts":1002}]}',
      1_010_000,
    );
    assert.equal(stats.delay.totalCount, 3);
    assert.equal(stats.delay.minNonZeroValue, 8_000, 'B: 8 ms');
    assert.equal(Math.round(stats.delay.getValueAtPercentile(50) / 1000), 10, 'A and C: 10 ms');
    assert.equal(Math.round(stats.delay.maxValue / 1000), 10);
  });

  void it('a reused decode still counts for each client on its own', () => {
    const stats = new WorkerStats();
    const shared = new FrameDecoder();
    const c1 = new ClientState(stats, 1, undefined, shared);
    const c2 = new ClientState(stats, 1, undefined, shared);
    const snap = '{"type":"snapshot","quotes":[{"symbol":"AAA","seq":1,"epoch":3,"last":1,"volume":1}]}';
    c1.handleFrame(snap, 0);
    c2.handleFrame(snap, 0);
    stats.startMeasuring();
    c1.startMeasuring();
    c2.startMeasuring();
    c1.handleFrame(frame(2), 1_001_000);
    c1.handleFrame(frame(3), 1_002_000);
    c2.handleFrame(frame(3), 1_004_000); // c2 missed seq 2
    assert.equal(stats.quotes, 3);
    assert.deepEqual(c1.tally({ AAA: { epoch: 3, seq: 3 } }), { expected: 2, received: 2 });
    assert.deepEqual(c2.tally({ AAA: { epoch: 3, seq: 3 } }), { expected: 2, received: 1 });
    assert.equal(Math.round(summarize(stats.delay).maxMs), 4, 'delay from each client receive time');
    assert.equal(shared.misses, 3, 'snapshot, seq 2, seq 3');
  });
});

void describe('binary frames (tickmesh.v1.proto)', () => {
  void it('decode to what the JSON twin decodes to', () => {
    const q = { symbol: 'AAA', seq: 7, epoch: 3, last: 10.5, volume: 70, eventTimeMs: 1002 };
    const bin = Buffer.from(
      ServerMessage.encode(
        ServerMessage.fromPartial({ quotes: { quotes: [q, { ...q, seq: 8, conflated: true }] } }),
      ).finish(),
    );
    const json = decodeFrame(
      '{"type":"quotes","quotes":[{"symbol":"AAA","seq":7,"epoch":3,"last":10.5,"volume":70,"ts":1002},' +
        '{"symbol":"AAA","seq":8,"epoch":3,"last":10.5,"volume":70,"ts":1002,"conflated":true}]}',
    );
    assert.deepEqual(decodeProtoFrame(bin), json);
    const reply = decodeProtoFrame(
      Buffer.from(
        ServerMessage.encode(ServerMessage.fromPartial({ reply: { op: 'subscribe', id: '1' } })).finish(),
      ),
    );
    assert.equal(reply.type, 'reply');
    assert.equal(reply.id, '1');
    assert.equal(decodeProtoFrame(Buffer.from([0xff, 0xff, 0xff])).type, undefined);

    const stats = new WorkerStats();
    const c = new ClientState(stats, '1');
    c.handleFrame(
      Buffer.from(
        ServerMessage.encode(ServerMessage.fromPartial({ reply: { op: 'subscribe', id: '1' } })).finish(),
      ),
      0,
      true,
    );
    assert.equal(c.subscribed, true);
    stats.startMeasuring();
    c.handleFrame(bin, 1_005_000, true);
    assert.equal(stats.quotes, 2);
    assert.equal(stats.conflated, 1);
  });
});
