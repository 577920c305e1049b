// fast-check generators of hostile input shared by the fuzz suites: odd strings (unicode,
// lone surrogates, control characters, injection payloads, very long), odd numbers (NaN,
// Infinity, negative, huge), and a fixed seed so a failure can be replayed.
import fc from 'fast-check';

export const FUZZ_SEED = Number(process.env.FUZZ_SEED) || 20261122;

/** Deterministic samples of an arbitrary (no shrinking: every failing input is reported as is). */
export function samples<T>(arb: fc.Arbitrary<T>, n: number, salt = 0): T[] {
  return fc.sample(arb, { seed: FUZZ_SEED + salt, numRuns: n });
}

export const INJECTIONS = [
  "' OR '1'='1",
  "'; DROP TABLE customers; --",
  '" OR ""="',
  '1; SELECT SLEEP(5)',
  "admin'--",
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '${jndi:ldap://x.invalid/a}',
  '{{7*7}}',
  '../../../../etc/passwd',
  '%00',
  '\u0000',
  'ticks.>',
  'quotes.*',
  '*',
  '>',
  'tm:*',
  'FLUSHALL',
  '\r\nSET tm:epoch 0\r\n',
  '__proto__',
  'constructor',
  '{"$gt":""}',
  'A'.repeat(17),
  'THYAO.IS',
  'thyao',
  ' THYAO',
  'THYAO ',
  '\u202eOAYHT',
  'TH\u200bYAO',
  'Ｔ Ｈ Ｙ Ａ Ｏ',
  '\ud800',
  '\udfff\ud800',
  '😀'.repeat(20),
];

/** Strings a careless parser trips on. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 200, maxLength: 3000 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\t', '\n', '\u0000\u0001\u0002', '\u00a0') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z0-9][A-Z0-9_-]{0,15}$/) },
);

/** Numbers at and beyond every edge. */
export const nastyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    NaN,
    Infinity,
    -Infinity,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    1e308,
    -1e308,
    0.1 + 0.2,
    1e-320,
  ),
  fc.double(),
  fc.integer(),
  fc.maxSafeInteger(),
);

/** Non-negative safe integers (what int64/uint64 fields can carry as JS numbers) and odd ones. */
export const int64ish: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 31)),
  fc.maxSafeInteger(),
  fc.integer({ min: 0, max: 1_000_000 }),
);

/** Raw bytes: what a client that is not speaking protobuf sends. */
export const rawBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 200, maxLength: 5000 }),
  fc.constantFrom(
    new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // a length far beyond the message
    new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), // an 11-byte varint
    new Uint8Array([0x0f]), // wire type 7 (invalid)
    new Uint8Array([0x0b, 0x0c]), // group start/end
    new Uint8Array([0x12, 0x03, 0xff, 0xfe, 0xfd]), // invalid UTF-8 in a string field
    new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // -1 as uint64
  ),
);
