// Request validation for PriceService: every problem is an InvalidArgumentError
// naming the field, raised before anything is read or changed.
import { InvalidArgumentError, symbolProblem } from '@tickmesh/kit';
import { BarInterval } from '@tickmesh/kit/proto';
import type {
  GetBarsRequest,
  GetQuoteRequest,
  ListQuotesRequest,
  StreamQuotesRequest,
} from '@tickmesh/kit/proto';
import type { Interval } from './state.js';

export const MAX_SYMBOLS = 1000;
export const DEFAULT_BARS = 100;
export const MAX_BARS = 1000;
export const MAX_UPDATES_PER_SECOND = 1000;

export function validSymbol(value: unknown, field = 'symbol'): string {
  const problem = symbolProblem(value);
  if (problem) throw new InvalidArgumentError(field, problem);
  return value as string;
}

/** Distinct symbols, each valid; `allowEmpty` for ListQuotes (empty lists everything). */
export function validSymbols(values: unknown, allowEmpty: boolean): string[] {
  if (!Array.isArray(values)) throw new InvalidArgumentError('symbols', 'must be a list');
  if (values.length > MAX_SYMBOLS)
    throw new InvalidArgumentError('symbols', `at most ${MAX_SYMBOLS} symbols`);
  if (!allowEmpty && values.length === 0)
    throw new InvalidArgumentError('symbols', 'give at least one symbol, or all = true');
  const out = new Set<string>();
  values.forEach((v, i) => out.add(validSymbol(v, `symbols[${i}]`)));
  return [...out];
}

export function validGetQuote(req: GetQuoteRequest): string {
  return validSymbol(req.symbol);
}

export function validListQuotes(req: ListQuotesRequest): string[] {
  return validSymbols(req.symbols, true);
}

export interface StreamRequest {
  symbols: Set<string> | 'all';
  minIntervalMs: number;
}

export function validStreamQuotes(req: StreamQuotesRequest): StreamRequest {
  if (req.all && req.symbols.length > 0)
    throw new InvalidArgumentError('symbols', 'must be empty when all = true');
  const symbols = req.all ? 'all' : new Set(validSymbols(req.symbols, false));
  const rate = req.maxUpdatesPerSecond;
  if (!Number.isInteger(rate) || rate < 0 || rate > MAX_UPDATES_PER_SECOND) {
    throw new InvalidArgumentError(
      'max_updates_per_second',
      `must be 0 (no cap) to ${MAX_UPDATES_PER_SECOND}`,
    );
  }
  return { symbols, minIntervalMs: rate > 0 ? 1000 / rate : 0 };
}

export interface BarsRequest {
  symbol: string;
  interval: Interval;
  from: number | '-inf';
  to: number | '+inf';
  limit: number;
}

export function validGetBars(req: GetBarsRequest): BarsRequest {
  const symbol = validSymbol(req.symbol);
  let interval: Interval;
  if (req.interval === BarInterval.BAR_INTERVAL_SECOND) interval = 's';
  else if (req.interval === BarInterval.BAR_INTERVAL_MINUTE) interval = 'm';
  else throw new InvalidArgumentError('interval', 'must be BAR_INTERVAL_SECOND or BAR_INTERVAL_MINUTE');
  for (const [field, v] of [
    ['start_time_ms', req.startTimeMs],
    ['end_time_ms', req.endTimeMs],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new InvalidArgumentError(field, 'must be a Unix time in ms (0: unbounded)');
  }
  if (req.startTimeMs > 0 && req.endTimeMs > 0 && req.endTimeMs < req.startTimeMs) {
    throw new InvalidArgumentError('end_time_ms', 'must not be before start_time_ms');
  }
  if (!Number.isInteger(req.limit) || req.limit < 0 || req.limit > MAX_BARS) {
    throw new InvalidArgumentError('limit', `must be 0 (default ${DEFAULT_BARS}) to ${MAX_BARS}`);
  }
  return {
    symbol,
    interval,
    from: req.startTimeMs > 0 ? req.startTimeMs : '-inf',
    to: req.endTimeMs > 0 ? req.endTimeMs : '+inf',
    limit: req.limit === 0 ? DEFAULT_BARS : req.limit,
  };
}
