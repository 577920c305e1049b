// ListCustomers page tokens: opaque to clients, a keyset cursor inside.
// The token is base64url(JSON) of {v: version, a: the last id returned,
// f: the normalized email filter it was issued for}. The next page is the
// rows with id > a, in id order: ids never change, so rows inserted or
// deleted between pages neither shift nor repeat the others (unlike OFFSET).
//
// Not signed: the cursor grants nothing (the same rows are listable from the
// first page, and every filter is applied again on each call), so an HMAC
// would only add a secret to distribute to every replica. Instead decoding is
// strict: anything that is not exactly a token this code produced (wrong
// alphabet, non-canonical base64, extra keys, another version, a malformed id,
// a filter differing from the request's) is INVALID_ARGUMENT page_token.
import { InvalidArgumentError } from '@tickmesh/kit';
import { canonicalId } from './ids.js';

const VERSION = 1;
const MAX_TOKEN_CHARS = 1024;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface PageCursor {
  /** Rows after this id. */
  afterId: string;
  /** The normalized email filter the listing uses ('' for none). */
  emailFilter: string;
}

export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(
    JSON.stringify({ v: VERSION, a: cursor.afterId, f: cursor.emailFilter }),
    'utf8',
  ).toString('base64url');
}

/** The cursor in `token`, checked against the request's filter; undefined for '' (first page). */
export function decodePageToken(token: string, emailFilter: string): PageCursor | undefined {
  if (token === '') return undefined;
  const bad = (reason = 'is not a token returned by ListCustomers') =>
    new InvalidArgumentError('page_token', reason);
  if (token.length > MAX_TOKEN_CHARS || !BASE64URL.test(token)) throw bad();
  const bytes = Buffer.from(token, 'base64url');
  // Node's decoder skips what it cannot read; a round trip proves the token is canonical.
  if (bytes.toString('base64url') !== token) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad();
  const { v, a, f, ...rest } = parsed as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || v !== VERSION || typeof a !== 'string' || typeof f !== 'string')
    throw bad();
  const afterId = canonicalId(a);
  if (afterId === undefined || afterId !== a) throw bad();
  if (f !== emailFilter) throw bad('was issued for a different email filter');
  return { afterId, emailFilter: f };
}
