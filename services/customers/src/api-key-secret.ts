// API key secrets: `tmk_<prefix>_<secret>`.
//  - prefix: 10 random characters of [a-z0-9] (~51 bits), unique in the table,
//    shown in listings (`tmk_<prefix>`) so a customer can recognise a key; it
//    is also how VerifyApiKey finds the row (an indexed lookup, no scan).
//  - secret: 32 random bytes (256 bits) in base64url.
// Only SHA-256 of the whole string is stored. A slow password hash (scrypt,
// bcrypt) protects low-entropy human passwords against guessing; a 256-bit
// random secret cannot be guessed from its hash at any hash speed, while a
// slow hash would cost milliseconds of CPU on every verify (the gateway's
// hot path) and hand attackers a cheap way to burn it.
// Comparison is constant-time (crypto.timingSafeEqual) over the hashes, and
// an unknown prefix is compared against a dummy hash so that both failures
// take the same path.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

export const SECRET_SCHEME = 'tmk';
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const PREFIX_CHARS = 10;
const SECRET_BYTES = 32;
const SECRET_PATTERN = /^tmk_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$/;
const DUMMY_HASH = createHash('sha256').update('tickmesh: no such key').digest();

export interface NewSecret {
  /** The full secret, returned once to the customer. */
  secret: string;
  /** `tmk_<prefix>`: stored and listed. */
  prefix: string;
  /** SHA-256 of the secret: the only form stored. */
  hash: Buffer;
}

export function generateSecret(): NewSecret {
  let id = '';
  for (let i = 0; i < PREFIX_CHARS; i++) id += PREFIX_ALPHABET[randomInt(PREFIX_ALPHABET.length)];
  const secret = `${SECRET_SCHEME}_${id}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { secret, prefix: `${SECRET_SCHEME}_${id}`, hash: hashSecret(secret) };
}

/** The listed prefix (`tmk_<prefix>`) of a well-formed secret, or undefined. */
export function secretPrefix(secret: string): string | undefined {
  if (secret.length !== 58) return undefined;
  const m = SECRET_PATTERN.exec(secret);
  return m ? `${SECRET_SCHEME}_${m[1]}` : undefined;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time check of `secret` against a stored hash (undefined: unknown key). */
export function secretMatches(secret: string, storedHash: Buffer | undefined): boolean {
  const actual = hashSecret(secret);
  const expected = storedHash && storedHash.length === actual.length ? storedHash : DUMMY_HASH;
  const equal = timingSafeEqual(actual, expected);
  return equal && expected !== DUMMY_HASH;
}
