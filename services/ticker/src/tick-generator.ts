// The feed simulator's market: a seeded, fully deterministic sequence of
// trade ticks. Everything but the wall clock comes from the seed: which
// symbol ticks next, on a virtual schedule (milliseconds since start), its
// price, size, bid and ask. The runner maps the schedule onto real time and
// stamps event times.
//
// Price: a bounded random walk in integer minor units. Each step moves at
// most 1% of the current price, in whole ticks (rounded toward zero, so
// rounding never exceeds the bound), with a gentle pull back toward the
// reference price so a long run stays plausible; it never goes below one
// tick. (An instrument priced under 100 ticks cannot move a whole tick within
// 1%, so its price holds still; no real universe is that coarse.)
//
// Price band: an instrument with a band rule never leaves the day's band.
// confine() fits each tick into the band of the day it is sent on: on a
// symbol's first tick of a day the reference becomes its last price of the
// previous day (the market file's reference price on the first day, as the
// price-cache does), or the price-cache's reference when one is given
// (setReference); a step that would cross a limit is reflected back inside.
import type { Instrument } from '@tickmesh/kit';
import { fromUnits, toUnits } from '@tickmesh/kit';
import { instrumentBand, reflectIntoBand, type BandLimits } from './price-band.js';
import { mulberry32, randomInt, type Rng } from './rng.js';

/** Largest move of one step, as a fraction of the price. */
export const MAX_MOVE = 0.01;
/** Pull toward the reference price: at 10% away, the expected step is 0.1% back. */
const REVERSION = 0.01;
const MAX_LOTS = 1000;

export interface SimulatedTick {
  /** When the tick is due, in virtual ms since the start of the run. */
  dueMs: number;
  symbol: string;
  price: number;
  size: number;
  bid: number | undefined;
  ask: number | undefined;
}

export interface GeneratorOptions {
  instruments: Instrument[];
  seed: number;
  /** Interval mode: each symbol ticks again after a uniform random interval in [min, max] ms. */
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Rate mode (load): this many ticks per second in all, each on a random symbol. Overrides the intervals. */
  ticksPerSecond?: number;
}

interface SymbolState {
  instrument: Instrument;
  index: number;
  units: number;
  referenceUnits: number;
  dueMs: number;
  /** The day of the band in force, its limits, and the last price sent (the day's close so far). */
  bandDay: string | undefined;
  band: BandLimits | undefined;
  sentUnits: number | undefined;
}

export class TickGenerator {
  private readonly rng: Rng;
  private readonly states: SymbolState[];
  private readonly statesBySymbol: Map<string, SymbolState>;
  /** Interval mode: a binary min-heap of symbols by (dueMs, index). */
  private readonly heap: SymbolState[] = [];
  private count = 0;

  constructor(private readonly opts: GeneratorOptions) {
    if (opts.instruments.length === 0) throw new RangeError('no instruments to simulate');
    if (!(opts.minIntervalMs >= 1 && opts.maxIntervalMs >= opts.minIntervalMs)) {
      throw new RangeError('intervals must satisfy 1 <= min <= max');
    }
    this.rng = mulberry32(opts.seed);
    this.states = opts.instruments.map((instrument, index) => {
      const units = toUnits(instrument.referencePrice, instrument.decimals);
      return {
        instrument,
        index,
        units,
        referenceUnits: units,
        dueMs: 0,
        bandDay: undefined,
        band: undefined,
        sentUnits: undefined,
      };
    });
    this.statesBySymbol = new Map(this.states.map((st) => [st.instrument.symbol, st]));
    if (!this.rateMode) {
      // Stagger the first ticks over one interval so the symbols do not all start together.
      for (const s of this.states) {
        s.dueMs = Math.floor(this.rng() * opts.maxIntervalMs);
        this.heapPush(s);
      }
    }
  }

  private get rateMode(): boolean {
    return (this.opts.ticksPerSecond ?? 0) > 0;
  }

  /** The next tick of the run. */
  next(): SimulatedTick {
    let state: SymbolState;
    let dueMs: number;
    if (this.rateMode) {
      dueMs = (this.count * 1000) / this.opts.ticksPerSecond!;
      state = this.states[Math.floor(this.rng() * this.states.length)]!;
    } else {
      state = this.heapPop();
      dueMs = state.dueMs;
    }
    this.count++;
    const tick = this.step(state, dueMs);
    if (!this.rateMode) {
      state.dueMs += randomInt(this.rng, this.opts.minIntervalMs, this.opts.maxIntervalMs);
      this.heapPush(state);
    }
    return tick;
  }

  /**
   * Fits a tick into the price band of `day` (the trading day it is sent on)
   * and records it as sent. Ticks of instruments without a band pass as they are.
   */
  confine(tick: SimulatedTick, day: string): SimulatedTick {
    const s = this.bySymbol(tick.symbol);
    const { instrument } = s;
    if (!instrument.priceBand) return tick;
    if (s.bandDay === undefined || day > s.bandDay) {
      // A new day: its reference is the previous day's close (the file's price on the first day).
      const close =
        s.sentUnits === undefined ? instrument.referencePrice : fromUnits(s.sentUnits, instrument.decimals);
      s.bandDay = day;
      s.band = instrumentBand(instrument, close);
    }
    const band = s.band!;
    const { decimals } = instrument;
    const drawn = toUnits(tick.price, decimals);
    const units = reflectIntoBand(drawn, band);
    s.units = units;
    s.sentUnits = units;
    // Bid and ask keep their distance from the price; at a limit the side beyond it is pinned to the limit.
    const bid =
      tick.bid === undefined
        ? undefined
        : Math.max(band.lowerUnits, units - (drawn - toUnits(tick.bid, decimals)));
    const ask =
      tick.ask === undefined
        ? undefined
        : Math.min(band.upperUnits, units + (toUnits(tick.ask, decimals) - drawn));
    return {
      ...tick,
      price: fromUnits(units, decimals),
      bid: bid === undefined ? undefined : fromUnits(bid, decimals),
      ask: ask === undefined ? undefined : fromUnits(ask, decimals),
    };
  }

  /** Sets the band reference of `day` for a symbol (the price-cache's previous close). */
  setReference(symbol: string, day: string, referencePrice: number): void {
    const s = this.bySymbol(symbol);
    if (!s.instrument.priceBand) return;
    if (s.bandDay !== undefined && day < s.bandDay) return;
    s.bandDay = day;
    s.band = instrumentBand(s.instrument, referencePrice);
  }

  /** The band in force for a symbol (tests). */
  bandOf(symbol: string): { day: string; limits: BandLimits } | undefined {
    const s = this.bySymbol(symbol);
    return s.bandDay === undefined || !s.band ? undefined : { day: s.bandDay, limits: s.band };
  }

  private bySymbol(symbol: string): SymbolState {
    const s = this.statesBySymbol.get(symbol);
    if (!s) throw new RangeError(`${symbol} is not simulated`);
    return s;
  }

  /** Current price of every symbol (for logs and tests). */
  prices(): Map<string, number> {
    return new Map(this.states.map((s) => [s.instrument.symbol, fromUnits(s.units, s.instrument.decimals)]));
  }

  private step(s: SymbolState, dueMs: number): SimulatedTick {
    const { tickUnits, decimals } = s.instrument;
    const maxTicks = Math.floor((s.units * MAX_MOVE) / tickUnits);
    const pull = (-REVERSION * (s.units / s.referenceUnits - 1)) / MAX_MOVE;
    const x = Math.max(-1, Math.min(1, this.rng() * 2 - 1 + pull));
    const moveTicks = Math.trunc(x * maxTicks);
    s.units = Math.max(tickUnits, s.units + moveTicks * tickUnits);
    const size = Math.min(MAX_LOTS, Math.max(1, Math.floor(Math.exp(this.rng() * Math.log(MAX_LOTS + 1)))));
    const bidUnits = s.units - randomInt(this.rng, 1, 2) * tickUnits;
    const askUnits = s.units + randomInt(this.rng, 1, 2) * tickUnits;
    return {
      dueMs,
      symbol: s.instrument.symbol,
      price: fromUnits(s.units, decimals),
      size,
      bid: bidUnits > 0 ? fromUnits(bidUnits, decimals) : undefined,
      ask: fromUnits(askUnits, decimals),
    };
  }

  private before(a: SymbolState, b: SymbolState): boolean {
    return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.index < b.index);
  }

  private heapPush(s: SymbolState): void {
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private heapPop(): SymbolState {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
