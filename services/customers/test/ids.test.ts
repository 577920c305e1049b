import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalId, IdGenerator, idTimeMs } from '../src/ids.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

void test('UUIDv7 format with the creation time in front', () => {
  const gen = new IdGenerator(() => 1_732_240_000_123);
  const id = gen.next();
  assert.match(id, V7);
  assert.equal(idTimeMs(id), 1_732_240_000_123);
});

void test('ids of one generator strictly increase, even within one millisecond or when the clock steps back', () => {
  let t = 1_732_240_000_000;
  const steps = [0, 0, 0, 1, 0, -5, 0, 2];
  let i = 0;
  const gen = new IdGenerator(() => (t += steps[i++ % steps.length]!));
  let prev = '';
  for (let n = 0; n < 20_000; n++) {
    const id = gen.next();
    assert.match(id, V7);
    assert.ok(id > prev, `${id} after ${prev}`);
    prev = id;
  }
});

void test('more than 4096 ids in one millisecond still increase', () => {
  const gen = new IdGenerator(() => 1_732_240_000_000);
  let prev = '';
  for (let n = 0; n < 10_000; n++) {
    const id = gen.next();
    assert.ok(id > prev);
    prev = id;
  }
});

void test('canonicalId lower-cases UUIDs and rejects everything else', () => {
  assert.equal(canonicalId('0193A5E2-7C1F-7A3B-9D2E-4F5A6B7C8D9E'), '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e');
  for (const bad of [
    '',
    'x',
    '0193a5e27c1f7a3b9d2e4f5a6b7c8d9e',
    '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9g',
    ' 0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9',
  ]) {
    assert.equal(canonicalId(bad), undefined);
  }
});
