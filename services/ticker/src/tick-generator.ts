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
import type { Instrument } from '@tickmesh/kit';
import { fromUnits, toUnits } from '@tickmesh/kit';
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
}

export class TickGenerator {
  private readonly rng: Rng;
  private readonly states: SymbolState[];
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
      return { instrument, index, units, referenceUnits: units, dueMs: 0 };
    });
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
