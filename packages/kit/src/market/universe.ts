// A market's universe file: its instruments (symbol, name, reference price,
// tick size), its trading session and its daily price band rule. Validated
// when loaded.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { kitPath } from '../paths.js';
import { decimalsOf, isOnTick, toUnits } from './decimal.js';
import type { SessionSpec } from './session.js';
import { SYMBOL_PATTERN } from './symbols.js';

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM');

// Whole hundredths of a percent, so the limits are exact integer arithmetic.
const PriceBandFile = z.object({
  percent: z
    .number()
    .gt(0)
    .max(100)
    .refine((p) => Math.abs(p * 100 - Math.round(p * 100)) < 1e-9, 'must have at most two decimals'),
});

const UniverseFile = z.object({
  market: z.string().min(1),
  name: z.string().min(1),
  currency: z.string().min(1),
  session: z.object({
    timeZone: z.string().refine((tz) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, 'must be an IANA time zone'),
    open: hhmm,
    close: hhmm,
    days: z.array(z.number().int().min(1).max(7)).min(1),
  }),
  /** Daily price band of every instrument (absent: no band). */
  priceBand: PriceBandFile.optional(),
  instruments: z
    .array(
      z.object({
        symbol: z.string().regex(SYMBOL_PATTERN, 'must match ^[A-Z0-9][A-Z0-9_-]{0,15}$'),
        name: z.string().min(1),
        referencePrice: z.number().positive(),
        tickSize: z.number().positive(),
        /** Overrides the market's band for this instrument; null: no band. */
        priceBand: PriceBandFile.nullable().optional(),
      }),
    )
    .min(1),
});

/**
 * Daily price limits: the previous close ± `percent`, rounded inward onto the
 * tick grid (upper limit down, lower limit up), as Borsa Istanbul does.
 */
export interface PriceBandRule {
  percent: number;
}

export interface Instrument {
  symbol: string;
  name: string;
  referencePrice: number;
  tickSize: number;
  /** Decimals of the tick size: prices are integers of 10^-decimals. */
  decimals: number;
  /** The tick size in minor units. */
  tickUnits: number;
  /** The daily price band; undefined: none. */
  priceBand?: PriceBandRule;
}

export interface Universe {
  market: string;
  name: string;
  currency: string;
  session: SessionSpec;
  /** The market's band rule (instruments may override it); undefined: none. */
  priceBand?: PriceBandRule;
  instruments: Instrument[];
  bySymbol: Map<string, Instrument>;
}

/** Instruments outside the universe (open mode): four decimals, tick 0.0001, no price band. */
export function defaultInstrument(symbol: string, referencePrice = 0): Instrument {
  return { symbol, name: symbol, referencePrice, tickSize: 0.0001, decimals: 4, tickUnits: 1 };
}

export function parseUniverse(json: unknown, source = 'universe'): Universe {
  const parsed = UniverseFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const u = parsed.data;
  const bySymbol = new Map<string, Instrument>();
  const instruments = u.instruments.map((i) => {
    if (bySymbol.has(i.symbol)) throw new Error(`${source}: duplicate symbol ${i.symbol}`);
    const decimals = decimalsOf(i.tickSize);
    const tickUnits = toUnits(i.tickSize, decimals);
    if (!isOnTick(i.referencePrice, decimals, tickUnits)) {
      throw new Error(
        `${source}: ${i.symbol}: referencePrice ${i.referencePrice} is not on tick size ${i.tickSize}`,
      );
    }
    const band = i.priceBand === undefined ? u.priceBand : (i.priceBand ?? undefined);
    const instrument: Instrument = {
      symbol: i.symbol,
      name: i.name,
      referencePrice: i.referencePrice,
      tickSize: i.tickSize,
      decimals,
      tickUnits,
      ...(band ? { priceBand: { percent: band.percent } } : {}),
    };
    bySymbol.set(i.symbol, instrument);
    return instrument;
  });
  return {
    market: u.market,
    name: u.name,
    currency: u.currency,
    session: u.session,
    ...(u.priceBand ? { priceBand: { percent: u.priceBand.percent } } : {}),
    instruments,
    bySymbol,
  };
}

/** Loads `markets/<name>.json` from the kit package, or a file path. */
export function loadUniverse(nameOrPath: string): Universe {
  const path = nameOrPath.includes('/') ? nameOrPath : kitPath('markets', `${nameOrPath}.json`);
  return parseUniverse(JSON.parse(readFileSync(path, 'utf8')), path);
}
