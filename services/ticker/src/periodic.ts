// A check that runs now and then every interval, one run at a time (the next
// starts an interval after the previous one ended), until stopped or until
// it says it is done. It never keeps the process alive.
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    /** One run; resolves true when no further run is needed. Must not reject. */
    private readonly run: () => Promise<boolean | void>,
  ) {}

  /** Runs once now, then schedules the next runs. */
  async start(): Promise<void> {
    if ((await this.run()) !== true) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.run().then((done) => {
        if (done !== true) this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }
}
