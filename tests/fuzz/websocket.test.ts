// Property-based fuzzing of the gateway's WebSocket protocol with at least 10,000 generated
// messages (fast-check, fixed seed FUZZ_SEED): malformed JSON, wrong types, huge arrays, odd
// unicode, NaN/Infinity as text, negative and enormous numbers, injection strings,
// prototype-pollution keys, binary frames; then oversized frames, invalid UTF-8 and raw
// garbage; the same for the binary encoding (protobuf ClientMessages, valid, doubled, mutated
// and random). Every message gets exactly one answer (error, reply or pong); the connection's
// subscriptions change only through accepted ops; the server never crashes and its memory
// levels off; a bystander client is never disturbed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import WebSocket from 'ws';
import * as grpc from '@grpc/grpc-js';
import { PublishTickRequest, ServerMessage } from '@tickmesh/kit/proto';
import { clientMessageOf, serverMessageBody } from '../../services/gateway/src/proto-codec.js';
import { loadUniverse } from '@tickmesh/kit';
import { httpGet, startStack, waitUntil, type Stack } from '@tickmesh/harness';
import { TrackedClient } from '../faults/lib/ws-tracker.js';
import { FUZZ_SEED, nastyNumber, nastyString, samples } from './lib/arbitraries.js';
import { rawClient, unary } from './lib/raw-grpc.js';

const N = Number(process.env.FUZZ_RUNS) || 10_000;
const BATCH = 50;
const MAX_FRAME = 4096;
const PLATEAU_BYTES = 48 * 1024 * 1024;

const universe = loadUniverse('bist30');
const symbols = universe.instruments.map((i) => i.symbol);
let stack: Stack;
let bystander: TrackedClient;

before(async () => {
  stack = await startStack({
    services: ['ticker', 'price-cache', 'gateway'],
    log: (l) => process.stderr.write(`# ${l}\n`),
    env: {
      // The fuzzer sends thousands of messages a second on one connection: lift the rate
      // limit so every message is parsed (the limits have their own tests in tests/hostile).
      gateway: {
        CLIENT_MESSAGES_PER_SECOND: '100000',
        CLIENT_MESSAGES_BURST: '100000',
        MAX_FRAME_BYTES: String(MAX_FRAME),
      },
    },
  });
  const ticker = rawClient(stack.svc('ticker').spec.grpcAddress!);
  for (const i of universe.instruments) {
    const body = PublishTickRequest.encode({
      tick: {
        symbol: i.symbol,
        price: i.referencePrice,
        size: 1,
        producerId: '',
        producerSeq: 0,
        eventTimeMs: 0,
      },
    }).finish();
    assert.equal(
      (await unary(ticker, '/tickmesh.ingest.v1.IngestService/PublishTick', body)).code,
      grpc.status.OK,
    );
  }
  ticker.close();
  bystander = new TrackedClient({ url: stack.wsUrl, symbols: '*', reconnect: false });
  bystander.start();
  await waitUntil(() => bystander.subscribed && bystander.tracker.state.size >= 30, {
    timeoutMs: 30_000,
    what: 'bystander subscribed with quotes',
  });
});

after(async () => {
  await bystander?.close();
  await stack?.stop();
});

/** A connection that sends frames and collects what comes back. */
class Probe {
  readonly ws: WebSocket;
  readonly inbox: Array<Record<string, unknown>> = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  constructor(url: string) {
    this.ws = new WebSocket(url, 'tickmesh.v1.json', { maxPayload: 64 * 1024 * 1024 });
    this.ws.on('message', (d: Buffer) => {
      this.inbox.push(JSON.parse(d.toString('utf8')) as Record<string, unknown>);
      this.wake();
    });
    this.ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    this.ws.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async opened(): Promise<void> {
    await waitUntil(() => this.ws.readyState === WebSocket.OPEN, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'WebSocket open',
    });
    await this.until((m) => m.type === 'welcome', 10_000);
  }

  /** Waits for a message matching `pred` (taking it and everything before it off the inbox). */
  async until(
    pred: (m: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Array<Record<string, unknown>>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(0, i + 1);
      if (this.closed) throw new Error(`closed ${this.closed.code} ${this.closed.reason}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no answer in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Answers (error/reply/pong) that arrived late (async `auth` replies) and were taken off the inbox. */
  lateAnswers = 0;

  /** The connection's subscriptions, asked without changing them (THYAO is always held). */
  async subscriptions(tag: string): Promise<string[]> {
    this.ws.send(JSON.stringify({ op: 'subscribe', id: `q-${tag}`, symbols: ['THYAO'] }));
    const got = await this.until((m) => m.type === 'reply' && m.id === `q-${tag}`, 10_000);
    this.lateAnswers += got
      .slice(0, -1)
      .filter((m) => m.type === 'error' || m.type === 'reply' || m.type === 'pong').length;
    return got[got.length - 1]!.subscriptions as string[];
  }
}

type Frame = { text: string } | { binary: Buffer };

const anyId = fc.oneof(nastyNumber, nastyString, fc.constant(null), fc.jsonValue({ maxDepth: 2 }));
const op = fc.oneof(
  fc.constantFrom('subscribe', 'unsubscribe', 'ping', 'auth', 'SUBSCRIBE', 'sub', '', 'subscribe '),
  nastyString,
  nastyNumber,
);
const symbolsField = fc.oneof(
  fc.constant('*'),
  fc.array(fc.oneof(fc.constantFrom(...symbols, '*'), nastyString), { maxLength: 8 }),
  fc.array(fc.constantFrom(...symbols), { minLength: 1, maxLength: 40 }),
  fc.array(fc.constant('A'), { minLength: 200, maxLength: 1000 }), // huge arrays (still under the frame limit)
  fc.array(fc.integer(), { maxLength: 500 }),
  fc.jsonValue({ maxDepth: 3 }),
  nastyNumber,
);
const structured = fc
  .record(
    {
      op,
      id: anyId,
      symbols: symbolsField,
      token: fc.oneof(nastyString, nastyNumber),
      extra: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));
const textual = fc.oneof(
  { weight: 6, arbitrary: structured },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: nastyString },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'NaN',
      'Infinity',
      '-Infinity',
      '{"op":"ping","id":NaN}',
      '{"op":"ping","id":Infinity}',
      '{"op":"ping","id":1e999}',
      '{"op":"subscribe","symbols":["THYAO"]',
      '{"op":"ping","op":"subscribe","symbols":"*"}',
      '{"__proto__":{"op":"ping"}}',
      '{"op":"ping","__proto__":{"polluted":true}}',
      '{"constructor":{"prototype":{"op":"ping"}}}',
      '[{"op":"ping"}]',
      'null',
      'true',
      '"ping"',
      '0',
      '',
      ' ',
      '{}',
      '{"op":null}',
      '{"op":["ping"]}',
      '{"op":"subscribe","symbols":[]}',
      '{"op":"subscribe","symbols":[null]}',
      '{"op":"subscribe","symbols":"THYAO"}',
      '{"op":"auth","token":""}',
      '\u0000{"op":"ping"}',
      '\ufeff{"op":"ping"}',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((s) => `{"op":"ping","id":"${s}`) },
);
const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  {
    weight: 20,
    arbitrary: textual.filter((s) => Buffer.byteLength(s) <= MAX_FRAME).map((text) => ({ text })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => ({ binary: Buffer.from(b) })) },
);

test(`${N} generated WebSocket messages: each answered once, subscriptions change only by accepted ops`, async (t) => {
  const frames = samples(frameArb, N, 10);
  const p = new Probe(stack.wsUrl);
  await p.opened();
  let model = await p.subscriptions('start');
  const rssAt: number[] = [];
  const answers = new Map<string, number>();
  let batchNo = 0;
  let sent = 0;
  let received = 0;
  for (let i = 0; i < frames.length; i += BATCH) {
    if (
      i === Math.floor((frames.length * 0.2) / BATCH) * BATCH ||
      i === Math.floor((frames.length * 0.6) / BATCH) * BATCH
    )
      rssAt.push(stack.svc('gateway').rss() ?? NaN);
    const batch = frames.slice(i, i + BATCH);
    for (const f of batch) {
      if ('text' in f) p.ws.send(f.text);
      else p.ws.send(f.binary, { binary: true });
    }
    const tag = `sync-${batchNo++}`;
    p.ws.send(JSON.stringify({ op: 'ping', id: tag }));
    const got = await p
      .until((m) => m.type === 'pong' && m.id === tag, 15_000)
      .catch((err: Error) =>
        assert.fail(`batch at ${i}: ${err.message} (frames ${JSON.stringify(batch.slice(0, 3))}...)`),
      );
    const answered = got
      .slice(0, -1)
      .filter((m) => m.type === 'error' || m.type === 'reply' || m.type === 'pong');
    for (const m of answered) {
      const key = m.type === 'error' ? `error:${String(m.code)}` : `${String(m.type)}:${String(m.op ?? '')}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
      if (m.type === 'reply' && Array.isArray(m.subscriptions)) model = m.subscriptions as string[];
    }
    // An `auth` is checked asynchronously: its reply may come after later answers (even
    // after the sync pong), so answers are counted over the whole run, never more than sent.
    sent += batch.length;
    received += answered.length + p.lateAnswers;
    p.lateAnswers = 0;
    if (received > sent) assert.fail(`batch at ${i}: ${received} answers to ${sent} messages so far`);
    if (sent - received > 5) {
      // Find the culprits: replay the batch one frame at a time.
      const odd: string[] = [];
      for (const [k, f] of batch.entries()) {
        if ('text' in f) p.ws.send(f.text);
        else p.ws.send(f.binary, { binary: true });
        const one = `one-${i}-${k}`;
        p.ws.send(JSON.stringify({ op: 'ping', id: one }));
        await sleep(200);
        const r = (await p.until((m) => m.type === 'pong' && m.id === one, 15_000)).slice(0, -1);
        const n = r.filter((m) => m.type === 'error' || m.type === 'reply' || m.type === 'pong').length;
        if (n !== 1)
          odd.push(
            `${JSON.stringify('text' in f ? f.text : `<binary ${f.binary.length} bytes>`)} -> ${n} answers ${JSON.stringify(r).slice(0, 300)}`,
          );
      }
      assert.fail(
        `batch at ${i}: ${received} answers to ${sent} messages so far; frames answered other than once:\n${odd.join('\n')}`,
      );
    }
    // The state changed only through the replies we saw.
    const now = await p.subscriptions(`check-${batchNo}`);
    const expected = [...new Set([...model, 'THYAO'])].sort();
    assert.deepEqual([...now].sort(), expected, `batch at ${i}: subscriptions changed without a reply`);
    model = now;
  }
  // Late auth replies: wait until every message has its answer.
  received += p.lateAnswers;
  for (let k = 0; k < 20 && received < sent; k++) {
    await sleep(100);
    received += p.inbox.splice(0).filter((m) => m.type === 'reply' || m.type === 'error').length;
  }
  assert.equal(received, sent, 'every message answered exactly once');
  rssAt.push(stack.svc('gateway').rss() ?? NaN);
  t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries([...answers].sort()))}`);
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  t.diagnostic(
    `gateway RSS after warm-up ${mib(rssAt[0]!)} MiB, half-way ${mib(rssAt[1]!)} MiB, end ${mib(rssAt[2]!)} MiB (seed ${FUZZ_SEED})`,
  );
  assert.equal(p.closed, undefined);
  p.ws.close();
  assert.ok(rssAt[2]! - rssAt[1]! < PLATEAU_BYTES, 'gateway memory still growing');
  assert.deepEqual(stack.crashes(), []);
  assert.deepEqual(stack.grepLogs(/"level":"(fatal|error)"|Unhandled|uncaught/i).slice(0, 5), []);
});

// The binary encoding (tickmesh.v1.proto): protobuf ClientMessages with nasty ids, tokens
// and symbols, two ops in one message, mutated encodings, random bytes and text frames.
const PROTO = 'tickmesh.v1.proto';
const N_BINARY = Math.max(500, Math.floor(N / 5));
type Op = { op: string; id: string; symbols?: string[]; token?: string };
const encodeClient = (op: Op): Buffer => Buffer.from(clientMessageOf(op));
const protoSymbols = fc.oneof(
  fc.array(fc.oneof(fc.constantFrom(...symbols, '*'), nastyString), { maxLength: 8 }),
  fc.array(fc.constantFrom(...symbols), { minLength: 1, maxLength: 40 }),
  fc.array(fc.constant('A'), { minLength: 200, maxLength: 1000 }),
);
// 'none': a message with no op set.
const clientMessage: fc.Arbitrary<Op> = fc.record({
  id: fc.oneof(fc.constant(''), nastyString),
  op: fc.constantFrom('auth', 'subscribe', 'unsubscribe', 'ping', 'none'),
  symbols: protoSymbols,
  token: nastyString,
});
const fits = (b: Buffer) => b.length <= MAX_FRAME;
const protoFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  {
    weight: 10,
    arbitrary: clientMessage
      .map(encodeClient)
      .filter(fits)
      .map((binary) => ({ binary })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(clientMessage, clientMessage)
      .map(([a, b]) => Buffer.concat([encodeClient(a), encodeClient(b)]))
      .filter(fits)
      .map((binary) => ({ binary })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(clientMessage, fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([m, at, value]) => {
        const b = encodeClient(m);
        if (b.length > 0) b[at % b.length] = value;
        return b;
      })
      .filter(fits)
      .map((binary) => ({ binary })),
  },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => ({ binary: Buffer.from(b) })) },
  {
    weight: 1,
    arbitrary: textual.filter((t) => Buffer.byteLength(t) <= MAX_FRAME).map((text) => ({ text })),
  },
);

/** A binary-encoding client: every server message decoded to { type, ...fields }. */
class BinaryProbe {
  readonly ws: WebSocket;
  inbox: Array<Record<string, unknown>> = [];
  closed: { code: number } | undefined;
  textFrames = 0;
  constructor(url: string) {
    this.ws = new WebSocket(url, PROTO, { maxPayload: 64 * 1024 * 1024 });
    this.ws.on('message', (d: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.textFrames++;
        return;
      }
      const one = serverMessageBody(ServerMessage.decode(d));
      this.inbox.push(one ? { type: one.type, ...one.body } : { type: '<not one message>' });
    });
    this.ws.on('close', (code: number) => (this.closed = { code }));
    this.ws.on('error', () => undefined);
  }
  async until(
    pred: (m: Record<string, unknown>) => boolean,
    what: string,
  ): Promise<Array<Record<string, unknown>>> {
    await waitUntil(() => this.closed !== undefined || this.inbox.some(pred), {
      timeoutMs: 15_000,
      intervalMs: 5,
      what: what,
    });
    if (this.closed) throw new Error(`closed ${this.closed.code} waiting for ${what}`);
    return this.inbox.splice(0, this.inbox.findIndex(pred) + 1);
  }
  send(op: Op): void {
    this.ws.send(encodeClient(op), { binary: true });
  }
}

test(`${N_BINARY} generated binary (tickmesh.v1.proto) messages: each answered once, subscriptions change only by accepted ops`, async (t) => {
  const frames = samples(protoFrameArb, N_BINARY, 13);
  const p = new BinaryProbe(stack.wsUrl);
  await p.until((m) => m.type === 'welcome', 'welcome');
  const subscriptions = async (tag: string) => {
    p.send({ op: 'subscribe', id: tag, symbols: ['THYAO'] });
    const got = await p.until((m) => m.type === 'reply' && m.id === tag, `reply ${tag}`);
    return { before: got.slice(0, -1), now: got[got.length - 1]!.subscriptions as string[] };
  };
  let model = (await subscriptions('start')).now;
  const isAnswer = (m: Record<string, unknown>) =>
    m.type === 'error' || m.type === 'reply' || m.type === 'pong';
  const answers = new Map<string, number>();
  let sent = 0;
  let received = 0;
  for (let i = 0; i < frames.length; i += BATCH) {
    const batch = frames.slice(i, i + BATCH);
    for (const f of batch) {
      if ('text' in f) p.ws.send(f.text);
      else p.ws.send(f.binary, { binary: true });
    }
    const tag = `sync-${i}`;
    p.send({ op: 'ping', id: tag });
    const got = (await p.until((m) => m.type === 'pong' && m.id === tag, `pong ${tag}`)).slice(0, -1);
    const check = await subscriptions(`check-${i}`);
    for (const m of [...got, ...check.before].filter(isAnswer)) {
      const key = m.type === 'error' ? `error:${String(m.code)}` : `${String(m.type)}:${String(m.op ?? '')}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
      if (m.type === 'reply' && Array.isArray(m.subscriptions) && m.op !== 'auth')
        model = m.subscriptions as string[];
      received++;
    }
    sent += batch.length;
    // An `auth` is checked asynchronously, so answers are counted over the run, never more than sent.
    assert.ok(received <= sent, `batch at ${i}: ${received} answers to ${sent} messages`);
    assert.ok(sent - received <= 5, `batch at ${i}: ${sent - received} messages without an answer`);
    assert.deepEqual(
      [...check.now].sort(),
      [...new Set([...model, 'THYAO'])].sort(),
      `batch at ${i}: subscriptions changed without a reply`,
    );
    model = check.now;
  }
  for (let k = 0; k < 20 && received < sent; k++) {
    await sleep(100);
    received += p.inbox.splice(0).filter(isAnswer).length;
  }
  assert.equal(received, sent, 'every message answered exactly once');
  assert.equal(p.textFrames, 0, 'a binary connection gets binary frames only');
  assert.equal(p.closed, undefined);
  t.diagnostic(`binary answers: ${JSON.stringify(Object.fromEntries([...answers].sort()))}`);
  p.ws.close();
  assert.deepEqual(stack.crashes(), []);
  assert.deepEqual(stack.grepLogs(/"level":"(fatal|error)"|Unhandled|uncaught/i).slice(0, 5), []);
});

test('oversized frames, invalid UTF-8 and raw garbage close only the offending connection', async (t) => {
  const big = samples(fc.integer({ min: MAX_FRAME + 1, max: 1_000_000 }), 30, 11);
  const codes = new Map<number, number>();
  const count = (c: number) => codes.set(c, (codes.get(c) ?? 0) + 1);
  for (const size of big) {
    const p = new Probe(stack.wsUrl);
    await p.opened();
    p.ws.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: ['THYAO'], pad: 'x'.repeat(size) }));
    await waitUntil(() => p.closed, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'close after an oversized frame',
    });
    count(p.closed!.code);
  }
  assert.deepEqual([...codes.keys()], [1009], `oversized frames: ${JSON.stringify([...codes])}`);

  // Invalid UTF-8 in a text frame: RFC 6455 says close with 1007.
  const bad = new Probe(stack.wsUrl);
  await bad.opened();
  const sock = (bad.ws as unknown as { _socket: net.Socket })._socket;
  // a masked text frame (FIN, opcode 1) of 2 bytes that are not UTF-8, mask 0
  sock.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]));
  await waitUntil(() => bad.closed, { timeoutMs: 10_000, intervalMs: 20, what: 'close after invalid UTF-8' });
  t.diagnostic(`invalid UTF-8 -> close ${bad.closed!.code}`);
  assert.equal(bad.closed!.code, 1007);

  // Garbage instead of an HTTP upgrade, and garbage after a good upgrade.
  const junk = samples(fc.uint8Array({ minLength: 1, maxLength: 4096 }), 50, 12);
  for (const bytes of junk) {
    await new Promise<void>((resolve) => {
      const s = net.connect(Number(new URL(stack.gatewayHttp).port), '127.0.0.1', () =>
        s.end(Buffer.from(bytes)),
      );
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 5000);
    });
  }
  for (const bytes of junk.slice(0, 20)) {
    const p = new Probe(stack.wsUrl);
    await p.opened();
    (p.ws as unknown as { _socket: net.Socket })._socket.write(Buffer.from(bytes));
    await waitUntil(() => p.closed ?? p.ws.readyState === WebSocket.OPEN, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'the server to drop or answer garbage',
    });
    p.ws.terminate();
  }
  assert.equal((await httpGet(`${stack.gatewayHttp}/healthz`)).status, 200);
  assert.ok(bystander.connected, 'the bystander lost its connection');
  assert.equal(bystander.connects, 1);
  assert.deepEqual(bystander.tracker.violations, []);
  assert.deepEqual(stack.crashes(), []);
});
