// Validation of one incoming tick. A bad tick is answered with the field and
// a reason (INVALID_ARGUMENT for the unary call, a Rejection on the stream)
// and never reaches JetStream. A good tick comes back normalized: prices as
// the clean double of their decimal, a zero event time replaced by "now".
// The price band (bandProblem) comes after: it may need a price-cache lookup.
import type { Tick } from '@tickmesh/kit/proto';
import type { ReferencePrices } from './reference-prices.js';
import { outsideBand } from './price-band.js';
import {
  fromUnits,
  isOnTick,
  toUnits,
  symbolProblem,
  defaultInstrument,
  type Instrument,
  type Universe,
} from '@tickmesh/kit';

/** Every reason a tick can be rejected for: the `reason` label of tickmesh_ticks_rejected_total. */
export const REJECT_REASONS = [
  'malformed',
  'missing_tick',
  'symbol_invalid',
  'symbol_unknown',
  'price_invalid',
  'price_off_tick',
  'size_invalid',
  'bid_invalid',
  'ask_invalid',
  'bid_above_ask',
  'event_time_invalid',
  'event_time_future',
  'event_time_too_old',
  'producer_id_invalid',
  'producer_seq_invalid',
  'seq_not_increasing',
  'producer_changed',
  'price_outside_band',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * Upper bound of one valid tick inside an encoded TickBatch: symbol <= 16
 * and producer id <= 128 characters, varints <= 10 bytes, doubles 8, plus
 * tags and the repeated-field header. Lets batches be sized by count.
 */
export const MAX_ENCODED_TICK_BYTES = 3 + (2 + 16) + 9 + 11 + (2 + 128) + 11 + 11 + 9 + 9;

export interface TickProblem {
  /** The offending field, e.g. "tick.price". */
  field: string;
  reason: RejectReason;
  /** Human-readable explanation, e.g. "must be > 0". */
  message: string;
}

export interface ValidationRules {
  universe: Universe;
  /** Accept symbols outside the universe (with the default 0.0001 tick). */
  openMode: boolean;
  /** How far in the future an event time may be. */
  maxFutureMs: number;
  now?: () => number;
  /** Today's price bands (references from the price-cache); undefined: no band check. */
  priceBands?: ReferencePrices;
}

export type ValidationResult =
  { ok: true; tick: Tick; instrument: Instrument } | { ok: false; problem: TickProblem };

const problem = (field: string, reason: RejectReason, message: string): ValidationResult => ({
  ok: false,
  problem: { field: `tick.${field}`, reason, message },
});

/**
 * Checks the market fields of `tick` (symbol, prices, size, event time).
 * Producer id and sequence are the caller's business: their rules differ
 * between the unary call and the stream.
 */
export function validateTick(tick: Tick, rules: ValidationRules): ValidationResult {
  const symbolIssue = symbolProblem(tick.symbol);
  if (symbolIssue) return problem('symbol', 'symbol_invalid', symbolIssue);
  let instrument = rules.universe.bySymbol.get(tick.symbol);
  if (!instrument) {
    if (!rules.openMode) {
      return problem(
        'symbol',
        'symbol_unknown',
        `${tick.symbol} is not an instrument of market ${rules.universe.market}`,
      );
    }
    instrument = defaultInstrument(tick.symbol);
  }

  const price = priceProblem(tick.price, instrument, true);
  if (price)
    return problem('price', price.reason === 'off_tick' ? 'price_off_tick' : 'price_invalid', price.message);

  if (!Number.isSafeInteger(tick.size) || tick.size < 0)
    return problem('size', 'size_invalid', 'must be an integer >= 0');

  let bid: number | undefined;
  if (tick.bid !== undefined) {
    const p = priceProblem(tick.bid, instrument, false);
    if (p) return problem('bid', 'bid_invalid', p.message);
    bid = normalize(tick.bid, instrument);
  }
  let ask: number | undefined;
  if (tick.ask !== undefined) {
    const p = priceProblem(tick.ask, instrument, false);
    if (p) return problem('ask', 'ask_invalid', p.message);
    ask = normalize(tick.ask, instrument);
  }
  if (bid !== undefined && ask !== undefined && bid > ask) {
    return problem('bid', 'bid_above_ask', `bid ${bid} must be <= ask ${ask}`);
  }

  const now = (rules.now ?? Date.now)();
  let eventTimeMs = tick.eventTimeMs;
  if (!Number.isSafeInteger(eventTimeMs) || eventTimeMs < 0) {
    return problem('event_time_ms', 'event_time_invalid', 'must be Unix milliseconds >= 0 (0: now)');
  }
  if (eventTimeMs === 0) eventTimeMs = now;
  if (eventTimeMs > now + rules.maxFutureMs) {
    return problem(
      'event_time_ms',
      'event_time_future',
      `is more than ${rules.maxFutureMs} ms in the future`,
    );
  }

  return {
    ok: true,
    instrument,
    tick: {
      symbol: tick.symbol,
      price: normalize(tick.price, instrument),
      size: tick.size,
      producerId: tick.producerId,
      producerSeq: tick.producerSeq,
      eventTimeMs,
      bid,
      ask,
    },
  };
}

function priceProblem(
  value: number,
  instrument: Instrument,
  required: boolean,
): { reason: 'invalid' | 'off_tick'; message: string } | undefined {
  if (!Number.isFinite(value)) return { reason: 'invalid', message: 'must be a finite number' };
  if (value <= 0) return { reason: 'invalid', message: required ? 'must be > 0' : 'must be > 0 when set' };
  if (!Number.isSafeInteger(toUnits(value, instrument.decimals)))
    return { reason: 'invalid', message: 'is too large' };
  if (!isOnTick(value, instrument.decimals, instrument.tickUnits)) {
    return { reason: 'off_tick', message: `must be a multiple of the tick size ${instrument.tickSize}` };
  }
  return undefined;
}

/** The double nearest to the price's decimal, so it prints exactly (60.550000000001 -> 60.55). */
function normalize(value: number, instrument: Instrument): number {
  return fromUnits(toUnits(value, instrument.decimals), instrument.decimals);
}

/**
 * The daily price band of a validated tick: price, bid and ask must lie within
 * today's limits of its instrument. Synchronous when the instrument has no band
 * or its reference is cached; otherwise it waits for one price-cache lookup.
 * Rejects with UnavailableError when no reference for today can be had.
 */
export function bandProblem(
  tick: Tick,
  instrument: Instrument,
  rules: ValidationRules,
): TickProblem | undefined | Promise<TickProblem | undefined> {
  if (!rules.priceBands || !instrument.priceBand) return undefined;
  const limits = rules.priceBands.limits(instrument);
  if (limits instanceof Promise) return limits.then((l) => problemOutside(tick, instrument, l));
  return problemOutside(tick, instrument, limits);
}

function problemOutside(
  tick: Tick,
  instrument: Instrument,
  limits: Parameters<typeof outsideBand>[2],
): TickProblem | undefined {
  for (const field of ['price', 'bid', 'ask'] as const) {
    const value = tick[field];
    if (value === undefined) continue;
    const message = outsideBand(value, instrument, limits);
    if (message) return { field: `tick.${field}`, reason: 'price_outside_band', message };
  }
  return undefined;
}
