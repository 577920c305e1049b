// Symbol format (docs/contracts.md). No '.', which separates NATS
// subject tokens; a market whose symbols contain dots maps them to '_'.
export const SYMBOL_PATTERN = /^[A-Z0-9][A-Z0-9_-]{0,15}$/;

export function isValidSymbol(value: unknown): value is string {
  return typeof value === 'string' && SYMBOL_PATTERN.test(value);
}

/** Maps an exchange symbol with dots (e.g. "BRK.B") to tickmesh form ("BRK_B"). */
export function mapExchangeSymbol(raw: string): string {
  return raw.trim().toUpperCase().replace(/\./g, '_');
}

/** Explains why `value` is not a symbol, or returns undefined when it is one. */
export function symbolProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'is required';
  if (value.length > 16) return 'must be at most 16 characters';
  if (!SYMBOL_PATTERN.test(value)) return 'must match ^[A-Z0-9][A-Z0-9_-]{0,15}$';
  return undefined;
}
