import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSecret, hashSecret, secretMatches, secretPrefix } from '../src/api-key-secret.js';

void test('generated secrets: format, prefix, hash of the whole secret', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const s = generateSecret();
    assert.match(s.secret, /^tmk_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    assert.equal(s.prefix, s.secret.slice(0, 14));
    assert.equal(secretPrefix(s.secret), s.prefix);
    assert.deepEqual(s.hash, hashSecret(s.secret));
    assert.equal(s.hash.length, 32);
    assert.ok(!seen.has(s.secret));
    seen.add(s.secret);
  }
});

void test('malformed secrets have no prefix', () => {
  const good = generateSecret().secret;
  for (const bad of [
    '',
    'tmk_',
    good.slice(0, -1),
    `${good}x`,
    good.replace('tmk_', 'tmx_'),
    good.toUpperCase(),
    ` ${good}`,
    "tmk_' OR 1=1 --",
  ]) {
    assert.equal(secretPrefix(bad), undefined, JSON.stringify(bad));
  }
});

void test('matching: the right secret only, and never against an unknown key', () => {
  const a = generateSecret();
  const b = generateSecret();
  assert.equal(secretMatches(a.secret, a.hash), true);
  assert.equal(secretMatches(b.secret, a.hash), false);
  assert.equal(secretMatches(a.secret, undefined), false);
  assert.equal(secretMatches(a.secret, Buffer.alloc(5)), false);
  // The one-character-off secret of the same prefix fails.
  const last = a.secret.at(-1) === 'A' ? 'B' : 'A';
  assert.equal(secretMatches(a.secret.slice(0, -1) + last, a.hash), false);
});
