// Daily price bands: the limits a price must stay within on one trading day,
// from the instrument's band rule (the market file) and the day's reference
// price (the previous close). Borsa Istanbul's rule: reference ± percent,
// rounded inward onto the tick grid (upper limit down, lower limit up), so
// a limit is always a price that may trade and never lies outside the
// percentage. All arithmetic is on integers of minor units.
import type { Instrument, PriceBandRule } from '@tickmesh/kit';
import { fromUnits, toUnits } from '@tickmesh/kit';

export interface BandLimits {
  /** The reference (previous close) in minor units. */
  referenceUnits: number;
  lowerUnits: number;
  upperUnits: number;
}

/** Hundredths of a percent: the market file allows two decimals, so this is exact. */
const SCALE = 10_000n;

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return -floorDiv(-a, b);
}

/**
 * The limits around `referenceUnits` for an instrument with `tickUnits`.
 * The lower limit is at least one tick (prices are > 0).
 */
export function bandLimits(referenceUnits: number, tickUnits: number, rule: PriceBandRule): BandLimits {
  if (!Number.isSafeInteger(referenceUnits) || referenceUnits <= 0)
    throw new RangeError(`reference ${referenceUnits} must be a positive integer of minor units`);
  const bp = BigInt(Math.round(rule.percent * 100));
  const ref = BigInt(referenceUnits);
  const tick = BigInt(tickUnits);
  const upper = floorDiv(ref * (SCALE + bp), SCALE * tick) * tick;
  const lower = ceilDiv(ref * (SCALE - bp), SCALE * tick) * tick;
  return {
    referenceUnits,
    lowerUnits: Math.max(tickUnits, Number(lower)),
    upperUnits: Number(upper),
  };
}

/** The limits of `instrument` around a reference price, or undefined when it has no band. */
export function instrumentBand(instrument: Instrument, referencePrice: number): BandLimits | undefined {
  if (!instrument.priceBand) return undefined;
  const tick = instrument.tickUnits;
  // The base price is the reference rounded to the nearest tick (a no-op for prices the cache stores).
  const base = Math.max(tick, Math.round(toUnits(referencePrice, instrument.decimals) / tick) * tick);
  return bandLimits(base, tick, instrument.priceBand);
}

/** Why `price` is outside `limits` (for the rejection message), or undefined when inside. */
export function outsideBand(price: number, instrument: Instrument, limits: BandLimits): string | undefined {
  const units = toUnits(price, instrument.decimals);
  if (units >= limits.lowerUnits && units <= limits.upperUnits) return undefined;
  const d = instrument.decimals;
  return (
    `${fromUnits(units, d)} is outside today's price band ` +
    `[${fromUnits(limits.lowerUnits, d)}, ${fromUnits(limits.upperUnits, d)}] ` +
    `(previous close ${fromUnits(limits.referenceUnits, d)} ± ${instrument.priceBand?.percent}%)`
  );
}

/** Moves `units` inside the limits by reflecting off the edge it crossed (then clamping). */
export function reflectIntoBand(units: number, limits: BandLimits): number {
  const { lowerUnits: lo, upperUnits: hi } = limits;
  let u = units;
  if (u > hi) u = hi - (u - hi);
  else if (u < lo) u = lo + (lo - u);
  return Math.min(hi, Math.max(lo, u));
}
