// Request validation, pure: every function returns the clean value or throws
// InvalidArgumentError naming the field, so a bad request changes nothing.
import { InvalidArgumentError, symbolProblem } from '@tickmesh/kit';
import { canonicalId } from './ids.js';

export const NAME_MAX_CHARS = 100;
export const EMAIL_MAX_CHARS = 254;
export const EMAIL_LOCAL_MAX_CHARS = 64;
export const API_KEY_NAME_MAX_CHARS = 100;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

// Control characters (incl. NUL, CR, LF, TAB), lone surrogates and the line/paragraph
// separators: none belongs in a name, and each breaks logs, CSV exports or terminals.
const FORBIDDEN_IN_TEXT = /[\p{Cc}\p{Cs}\u2028\u2029]/u;

// A pragmatic address: RFC 5322 dot-atom local part (no quoted strings, no comments),
// a DNS host name with at least two labels and an alphabetic top-level label. ASCII
// only: internationalised addresses (RFC 6531) are not accepted yet.
const EMAIL_PATTERN =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

/** Length in code points: what a MySQL VARCHAR(n) counts (JS .length counts UTF-16 units). */
export function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n += 1;
  return n;
}

/** A text field of 1..max code points after trimming, without control characters. Returns it trimmed. */
export function requireText(
  field: string,
  value: string,
  max: number,
  opts: { optional?: boolean } = {},
): string {
  const trimmed = value.trim();
  if (trimmed.length === 0) {
    if (opts.optional) return '';
    throw new InvalidArgumentError(field, 'is required');
  }
  if (charLength(trimmed) > max) throw new InvalidArgumentError(field, `must be at most ${max} characters`);
  if (FORBIDDEN_IN_TEXT.test(trimmed))
    throw new InvalidArgumentError(field, 'must not contain control characters');
  return trimmed;
}

export function requireName(field: string, value: string): string {
  return requireText(field, value, NAME_MAX_CHARS);
}

export interface Email {
  /** As given (trimmed): what the customer sees. */
  display: string;
  /** Lower-cased: the unique key, so addresses differing only in case clash. */
  normalized: string;
}

export function requireEmail(field: string, value: string): Email {
  const display = value.trim();
  if (display.length === 0) throw new InvalidArgumentError(field, 'is required');
  if (display.length > EMAIL_MAX_CHARS)
    throw new InvalidArgumentError(field, `must be at most ${EMAIL_MAX_CHARS} characters`);
  if (!EMAIL_PATTERN.test(display))
    throw new InvalidArgumentError(field, 'must be an email address like name@example.com');
  if (display.indexOf('@') > EMAIL_LOCAL_MAX_CHARS) {
    throw new InvalidArgumentError(
      field,
      `the part before @ must be at most ${EMAIL_LOCAL_MAX_CHARS} characters`,
    );
  }
  return { display, normalized: display.toLowerCase() };
}

/** A customer or key id: a UUID (any case), returned in canonical lower case. */
export function requireId(field: string, value: string): string {
  if (value.length === 0) throw new InvalidArgumentError(field, 'is required');
  const id = canonicalId(value.trim());
  if (!id) throw new InvalidArgumentError(field, 'must be a UUID like 0193a5e2-7c1f-7a3b-9d2e-4f5a6b7c8d9e');
  return id;
}

/** page_size 0 means the default; larger than the maximum is lowered to it (AIP-158). */
export function pageSize(value: number): number {
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError('page_size', 'must be a non-negative integer');
  if (value === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(value, MAX_PAGE_SIZE);
}

export type CustomerField = 'first_name' | 'last_name' | 'email';
const ALL_FIELDS: readonly CustomerField[] = ['first_name', 'last_name', 'email'];
const MASK_PATHS: Record<string, CustomerField> = {
  first_name: 'first_name',
  firstName: 'first_name',
  last_name: 'last_name',
  lastName: 'last_name',
  email: 'email',
};

/** The fields an UpdateCustomer mask selects; an absent or empty mask selects every field. */
export function updateMaskFields(paths: string[] | undefined): Set<CustomerField> {
  if (!paths || paths.length === 0) return new Set(ALL_FIELDS);
  const out = new Set<CustomerField>();
  for (const path of paths) {
    const field = Object.hasOwn(MASK_PATHS, path) ? MASK_PATHS[path] : undefined;
    if (!field) {
      const shown = path.length > 40 ? `${path.slice(0, 40)}...` : path;
      throw new InvalidArgumentError(
        'update_mask',
        `unknown path ${JSON.stringify(shown)} (allowed: ${ALL_FIELDS.join(', ')})`,
      );
    }
    out.add(field);
  }
  return out;
}

/**
 * A watchlist: at most `max` symbols as sent, each a valid symbol (the error
 * names its index, e.g. symbols[3]); duplicates dropped, first occurrence kept.
 */
export function requireWatchlist(symbols: string[], max: number): string[] {
  if (symbols.length > max) throw new InvalidArgumentError('symbols', `at most ${max} symbols`);
  const seen = new Set<string>();
  const out: string[] = [];
  symbols.forEach((symbol, i) => {
    const problem = symbolProblem(symbol);
    if (problem) throw new InvalidArgumentError(`symbols[${i}]`, problem);
    if (!seen.has(symbol)) {
      seen.add(symbol);
      out.push(symbol);
    }
  });
  return out;
}
