// The binary encoding tickmesh.v1.proto: every server message has a protobuf
// twin with the same content, converted once per frame; binary client
// messages get the same validation and error codes as JSON ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientMessage, ServerMessage } from '@tickmesh/kit/proto';
import { OutFrame } from '../src/fanout.js';
import { parseBinaryClientMessage, protoPayload } from '../src/proto-codec.js';
import {
  errorMessage,
  heartbeatMessage,
  pongMessage,
  quotesMessage,
  replyMessage,
  resnapshotMessage,
  upstreamDownMessage,
  welcomeMessage,
} from '../src/protocol.js';
import { quoteJson } from '../src/quote-json.js';
import { appliedUpdates, quote } from './support/quotes.js';
import { QuoteMirror } from '../src/quote-mirror.js';

const decode = (json: string): ServerMessage => ServerMessage.decode(protoPayload(OutFrame.text(json))!);

void test('quotes and snapshots carry every field of the JSON quote', () => {
  // A distinct value in every field, so a swapped or dropped one shows.
  const q = quote('THYAO', 42, {
    last: 301.25,
    bid: 301,
    ask: 301.5,
    open: 295.75,
    high: 305.5,
    low: 290.25,
    prevClose: 298,
    volume: 123_456_789,
    change: 3.25,
    changePct: 1.09,
    lastSize: 17,
    eventTimeMs: 1_764_000_000_123,
    epoch: 7,
  });
  // As in the gateway: quotes encoded once by the mirror, frames built from them.
  const mirror = new QuoteMirror(100);
  mirror.apply(quote('GARAN', 7, { epoch: 7 }));
  const updates = appliedUpdates(mirror, q, quote('GARAN', 9, { epoch: 7 }));
  const frame = OutFrame.quotes(updates);
  const m = ServerMessage.decode(protoPayload(frame)!);
  const [a, b] = m.quotes!.quotes;
  assert.deepEqual(
    { ...a!, sessionDate: q.sessionDate, appliedTimeMs: q.appliedTimeMs, trades: q.trades },
    q,
    'all but the fields the JSON form leaves out',
  );
  // Field by field against the JSON twin of the same frame.
  const [ja, jb] = (JSON.parse(frame.payload.toString('utf8')) as { quotes: Record<string, unknown>[] })
    .quotes;
  for (const [field, value] of Object.entries(ja!)) {
    assert.equal(
      (a as unknown as Record<string, unknown>)[field === 'ts' ? 'eventTimeMs' : field],
      value,
      field,
    );
  }
  assert.equal(b!.symbol, 'GARAN');
  assert.equal(b!.conflated, true);
  assert.equal(jb!.conflated, true);
  const s = ServerMessage.decode(protoPayload(OutFrame.snapshot([mirror.get('THYAO')!], ['ASELS']))!);
  assert.equal(s.snapshot!.quotes[0]!.seq, 42);
  assert.deepEqual(s.snapshot!.missing, ['ASELS']);
});

void test('every other server message has its binary form', () => {
  const w = decode(
    welcomeMessage({
      session: 's1',
      heartbeatMs: 5000,
      authRequired: true,
      authTimeoutMs: 3000,
      upstream: 'up',
      limits: { maxSubscriptions: 3, messagesPerSecond: 5, messagesBurst: 10, maxFrameBytes: 1024 },
    }),
  ).welcome!;
  assert.deepEqual(w, {
    protocol: 'tickmesh.v1',
    session: 's1',
    heartbeatMs: 5000,
    authRequired: true,
    authTimeoutMs: 3000,
    upstream: 'up',
    limits: { maxSubscriptions: 3, messagesPerSecond: 5, messagesBurst: 10, maxFrameBytes: 1024 },
  });
  assert.deepEqual(decode(replyMessage('subscribe', 'a', { subscriptions: ['*', 'THYAO'] })).reply, {
    op: 'subscribe',
    id: 'a',
    subscriptions: ['*', 'THYAO'],
    principal: '',
  });
  assert.equal(
    decode(replyMessage('auth', 7, { principal: 'key:abc' })).reply!.id,
    '7',
    'ids become strings',
  );
  assert.deepEqual(decode(errorMessage({ code: 'bad_symbol', message: 'symbols[0]: no', id: 'x' })).error, {
    code: 'bad_symbol',
    message: 'symbols[0]: no',
    id: 'x',
  });
  assert.deepEqual(decode(pongMessage('p', 1234)).pong, { id: 'p', tsMs: 1234 });
  assert.deepEqual(decode(heartbeatMessage(99)).heartbeat, { tsMs: 99 });
  assert.deepEqual(decode(resnapshotMessage('epoch', 8)).resnapshot, { reason: 'epoch', epoch: 8 });
  const n = decode(upstreamDownMessage(5)).notice!;
  assert.equal(n.code, 'upstream_down');
  assert.equal(n.tsMs, 5);
});

void test('a frame is converted once, however many binary clients it goes to', () => {
  const frame = OutFrame.text(heartbeatMessage(1));
  const first = protoPayload(frame);
  assert.ok(first);
  assert.equal(protoPayload(frame), first);
  const mystery = OutFrame.text('{"type":"mystery"}');
  assert.equal(protoPayload(mystery), undefined, 'no binary form');
  assert.equal(mystery.protoFailed, true, 'remembered: not retried for each recipient');
  // Quotes are spliced, never converted from JSON: a text-built one has no binary form.
  assert.equal(protoPayload(OutFrame.text(quotesMessage([quoteJson(quote('THYAO', 1))]))), undefined);
});

void test('binary client messages: same ops, same validation, same codes', () => {
  const enc = (m: Partial<ClientMessage>) =>
    Buffer.from(ClientMessage.encode(ClientMessage.fromPartial(m)).finish());
  assert.deepEqual(
    parseBinaryClientMessage(enc({ id: 's', subscribe: { symbols: ['THYAO', '*', 'THYAO'] } })),
    {
      ok: true,
      value: { op: 'subscribe', id: 's', all: true, symbols: ['THYAO'] },
    },
  );
  assert.deepEqual(parseBinaryClientMessage(enc({ unsubscribe: { symbols: ['GARAN'] } })), {
    ok: true,
    value: { op: 'unsubscribe', all: false, symbols: ['GARAN'] },
  });
  assert.deepEqual(parseBinaryClientMessage(enc({ id: 'a', auth: { token: 'k' } })), {
    ok: true,
    value: { op: 'auth', id: 'a', token: 'k' },
  });
  assert.deepEqual(parseBinaryClientMessage(enc({ id: 'p', ping: {} })), {
    ok: true,
    value: { op: 'ping', id: 'p' },
  });

  const err = (data: Buffer) => {
    const r = parseBinaryClientMessage(data);
    assert.equal(r.ok, false);
    return (r as { error: { code: string; message: string; id?: unknown } }).error;
  };
  assert.deepEqual(err(Buffer.from([0xff, 0xff, 0xff, 0xff])), {
    code: 'bad_request',
    message: 'not a tickmesh.gateway.v1.ClientMessage',
  });
  const bad = err(enc({ id: 'b', subscribe: { symbols: ['GARAN', 'thy.ao'] } }));
  assert.equal(bad.code, 'bad_symbol');
  assert.equal(bad.id, 'b');
  assert.match(bad.message, /symbols\[1\]/);
  assert.equal(err(enc({ id: 'e', subscribe: { symbols: [] } })).code, 'bad_request');
  assert.equal(err(enc({ auth: { token: '' } })).code, 'bad_request');
  assert.equal(err(enc({ id: 'x'.repeat(65), ping: {} })).code, 'bad_request', 'id too long');
  const two = Buffer.concat([enc({ id: 't', ping: {} }), enc({ subscribe: { symbols: ['GARAN'] } })]);
  assert.deepEqual(err(two), { code: 'bad_request', message: 'op: more than one set', id: 't' });
  assert.deepEqual(err(enc({ id: 'n' })), {
    code: 'unknown_op',
    message: 'op: none set, or one this server does not know',
    id: 'n',
  });
});

void test('quotes and snapshots are spliced from quotes encoded once: the same bytes ts-proto would write', () => {
  const mirror = new QuoteMirror(100);
  const a = quote('THYAO', 5, { last: 301.25, sessionDate: '2026-12-05', appliedTimeMs: 1_764_000_000_456 });
  const b = quote('GARAN', 9);
  mirror.replaceAll([quote('THYAO', 4), quote('GARAN', 7)], 1);
  const updates = appliedUpdates(mirror, a, b); // GARAN 7 -> 9: a jump, so marked conflated
  const frame = OutFrame.quotes(updates);
  const want = ServerMessage.encode(
    ServerMessage.fromPartial({ quotes: { quotes: [a, { ...b, conflated: true }] } }),
  ).finish();
  assert.deepEqual(ServerMessage.decode(protoPayload(frame)!), ServerMessage.decode(want));
  assert.equal(frame.protoPayload!.length, want.length, 'as many bytes as ts-proto writes');

  const entries = [mirror.get('THYAO')!, mirror.get('GARAN')!];
  const snap = OutFrame.snapshot(entries, ['ASELS']);
  assert.deepEqual(
    ServerMessage.decode(protoPayload(snap)!),
    ServerMessage.fromPartial({ snapshot: { quotes: [a, b], missing: ['ASELS'] } }),
  );
});
