// Producers streaming ticks to the ticker through the project's producer client
// (services/ticker/src/producer-client.ts: cumulative acks, resend of everything
// unacknowledged after a break). Each keeps what it sent, so a test can check that every
// tick the ticker acknowledged as stored is in the stream.
import { setTimeout as sleep } from 'node:timers/promises';
import { ProducerClient } from '../../../services/ticker/src/producer-client.js';
import { fromUnits } from '@tickmesh/kit';
import type { Instrument } from '@tickmesh/kit';

export interface SentTick {
  symbol: string;
  price: number;
  size: number;
}

/** A deterministic PRNG (mulberry32), so a run can be repeated. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class ProducerLoad {
  readonly client: ProducerClient;
  /** sent[i] is the tick with producer_seq i + 1. */
  readonly sent: SentTick[] = [];
  readonly rejected = new Set<number>();
  private readonly units = new Map<string, number>();
  private readonly random: () => number;
  private running = false;
  private loop: Promise<void> | undefined;
  streamBreaks = 0;

  constructor(
    readonly producerId: string,
    target: string,
    private readonly instruments: Instrument[],
    private readonly ratePerSecond: number,
    seed: number,
  ) {
    this.random = rng(seed);
    this.client = new ProducerClient({
      target,
      producerId,
      windowTicks: 5000,
      maxTicksPerMessage: 200,
      reconnectMinMs: 100,
      reconnectMaxMs: 1000,
      onRejection: (r) => this.rejected.add(r.producerSeq),
      onStream: (event) => {
        if (event === 'broken') this.streamBreaks++;
      },
    });
    for (const i of instruments) this.units.set(i.symbol, Math.round(i.referencePrice * 10 ** i.decimals));
  }

  /** The next tick: a random instrument, its price one tick up or down (on the grid). */
  private nextTick(): SentTick {
    const i = this.instruments[Math.floor(this.random() * this.instruments.length)]!;
    const step = (Math.floor(this.random() * 3) - 1) * i.tickUnits;
    const units = Math.max(i.tickUnits, this.units.get(i.symbol)! + step);
    this.units.set(i.symbol, units);
    return {
      symbol: i.symbol,
      price: fromUnits(units, i.decimals),
      size: 1 + Math.floor(this.random() * 100),
    };
  }

  /** Sends at the configured rate until pause()/stop(); send() waits while the window is full. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      const perTick = 20; // ms
      const batch = Math.max(1, Math.round((this.ratePerSecond * perTick) / 1000));
      let next = Date.now();
      while (this.running) {
        for (let k = 0; k < batch && this.running; k++) {
          const tick = this.nextTick();
          const seq = this.sent.length + 1;
          this.sent.push(tick);
          await this.client.send({ ...tick, producerSeq: seq });
        }
        next += perTick;
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        else next = Date.now();
      }
    })();
  }

  /** Stops sending (the stream stays open) and waits until the loop is idle. */
  async pause(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Waits until every sent tick is acknowledged (stored or rejected). */
  flush(timeoutMs = 60_000): Promise<void> {
    return this.client.flush(timeoutMs);
  }

  get ackedThrough(): number {
    return this.client.ackedThrough;
  }

  /** producer_seqs acknowledged as stored (acked and not rejected). */
  *storedSeqs(): Generator<number> {
    const through = Math.min(this.client.ackedThrough, this.sent.length);
    for (let seq = 1; seq <= through; seq++) if (!this.rejected.has(seq)) yield seq;
  }

  async stop(): Promise<void> {
    await this.pause();
    await this.client.close();
  }
}
