// Tracks the cache epoch (tm:epoch). Its absence means Redis was emptied or
// replaced: writes stop (the apply script refuses) and one replica rebuilds.
// An epoch change (a rebuild finished, here or elsewhere) is announced to
// listeners: the mirror reloads and open streams get RESET + snapshot.
import type { Logger } from '@tickmesh/kit';
import type { EpochObserver } from './applier.js';

export interface RebuildRunner {
  /** Rebuilds if it can take the lock: the new epoch, or undefined when another replica holds it. */
  run(previousEpoch: string | undefined): Promise<string | undefined>;
}

export type EpochListener = (epoch: string, previous: string | undefined) => Promise<void> | void;

export class EpochTracker implements EpochObserver {
  private epoch: string | undefined;
  private missing = true;
  private rebuilding: Promise<void> | undefined;
  private readonly listeners: EpochListener[] = [];
  private notifying: Promise<void> = Promise.resolve();
  private waiters = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly opts: {
      getEpoch: () => Promise<string | null>;
      rebuilder: RebuildRunner;
      pollMs: number;
      logger: Logger;
    },
  ) {}

  /** The current epoch, or undefined while it is missing (not ready). */
  current(): string | undefined {
    return this.missing ? undefined : this.epoch;
  }

  get ready(): boolean {
    return !this.missing && this.epoch !== undefined;
  }

  get isRebuilding(): boolean {
    return this.rebuilding !== undefined;
  }

  onChange(listener: EpochListener): void {
    this.listeners.push(listener);
  }

  /** Feeds what Redis (or a notification) said about the epoch. */
  observe(epoch: string | null): void {
    if (this.stopped) return;
    if (epoch === null) {
      if (!this.missing)
        this.opts.logger.warn({ epoch: this.epoch }, 'cache epoch missing: Redis was emptied or replaced');
      this.missing = true;
      this.kickRebuild();
      return;
    }
    if (epoch === this.epoch) {
      if (this.missing) {
        this.missing = false;
        this.wake();
      }
      return;
    }
    const previous = this.epoch;
    this.epoch = epoch;
    this.missing = false;
    this.opts.logger.info({ epoch, previous }, 'cache epoch');
    // Listeners run one change at a time, in order.
    this.notifying = this.notifying.then(async () => {
      for (const l of this.listeners) {
        try {
          await l(epoch, previous);
        } catch (err) {
          this.opts.logger.error({ err }, 'epoch listener failed');
        }
      }
    });
    this.wake();
  }

  /** Checks Redis now (a quote of an unknown epoch arrived, or a reset notification). */
  checkNow(): void {
    this.opts
      .getEpoch()
      .then((e) => this.observe(e))
      .catch(() => undefined);
  }

  /** Resolves true once the epoch is known, false after timeoutMs. */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.ready);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  /** Polls the epoch every pollMs until stop(). */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.opts
        .getEpoch()
        .then((e) => this.observe(e))
        .catch(() => undefined) // Redis down: its health check says so; nothing to decide here.
        .finally(() => {
          if (!this.stopped) {
            this.timer = setTimeout(tick, this.opts.pollMs);
            this.timer.unref();
          }
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of [...this.waiters]) w();
    await this.rebuilding;
    await this.notifying;
  }

  /** Resolves when pending listener calls are done (tests). */
  settled(): Promise<void> {
    return this.notifying;
  }

  private kickRebuild(): void {
    if (this.rebuilding || this.stopped) return;
    const previous = this.epoch;
    this.rebuilding = this.opts.rebuilder
      .run(previous)
      .then((epoch) => {
        if (epoch !== undefined) this.observe(epoch);
      })
      .catch((err: unknown) => this.opts.logger.error({ err }, 'cache rebuild failed: will retry'))
      .finally(() => {
        this.rebuilding = undefined;
      });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
