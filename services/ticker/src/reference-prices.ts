// Where the ticker (stateless, any number of replicas) gets each instrument's
// band reference, the previous close: from the price-cache's quote. The quote
// is a deterministic function of the TICKS stream, so every replica reads the
// same value; the trading day of the quote says which of its prices is the
// reference for today (market time zone, by this process's clock):
//
//   quote of today (or later)  -> its prev_close; final for that day
//   quote of an earlier day    -> its last (yesterday's close); provisional,
//                                 re-read after recheckMs (the previous day's
//                                 last ticks may still be on their way)
//   no quote (NOT_FOUND)       -> the market file's referencePrice; provisional
//
// Cached per symbol (bounded), one lookup in flight per symbol, a deadline on
// every lookup. A lookup that fails leaves a reference read earlier today in
// use; with none, the tick cannot be checked and the caller answers UNAVAILABLE.
import * as grpc from '@grpc/grpc-js';
import {
  UnavailableError,
  clientSecurity,
  createClient,
  localTime,
  type Instrument,
  type Logger,
  type Universe,
} from '@tickmesh/kit';
import { PriceServiceClient } from '@tickmesh/kit/proto';
import type { IngestConfig, SimulatorConfig } from './config.js';
import { instrumentBand, type BandLimits } from './price-band.js';

/** The fields of a price-cache quote the reference needs. */
export interface QuoteView {
  /** Trading day of the quote, YYYY-MM-DD in the market's time zone. */
  sessionDate: string;
  last: number;
  prevClose: number;
}

/** Reads one quote: undefined when the price-cache has none; throws when it cannot answer. */
export type QuoteLookup = (symbol: string, deadlineMs: number) => Promise<QuoteView | undefined>;

export interface ReferencePricesOptions {
  lookup: QuoteLookup;
  /** The market's time zone: the trading day of "now". */
  timeZone: string;
  /** Deadline of one lookup. */
  lookupTimeoutMs: number;
  /** How long a provisional reference (earlier-day quote, no quote) is used before it is read again. */
  recheckMs: number;
  /** Most symbols kept (the oldest read goes first). */
  maxEntries?: number;
  now?: () => number;
  logger?: Logger;
}

export type ReferenceSource = 'prev_close' | 'last' | 'reference_price';

export interface Reference {
  /** The trading day this reference is for. */
  day: string;
  price: number;
  source: ReferenceSource;
  /** Holds for the whole day (prev_close of a quote of that day). */
  final: boolean;
  readAtMs: number;
  limits: BandLimits;
}

const DEFAULT_MAX_ENTRIES = 16_384;

export class ReferencePrices {
  private readonly entries = new Map<string, Reference>();
  private readonly inflight = new Map<string, Promise<Reference>>();
  private readonly now: () => number;
  private dayMinute = -1;
  private day = '';
  private lastWarnMs = 0;

  constructor(private readonly opts: ReferencePricesOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Today's trading day by this process's clock (memoised per minute: zone offsets are whole minutes). */
  today(): string {
    const minute = Math.floor(this.now() / 60_000);
    if (minute !== this.dayMinute) {
      this.dayMinute = minute;
      this.day = localTime(minute * 60_000, this.opts.timeZone).date;
    }
    return this.day;
  }

  /**
   * Today's band of an instrument that has one: synchronous when a usable
   * reference is cached (the common path), otherwise after one lookup.
   * Rejects with UnavailableError when no reference for today can be had.
   */
  limits(instrument: Instrument): BandLimits | Promise<BandLimits> {
    const r = this.reference(instrument);
    return r instanceof Promise ? r.then((x) => x.limits) : r.limits;
  }

  /** Today's reference of an instrument that has a band (as limits(), with where it came from). */
  reference(instrument: Instrument): Reference | Promise<Reference> {
    const today = this.today();
    const cached = this.entries.get(instrument.symbol);
    if (cached && this.usable(cached, today)) return cached;
    return this.refresh(instrument, today);
  }

  /** The cached reference of a symbol (tests, logs). */
  peek(symbol: string): Reference | undefined {
    return this.entries.get(symbol);
  }

  private usable(r: Reference, today: string): boolean {
    if (r.final) return r.day >= today;
    return r.day === today && this.now() - r.readAtMs < this.opts.recheckMs;
  }

  private refresh(instrument: Instrument, today: string): Promise<Reference> {
    const symbol = instrument.symbol;
    let pending = this.inflight.get(symbol);
    if (!pending) {
      pending = this.read(instrument, today).finally(() => this.inflight.delete(symbol));
      this.inflight.set(symbol, pending);
    }
    return pending;
  }

  private async read(instrument: Instrument, today: string): Promise<Reference> {
    const symbol = instrument.symbol;
    let quote: QuoteView | undefined;
    try {
      quote = await this.opts.lookup(symbol, this.opts.lookupTimeoutMs);
    } catch (err) {
      // A reference read earlier today is still the best value there is: keep using it.
      const cached = this.entries.get(symbol);
      if (cached && cached.day >= today) return cached;
      this.warn(symbol, err);
      throw new UnavailableError(
        `the price band of ${symbol} cannot be checked: the price-cache did not answer (${errorText(err)}); retry later`,
      );
    }
    const r = this.referenceOf(instrument, quote, today);
    this.entries.delete(symbol);
    this.entries.set(symbol, r);
    if (this.entries.size > (this.opts.maxEntries ?? DEFAULT_MAX_ENTRIES)) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return r;
  }

  private referenceOf(instrument: Instrument, quote: QuoteView | undefined, today: string): Reference {
    const readAtMs = this.now();
    let day = today;
    let price = instrument.referencePrice;
    let source: ReferenceSource = 'reference_price';
    let final = false;
    if (quote && quote.sessionDate >= today && quote.prevClose > 0) {
      // The day has rolled in the price-cache: its previous close is fixed for the day.
      day = quote.sessionDate;
      price = quote.prevClose;
      source = 'prev_close';
      final = true;
    } else if (quote && quote.last > 0) {
      // Yesterday's close as far as applied so far: today's first tick will make it prev_close.
      price = quote.last;
      source = 'last';
    }
    const limits = instrumentBand(instrument, price);
    if (!limits) throw new Error(`${instrument.symbol} has no price band`);
    return { day, price, source, final, readAtMs, limits };
  }

  private warn(symbol: string, err: unknown): void {
    const now = this.now();
    if (now - this.lastWarnMs < 10_000) return;
    this.lastWarnMs = now;
    this.opts.logger?.warn(
      { symbol, err: errorText(err) },
      'price-cache lookup failed: ticks without a reference for today are refused with UNAVAILABLE',
    );
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** GetQuote through a PriceService client, with its deadline; NOT_FOUND is "no quote". */
export function priceServiceLookup(client: PriceServiceClient): QuoteLookup {
  return (symbol, deadlineMs) =>
    new Promise((resolve, reject) => {
      client.getQuote({ symbol }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) {
          if (err.code === grpc.status.NOT_FOUND) resolve(undefined);
          else reject(err);
          return;
        }
        const q = res.quote;
        resolve(q ? { sessionDate: q.sessionDate, last: q.last, prevClose: q.prevClose } : undefined);
      });
    });
}

/**
 * The reference source of a process from its configuration: undefined (with a
 * warning) when PRICE_CACHE_ADDRESS is empty or the market has no band rule.
 */
export function openReferencePrices(
  config: IngestConfig | SimulatorConfig,
  universe: Universe,
  subject: string,
  logger: Logger,
  /** What an empty PRICE_CACHE_ADDRESS means for this process (logged as a warning). */
  withoutPriceCache: string,
): { prices: ReferencePrices; close(): void } | undefined {
  if (!universe.instruments.some((i) => i.priceBand)) return undefined;
  if (config.PRICE_CACHE_ADDRESS === '') {
    logger.warn({ market: universe.market }, `PRICE_CACHE_ADDRESS is not set: ${withoutPriceCache}`);
    return undefined;
  }
  const client = createClient(PriceServiceClient, config.PRICE_CACHE_ADDRESS, {
    ...clientSecurity(config, subject),
    unaryDeadlineMs: config.GRPC_UNARY_DEADLINE_MS,
    reconnectBackoffMaxMs: config.GRPC_CLIENT_RECONNECT_MAX_MS,
    service: 'tickmesh.price.v1.PriceService',
    retryableMethods: ['GetQuote'],
  });
  const prices = new ReferencePrices({
    lookup: priceServiceLookup(client),
    timeZone: universe.session.timeZone,
    lookupTimeoutMs: config.GRPC_UNARY_DEADLINE_MS,
    recheckMs: config.PRICE_BAND_RECHECK_MS,
    logger,
  });
  logger.info(
    { priceCache: config.PRICE_CACHE_ADDRESS },
    'price bands on: previous closes from the price-cache',
  );
  return { prices, close: () => client.close() };
}
