import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ErrorCode,
  errorMessage,
  MAX_SYMBOLS_PER_OP,
  parseClientMessage,
  quotesMessage,
  replyMessage,
  snapshotMessage,
  welcomeMessage,
} from '../src/protocol.js';
import { conflatedJson, quoteJson } from '../src/quote-json.js';
import type { Quote } from '@tickmesh/kit/proto';

const codes = new Set<string>(Object.values(ErrorCode));

function err(text: string): { code: string; message: string; id?: unknown } {
  const r = parseClientMessage(text);
  assert.equal(r.ok, false, `expected an error for ${text}`);
  return (r as { ok: false; error: { code: string; message: string; id?: unknown } }).error;
}

void test('valid ops parse, with their id echoed as given', () => {
  assert.deepEqual(parseClientMessage('{"op":"subscribe","id":1,"symbols":["THYAO","GARAN"]}'), {
    ok: true,
    value: { op: 'subscribe', id: 1, all: false, symbols: ['THYAO', 'GARAN'] },
  });
  assert.deepEqual(parseClientMessage('{"op":"subscribe","id":"a-1","symbols":"*"}'), {
    ok: true,
    value: { op: 'subscribe', id: 'a-1', all: true, symbols: [] },
  });
  assert.deepEqual(parseClientMessage('{"op":"unsubscribe","symbols":["*","AKBNK","AKBNK"]}'), {
    ok: true,
    value: { op: 'unsubscribe', all: true, symbols: ['AKBNK'] },
  });
  assert.deepEqual(parseClientMessage('{"op":"ping","id":7,"extra":{"ignored":true}}'), {
    ok: true,
    value: { op: 'ping', id: 7 },
  });
  assert.deepEqual(parseClientMessage('{"op":"auth","id":0,"token":"k_123"}'), {
    ok: true,
    value: { op: 'auth', id: 0, token: 'k_123' },
  });
});

void test('not JSON, or not an object: bad_json', () => {
  for (const text of [
    '',
    '{',
    'nope',
    '{"op":"ping"',
    '[]',
    '[1]',
    'null',
    '42',
    '"ping"',
    'true',
    '\u0000',
  ]) {
    assert.equal(err(text).code, ErrorCode.badJson, text);
  }
});

void test('missing or mistyped fields: bad_request naming the field', () => {
  const cases: Array<[string, string]> = [
    ['{}', 'op'],
    ['{"op":5}', 'op'],
    ['{"op":null}', 'op'],
    ['{"op":"subscribe"}', 'symbols'],
    ['{"op":"subscribe","symbols":"THYAO"}', 'symbols'],
    ['{"op":"subscribe","symbols":{}}', 'symbols'],
    ['{"op":"subscribe","symbols":[]}', 'symbols'],
    ['{"op":"auth"}', 'token'],
    ['{"op":"auth","token":""}', 'token'],
    ['{"op":"auth","token":42}', 'token'],
    [`{"op":"auth","token":"${'x'.repeat(9000)}"}`, 'token'],
    ['{"op":"ping","id":1.5}', 'id'],
    ['{"op":"ping","id":{"a":1}}', 'id'],
    ['{"op":"ping","id":[1]}', 'id'],
    [`{"op":"ping","id":"${'x'.repeat(65)}"}`, 'id'],
    ['{"op":"ping","id":1e300}', 'id'],
  ];
  for (const [text, field] of cases) {
    const e = err(text);
    assert.equal(e.code, ErrorCode.badRequest, text.slice(0, 80));
    assert.match(e.message, new RegExp(`^${field}`), text.slice(0, 80));
  }
});

void test('unknown op: unknown_op, with the id echoed', () => {
  const e = err('{"op":"buy","id":9,"symbols":["THYAO"]}');
  assert.equal(e.code, ErrorCode.unknownOp);
  assert.equal(e.id, 9);
  assert.equal(err('{"op":"__proto__"}').code, ErrorCode.unknownOp);
  assert.ok(err(`{"op":"${'z'.repeat(500)}"}`).message.length < 120, 'long input is not echoed in full');
});

void test('malformed symbols: bad_symbol naming the index', () => {
  const bad = [
    'thyao',
    'THY.AO',
    '',
    ' THYAO',
    'THYAO ',
    'A'.repeat(17),
    '-ABC',
    "'; DROP TABLE quotes;--",
    '<script>',
    'ÇAĞ',
    'A B',
  ];
  for (const s of bad) {
    const e = err(JSON.stringify({ op: 'subscribe', id: 3, symbols: ['GARAN', s] }));
    assert.equal(e.code, ErrorCode.badSymbol, s);
    assert.equal(e.id, 3);
    assert.match(e.message, /^symbols\[1\]/);
  }
  for (const v of [1, null, true, {}, []]) {
    assert.equal(err(JSON.stringify({ op: 'subscribe', symbols: [v] })).code, ErrorCode.badSymbol);
  }
});

void test('too many symbols in one op: too_many_symbols', () => {
  const symbols = Array.from({ length: MAX_SYMBOLS_PER_OP + 1 }, (_, i) => `S${i}`);
  assert.equal(err(JSON.stringify({ op: 'subscribe', symbols })).code, ErrorCode.tooManySymbols);
});

void test('never throws, and every rejection carries a known code (property)', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.json(),
        fc.jsonValue().map((v) => JSON.stringify({ op: 'subscribe', symbols: v, id: v })),
      ),
      (text) => {
        const r = parseClientMessage(text);
        if (!r.ok) assert.ok(codes.has(r.error.code));
        else assert.ok(['auth', 'subscribe', 'unsubscribe', 'ping'].includes(r.value.op));
      },
    ),
    { numRuns: 2000 },
  );
});

void test('server messages are valid JSON with the documented shape', () => {
  const q: Quote = {
    symbol: 'THYAO',
    last: 123.45,
    bid: 123.4,
    ask: 123.5,
    open: 120,
    high: 124,
    low: 119.9,
    prevClose: 121.1,
    volume: 1000,
    change: 2.35,
    changePct: 1.94,
    eventTimeMs: 1_700_000_000_000,
    seq: 42,
    epoch: 7,
    lastSize: 5,
    sessionDate: '2025-01-02',
    appliedTimeMs: 1_700_000_000_001,
    conflated: false,
    trades: 3,
  };
  const json = quoteJson(q);
  assert.equal(json.includes('123.45'), true);
  assert.deepEqual(JSON.parse(json), {
    symbol: 'THYAO',
    seq: 42,
    epoch: 7,
    last: 123.45,
    bid: 123.4,
    ask: 123.5,
    open: 120,
    high: 124,
    low: 119.9,
    prevClose: 121.1,
    volume: 1000,
    change: 2.35,
    changePct: 1.94,
    lastSize: 5,
    ts: 1_700_000_000_000,
  });
  assert.equal(JSON.parse(conflatedJson(json)).conflated, true);
  assert.deepEqual(JSON.parse(quotesMessage([json, json])).quotes.length, 2);
  assert.deepEqual(JSON.parse(snapshotMessage([json], ['NOPE'])), {
    type: 'snapshot',
    quotes: [JSON.parse(json)],
    missing: ['NOPE'],
  });
  assert.deepEqual(JSON.parse(snapshotMessage([], [])), { type: 'snapshot', quotes: [], missing: [] });
  assert.deepEqual(JSON.parse(replyMessage('subscribe', 'x', { subscriptions: ['*'] })), {
    type: 'reply',
    op: 'subscribe',
    id: 'x',
    subscriptions: ['*'],
  });
  assert.deepEqual(JSON.parse(errorMessage({ code: 'bad_json', message: 'm', id: 1 })), {
    type: 'error',
    code: 'bad_json',
    message: 'm',
    id: 1,
  });
  const w = JSON.parse(
    welcomeMessage({
      session: 's',
      heartbeatMs: 15000,
      authRequired: false,
      authTimeoutMs: 5000,
      upstream: 'up',
      limits: { maxSubscriptions: 200, messagesPerSecond: 20, messagesBurst: 40, maxFrameBytes: 4096 },
    }),
  );
  assert.equal(w.type, 'welcome');
  assert.equal(w.protocol, 'tickmesh.v1');
  assert.equal(w.heartbeatMs, 15000);
  assert.equal('authTimeoutMs' in w, false);
});
