// Runs a TickGenerator in real time: each tick is sent when its virtual due
// time comes, stamped with the clock and the simulator's producer identity,
// and handed to the TickPublisher. When the publisher pushes back (NATS slow
// or down) the simulator waits; afterwards it shifts its schedule instead of
// bursting out the backlog. With a session given, it ticks only while the
// market is open. Every tick is fitted into its instrument's price band of
// the day it is sent on; with a price-cache given, the band's reference is
// the price-cache's (the same one the ingest API checks against).
import { setTimeout as delay } from 'node:timers/promises';
import type { Tick } from '@tickmesh/kit/proto';
import type { Logger } from '@tickmesh/kit';
import { isSessionOpen, localTime, type Instrument, type SessionSpec } from '@tickmesh/kit';
import type { Reference, ReferencePrices } from './reference-prices.js';
import type { SeqAllocator } from './producer-ids.js';
import type { SimulatedTick, TickGenerator } from './tick-generator.js';
import type { TickPublisher } from './tick-publisher.js';

export interface FeedSimulatorOptions {
  generator: TickGenerator;
  publisher: Pick<TickPublisher, 'trySubmit' | 'waitForSpace'>;
  producerId: string;
  seq: SeqAllocator;
  /** Tick only while this session is open; omit to ignore the clock (always open). */
  session?: SessionSpec;
  /** Largest lag behind the schedule that is caught up by sending faster; beyond it the schedule shifts. */
  maxCatchUpMs?: number;
  now?: () => number;
  logger?: Logger;
  /** The market's time zone: ticks are fitted into the price band of their trading day. */
  timeZone?: string;
  /** Instruments by symbol, for price-cache lookups. */
  instruments?: Map<string, Instrument>;
  /** The price-cache's band references; without them the simulator runs its own (its previous close). */
  references?: ReferencePrices;
}

export class FeedSimulator {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private sent = 0;
  private dayMinute = -1;
  private day = '';
  private lastWarnMs = 0;

  constructor(private readonly opts: FeedSimulatorOptions) {}

  /** Ticks handed to the publisher so far. */
  get produced(): number {
    return this.sent;
  }

  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      if (!this.stopping.signal.aborted) this.opts.logger?.error({ err }, 'simulator stopped unexpectedly');
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { generator, publisher, producerId, seq, session } = this.opts;
    const now = this.opts.now ?? Date.now;
    const maxCatchUpMs = this.opts.maxCatchUpMs ?? 1000;
    const signal = this.stopping.signal;
    let next = generator.next();
    let start = now() - next.dueMs;
    let closedLogged = false;
    while (!signal.aborted) {
      if (session && !isSessionOpen(now(), session)) {
        if (!closedLogged) this.opts.logger?.info('market session closed: simulator paused');
        closedLogged = true;
        await delay(1000, undefined, { signal }).catch(() => undefined);
        start = now() - next.dueMs; // resume where we stopped, not with a burst
        continue;
      }
      if (closedLogged) this.opts.logger?.info('market session open: simulator running');
      closedLogged = false;

      let burst = 0;
      while (!signal.aborted && next.dueMs <= now() - start) {
        const lag = now() - start - next.dueMs;
        if (lag > maxCatchUpMs) start += lag;
        const fitted = this.opts.timeZone ? this.fit(next, now()) : next;
        const tick: Tick = {
          symbol: fitted.symbol,
          price: fitted.price,
          size: fitted.size,
          bid: fitted.bid,
          ask: fitted.ask,
          producerId,
          producerSeq: 0,
          eventTimeMs: 0,
        };
        // Sequence and time are taken when the tick goes into its queue, so the queue stays in seq order.
        for (;;) {
          tick.producerSeq = seq.next();
          tick.eventTimeMs = now();
          if (publisher.trySubmit(tick)) break;
          await publisher.waitForSpace(tick.symbol, signal);
        }
        this.sent++;
        next = generator.next();
        // Yield now and then at high rates so timers and I/O keep running.
        if (++burst % 1000 === 0) await new Promise((r) => setImmediate(r));
      }
      const wait = next.dueMs - (now() - start);
      if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
    }
  }

  /** Fits a tick into the band of today, after taking the price-cache's reference when there is one. */
  private fit(t: SimulatedTick, nowMs: number): SimulatedTick {
    const minute = Math.floor(nowMs / 60_000);
    if (minute !== this.dayMinute) {
      this.dayMinute = minute;
      this.day = localTime(minute * 60_000, this.opts.timeZone!).date;
    }
    const { references, instruments, generator } = this.opts;
    const instrument = instruments?.get(t.symbol);
    if (references && instrument?.priceBand) {
      const apply = (r: Reference) => generator.setReference(t.symbol, r.day, r.price);
      const r = references.reference(instrument);
      if (r instanceof Promise) {
        // Not blocking the feed: until the answer comes, the simulator's own reference holds.
        r.then(apply, (err: unknown) => this.warn(err));
      } else apply(r);
    }
    return generator.confine(t, this.day);
  }

  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarnMs < 10_000) return;
    this.lastWarnMs = now;
    this.opts.logger?.warn(
      { err: String(err) },
      'price-cache reference unavailable: the simulator keeps its own',
    );
  }
}
