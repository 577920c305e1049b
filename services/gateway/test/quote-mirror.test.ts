import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuoteMirror } from '../src/quote-mirror.js';
import { quote } from './support/quotes.js';

void test('applies newer quotes, drops repeats and older ones', () => {
  const m = new QuoteMirror(100);
  m.replaceAll([quote('A', 5), quote('B', 1)], 1);
  assert.equal(m.size, 2);
  assert.equal(m.apply(quote('A', 5)).kind, 'stale');
  assert.equal(m.apply(quote('A', 4)).kind, 'stale');
  const r = m.apply(quote('A', 6));
  assert.equal(r.kind, 'applied');
  assert.equal(r.kind === 'applied' && r.update.conflated, false);
  assert.equal(m.get('A')?.seq, 6);
  const n = m.apply(quote('C', 1));
  assert.equal(n.kind, 'applied', 'a new symbol is added');
});

void test('a seq jump is marked conflated; the upstream flag is kept', () => {
  const m = new QuoteMirror(100);
  m.replaceAll([quote('A', 1)], 1);
  const r = m.apply(quote('A', 4));
  assert.ok(r.kind === 'applied' && r.update.conflated && JSON.parse(r.update.json).conflated === true);
  assert.equal(JSON.parse(m.get('A')!.json).conflated, undefined, 'the mirror state itself is not marked');
  const u = m.apply(quote('A', 5, { conflated: true }));
  assert.ok(u.kind === 'applied' && u.update.conflated);
});

void test('another epoch is reported, not applied', () => {
  const m = new QuoteMirror(100);
  m.replaceAll([quote('A', 10)], 1);
  assert.equal(m.apply(quote('A', 1, { epoch: 2 })).kind, 'epoch');
  assert.equal(m.get('A')?.seq, 10);
  m.replaceAll([quote('A', 1, { epoch: 2 })], 2);
  assert.equal(m.epoch, 2);
  assert.equal(m.get('A')?.seq, 1);
});

void test('malformed quotes and symbols beyond the cap are rejected', () => {
  const m = new QuoteMirror(2);
  m.replaceAll([quote('A', 1), quote('B', 1)], 1);
  assert.equal(m.apply(quote('C', 1)).kind, 'rejected');
  assert.equal(m.apply(quote('bad.symbol', 1)).kind, 'rejected');
  assert.equal(m.apply(quote('A', 2, { last: Number.NaN })).kind, 'rejected');
  assert.equal(m.apply(quote('A', -1)).kind, 'rejected');
  assert.equal(m.size, 2);
  assert.equal(
    m.replaceAll([quote('A', 1), quote('B', 1), quote('C', 1), quote('D', 1, { epoch: 9 })], 1),
    2,
  );
});
