import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '@tickmesh/kit';
import { decodePageToken, encodePageToken } from '../src/page-token.js';

const ID = '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e';

function rejects(token: string, filter = ''): void {
  assert.throws(
    () => decodePageToken(token, filter),
    (err: unknown) => err instanceof InvalidArgumentError && err.field === 'page_token',
    JSON.stringify(token),
  );
}

void test('round trip; empty token is the first page', () => {
  assert.equal(decodePageToken('', ''), undefined);
  const t = encodePageToken({ afterId: ID, emailFilter: '' });
  assert.match(t, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodePageToken(t, ''), { afterId: ID, emailFilter: '' });
  const f = encodePageToken({ afterId: ID, emailFilter: 'ada@example.com' });
  assert.deepEqual(decodePageToken(f, 'ada@example.com'), { afterId: ID, emailFilter: 'ada@example.com' });
});

void test('a token used with another filter is rejected', () => {
  rejects(encodePageToken({ afterId: ID, emailFilter: 'ada@example.com' }), 'bob@example.com');
  rejects(encodePageToken({ afterId: ID, emailFilter: 'ada@example.com' }), '');
});

void test('garbage and tampered tokens are rejected', () => {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const good = encodePageToken({ afterId: ID, emailFilter: '' });
  for (const bad of [
    'x',
    'not a token',
    '!!!!',
    `${good}=`,
    `${good}A`,
    good.slice(0, -1),
    'A'.repeat(2000),
    Buffer.from('not json').toString('base64url'),
    enc(null),
    enc([ID]),
    enc('str'),
    enc({ v: 2, a: ID, f: '' }),
    enc({ v: 1, a: ID }),
    enc({ v: 1, a: ID, f: '', x: 1 }),
    enc({ v: 1, a: ID.toUpperCase(), f: '' }),
    enc({ v: 1, a: "' OR 1=1 --", f: '' }),
    enc({ v: 1, a: 7, f: '' }),
    enc({ v: '1', a: ID, f: '' }),
  ]) {
    rejects(bad);
  }
});

void test('every single-character change of a valid token is rejected or decodes to a valid cursor', () => {
  const good = encodePageToken({ afterId: ID, emailFilter: '' });
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < good.length; i++) {
    for (const c of alphabet) {
      const t = good.slice(0, i) + c + good.slice(i + 1);
      if (t === good) continue;
      try {
        const cursor = decodePageToken(t, '');
        // Only an edit that still spells a canonical id may pass; it is a valid cursor then.
        assert.match(cursor!.afterId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      } catch (err) {
        assert.ok(err instanceof InvalidArgumentError && err.field === 'page_token');
      }
    }
  }
});
