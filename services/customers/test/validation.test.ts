import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '@tickmesh/kit';
import {
  charLength,
  pageSize,
  requireEmail,
  requireId,
  requireName,
  requireText,
  requireWatchlist,
  updateMaskFields,
} from '../src/validation.js';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    return err.field;
  }
  assert.fail('expected an InvalidArgumentError');
}

void test('names: trimmed, 1..100 code points, no control characters', () => {
  assert.equal(requireName('first_name', '  Ada  '), 'Ada');
  assert.equal(
    fieldOf(() => requireName('first_name', '')),
    'first_name',
  );
  assert.equal(
    fieldOf(() => requireName('last_name', '   \t ')),
    'last_name',
  );
  assert.equal(requireName('first_name', 'x'.repeat(100)).length, 100);
  assert.equal(
    fieldOf(() => requireName('first_name', 'x'.repeat(101))),
    'first_name',
  );
  // 100 emoji are 200 UTF-16 units but 100 characters: MySQL VARCHAR(100) holds them.
  const emoji = '😀'.repeat(100);
  assert.equal(charLength(emoji), 100);
  assert.equal(requireName('first_name', emoji), emoji);
  assert.equal(
    fieldOf(() => requireName('first_name', `${emoji}😀`)),
    'first_name',
  );
  for (const bad of ['a\u0000b', 'a\nb', 'a\u001bb', 'a\u007fb', 'a\u2028b', 'a\ud800b']) {
    assert.equal(
      fieldOf(() => requireName('last_name', bad)),
      'last_name',
      JSON.stringify(bad),
    );
  }
});

void test('names: injection strings and non-Latin scripts are accepted literally', () => {
  for (const s of [
    "Robert'); DROP TABLE customers;--",
    '" OR 1=1 --',
    '<script>alert(1)</script>',
    'Şükrü Çağlar',
    '李小龍',
    '%_\\',
  ]) {
    assert.equal(requireName('first_name', s), s);
  }
});

void test('email: pragmatic format, case kept for display, lower-cased key', () => {
  assert.deepEqual(requireEmail('email', '  Ada.Lovelace@Example.COM '), {
    display: 'Ada.Lovelace@Example.COM',
    normalized: 'ada.lovelace@example.com',
  });
  assert.equal(
    requireEmail('email', "o'brien+tag@mail.example.co.uk").normalized,
    "o'brien+tag@mail.example.co.uk",
  );
  for (const bad of [
    '',
    'plain',
    '@example.com',
    'a@',
    'a@b',
    'a@b.c',
    'a..b@example.com',
    '.a@example.com',
    'a.@example.com',
    'a b@example.com',
    'a@-example.com',
    'a@example-.com',
    'a@exa_mple.com',
    'a\n@example.com',
    'a@@example.com',
    'ü@example.com',
    `${'a'.repeat(65)}@example.com`,
    `a@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(60)}.com`,
  ]) {
    assert.equal(
      fieldOf(() => requireEmail('email', bad)),
      'email',
      JSON.stringify(bad),
    );
  }
  assert.ok(requireEmail('email', `${'a'.repeat(64)}@example.com`));
  // Surrounding whitespace (a pasted newline) is trimmed, not an error.
  assert.equal(requireEmail('email', 'a@example.com\n').display, 'a@example.com');
});

void test('email: a long hostile input is rejected quickly (no catastrophic backtracking)', () => {
  const started = performance.now();
  for (const s of [`${'a.'.repeat(120)}@`, `a@${'a-'.repeat(120)}`, `a@${'a.'.repeat(120)}1`]) {
    assert.equal(
      fieldOf(() => requireEmail('email', s)),
      'email',
    );
  }
  // Generous bound: linear matching takes microseconds; exponential would take seconds.
  assert.ok(performance.now() - started < 1000);
});

void test('ids: any-case UUIDs, returned in lower case', () => {
  assert.equal(
    requireId('id', '0193A5E2-7C1F-7A3B-9D2E-4F5A6B7C8D9E'),
    '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e',
  );
  assert.equal(
    fieldOf(() => requireId('id', '')),
    'id',
  );
  assert.equal(
    fieldOf(() => requireId('customer_id', 'not-a-uuid')),
    'customer_id',
  );
  assert.equal(
    fieldOf(() => requireId('key_id', "1' OR '1'='1")),
    'key_id',
  );
  assert.equal(
    fieldOf(() => requireId('id', '0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9')),
    'id',
  );
});

void test('page size: 0 is the default, above the maximum is lowered', () => {
  assert.equal(pageSize(0), 50);
  assert.equal(pageSize(7), 7);
  assert.equal(pageSize(500), 500);
  assert.equal(pageSize(4_000_000_000), 500);
  assert.equal(
    fieldOf(() => pageSize(-1)),
    'page_size',
  );
});

void test('update mask: snake_case and camelCase paths; empty means every field; unknown rejected', () => {
  assert.deepEqual([...updateMaskFields(undefined)].sort(), ['email', 'first_name', 'last_name']);
  assert.deepEqual([...updateMaskFields([])].sort(), ['email', 'first_name', 'last_name']);
  assert.deepEqual([...updateMaskFields(['firstName', 'last_name', 'first_name'])].sort(), [
    'first_name',
    'last_name',
  ]);
  assert.deepEqual([...updateMaskFields(['email'])], ['email']);
  for (const bad of [['id'], ['email', 'create_time_ms'], ['__proto__'], ['toString'], ['']]) {
    assert.equal(
      fieldOf(() => updateMaskFields(bad)),
      'update_mask',
      JSON.stringify(bad),
    );
  }
});

void test('watchlist: validated per index, deduplicated in order, bounded', () => {
  assert.deepEqual(requireWatchlist(['THYAO', 'GARAN', 'THYAO', 'AKBNK'], 200), ['THYAO', 'GARAN', 'AKBNK']);
  assert.deepEqual(requireWatchlist([], 200), []);
  assert.equal(
    fieldOf(() => requireWatchlist(['THYAO', 'GARAN', 'AKBNK', 'thyao'], 200)),
    'symbols[3]',
  );
  assert.equal(
    fieldOf(() => requireWatchlist(['A.B'], 200)),
    'symbols[0]',
  );
  assert.equal(
    fieldOf(() => requireWatchlist(['', 'X'], 200)),
    'symbols[0]',
  );
  assert.equal(
    fieldOf(() => requireWatchlist(['X', 'Y', 'Z'], 2)),
    'symbols',
  );
  assert.equal(
    requireWatchlist(
      Array.from({ length: 200 }, (_, i) => `S${i}`),
      200,
    ).length,
    200,
  );
});

void test('optional text: empty allowed, otherwise checked like a name', () => {
  assert.equal(requireText('name', '  ', 100, { optional: true }), '');
  assert.equal(requireText('name', ' ci ', 100, { optional: true }), 'ci');
  assert.equal(
    fieldOf(() => requireText('name', 'a\tb', 100, { optional: true })),
    'name',
  );
});
