// The load generator's minimal WebSocket client: its frame reader alone
// (any split of the byte stream, a read buffer reused under it) and the
// client against a real `ws` server.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { WebSocketServer, type WebSocket } from 'ws';
import { FrameReader, LeanWebSocket, Opcode, type LeanSocketEvents } from '../ws-loadgen/lean-socket.js';

/** A server-to-client frame (unmasked). */
function serverFrame(opcode: number, payload: Buffer, fin = true, masked = false): Buffer {
  const n = payload.length;
  const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.alloc(header + (masked ? 4 : 0) + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = (masked ? 0x80 : 0) | (header === 2 ? n : header === 4 ? 126 : 127);
  if (header === 4) out.writeUInt16BE(n, 2);
  if (header === 10) out.writeUInt32BE(n, 6);
  payload.copy(out, header + (masked ? 4 : 0));
  return out;
}

interface Seen {
  kind: 'text' | 'binary' | 'ping' | 'pong' | 'close' | 'error';
  data: string;
}

function recordingReader(maxPayload = 1 << 20): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const reader = new FrameReader(
    {
      // Copied at once: the views die with the call.
      message: (data, isBinary) =>
        seen.push({ kind: isBinary ? 'binary' : 'text', data: data.toString('latin1') }),
      control: (opcode, payload) =>
        seen.push({
          kind: opcode === Opcode.ping ? 'ping' : opcode === Opcode.pong ? 'pong' : 'close',
          data: payload.toString('latin1'),
        }),
      protocolError: (code, reason) => seen.push({ kind: 'error', data: `${code} ${reason}` }),
    },
    maxPayload,
  );
  return { reader, seen };
}

void describe('FrameReader', () => {
  const message = fc.record({
    binary: fc.boolean(),
    // 0, 125/126 and 65,535/65,536 are where the length encoding changes.
    size: fc.oneof(fc.constantFrom(0, 1, 125, 126, 127, 65_535, 65_536, 70_000), fc.nat({ max: 3000 })),
    fill: fc.integer({ min: 32, max: 126 }),
    fragments: fc.integer({ min: 1, max: 3 }),
    pingBefore: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
  });

  void it('yields every message and control frame, whatever the read boundaries (property)', () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (msgs, cuts) => {
          const parts: Buffer[] = [];
          const want: Seen[] = [];
          for (const m of msgs) {
            if (m.pingBefore !== undefined) {
              parts.push(serverFrame(Opcode.ping, Buffer.from(m.pingBefore, 'latin1')));
              want.push({ kind: 'ping', data: m.pingBefore });
            }
            const payload = Buffer.alloc(m.size, m.fill);
            const step = Math.max(1, Math.ceil(m.size / m.fragments));
            for (let off = 0, k = 0; k === 0 || off < m.size; off += step, k++) {
              const last = off + step >= m.size;
              const opcode = k === 0 ? (m.binary ? Opcode.binary : Opcode.text) : Opcode.continuation;
              parts.push(serverFrame(opcode, payload.subarray(off, Math.min(m.size, off + step)), last));
              if (last) break;
            }
            want.push({ kind: m.binary ? 'binary' : 'text', data: payload.toString('latin1') });
          }
          const stream = Buffer.concat(parts);
          const { reader, seen } = recordingReader();
          // Chunks land in one reused buffer, as with net's onread.
          const shared = Buffer.alloc(stream.length + 1);
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          let from = 0;
          for (const to of [...points, stream.length]) {
            if (to <= from && to !== stream.length) continue;
            stream.copy(shared, 0, from, to);
            reader.push(shared.subarray(0, to - from));
            shared.fill(0xee);
            from = to;
          }
          assert.deepEqual(seen, want);
        },
      ),
      { numRuns: 200 },
    );
  });

  void it('refuses what a server must not send, once', () => {
    const cases: Array<[Buffer, string]> = [
      [serverFrame(Opcode.text, Buffer.from('hi'), true, true), '1002 masked frame from the server'],
      [serverFrame(Opcode.ping, Buffer.from('x'), false), '1002 bad control frame'],
      [serverFrame(Opcode.continuation, Buffer.from('x')), '1002 continuation without a message'],
      [serverFrame(3, Buffer.from('x')), '1002 unknown opcode 3'],
      [serverFrame(Opcode.binary, Buffer.alloc(2000)), '1009 frame too large'],
      [Buffer.from([0xc1, 0x00]), '1002 reserved bits set'],
    ];
    for (const [bytes, error] of cases) {
      const { reader, seen } = recordingReader(1000);
      reader.push(bytes);
      reader.push(serverFrame(Opcode.text, Buffer.from('after')));
      assert.deepEqual(seen, [{ kind: 'error', data: error }], error);
    }
  });
});

/** Events of one LeanWebSocket, awaitable. */
function events() {
  const log: Array<{ type: string; value?: unknown }> = [];
  let wake: (() => void) | undefined;
  const push = (type: string, value?: unknown) => {
    log.push({ type, value });
    wake?.();
  };
  const on: LeanSocketEvents = {
    open: () => push('open'),
    message: (data, isBinary) => push(isBinary ? 'binary' : 'text', isBinary ? [...data] : data.toString()),
    error: (err) => push('error', err.code ?? err.message),
    close: (code) => push('close', code),
  };
  const until = async (type: string) => {
    const deadline = Date.now() + 5000;
    while (!log.some((e) => e.type === type)) {
      if (Date.now() > deadline) throw new Error(`no ${type}: ${JSON.stringify(log)}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    return log.find((e) => e.type === type)!;
  };
  return { on, log, until };
}

void describe('LeanWebSocket against a ws server', () => {
  void it('handshakes with the subprotocol, exchanges messages, answers pings, gets the close code', async () => {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (p) => [...p][0] ?? false,
    });
    await once(wss, 'listening');
    const port = (wss.address() as AddressInfo).port;
    const serverSide = new Promise<WebSocket>((r) => wss.once('connection', r));
    const e = events();
    const client = new LeanWebSocket(
      `ws://127.0.0.1:${port}/ws`,
      {
        protocols: ['tickmesh.v1.json'],
        localAddress: '127.0.0.3',
        handshakeTimeoutMs: 2000,
        maxPayload: 1 << 20,
      },
      e.on,
    );
    await e.until('open');
    const ws = await serverSide;
    assert.equal(ws.protocol, 'tickmesh.v1.json');
    const received = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    client.send('{"op":"ping","id":"1"}');
    assert.equal(await received, '{"op":"ping","id":"1"}');
    ws.send('x'.repeat(70_000));
    ws.send(Buffer.from([1, 2, 3]));
    const pong = new Promise<string>((r) => ws.once('pong', (d) => r(d.toString())));
    ws.ping('probe-7');
    assert.equal(await pong, 'probe-7');
    await e.until('binary');
    assert.equal((e.log.find((x) => x.type === 'text')!.value as string).length, 70_000);
    assert.deepEqual(e.log.find((x) => x.type === 'binary')!.value, [1, 2, 3]);
    ws.close(4008, 'too slow');
    assert.equal((await e.until('close')).value, 4008);
    wss.close();
  });

  void it('reports a refused handshake and a silent server as errors before any open', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, verifyClient: () => false });
    await once(wss, 'listening');
    const refused = events();
    new LeanWebSocket(
      `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
      { protocols: ['tickmesh.v1.json'], handshakeTimeoutMs: 2000, maxPayload: 1000 },
      refused.on,
    );
    assert.equal((await refused.until('error')).value, 'Unexpected server response: 401');
    assert.equal((await refused.until('close')).value, 1006);
    assert.ok(!refused.log.some((x) => x.type === 'open'));
    wss.close();

    const silent = createServer(() => undefined).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const timedOut = events();
    new LeanWebSocket(
      `ws://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
      { protocols: [], handshakeTimeoutMs: 200, maxPayload: 1000 },
      timedOut.on,
    );
    assert.equal((await timedOut.until('error')).value, 'ETIMEDOUT');
    assert.equal((await timedOut.until('close')).value, 1006);
    silent.close();
  });
});
