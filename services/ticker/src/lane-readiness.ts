// Whether the readers of the TICKS stream take lane subjects yet. A
// price-cache from before lanes has durable consumers of `ticks.<n>` alone:
// it would step over lane messages, which would then never be applied. So a
// ticker publishes on lanes only once every durable consumer of a partition
// subject also takes that partition's lanes (a current price-cache updates its
// consumers in place at start), and on `ticks.<n>` until then. This is what
// lets both versions run side by side during a rolling upgrade.
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { consumerFilters, type Logger } from '@tickmesh/kit';
import { Periodic } from './periodic.js';

/** True when no durable consumer reads a partition's pre-lane subject without its lanes. */
export function consumersTakeLanes(consumers: readonly ConsumerInfo[]): boolean {
  for (const c of consumers) {
    if (!c.config.durable_name) continue;
    const filters = consumerFilters(c.config);
    for (const f of filters) {
      const m = /^ticks\.(\d+)$/.exec(f);
      if (m && !filters.includes(`ticks.${m[1]}.>`)) return false;
    }
  }
  return true;
}

export class LaneReadiness {
  private ready = false;
  private readonly checks: Periodic;

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly opts: { recheckMs: number; logger?: Logger },
  ) {
    this.checks = new Periodic(opts.recheckMs, async () => {
      await this.check();
      return this.ready;
    });
  }

  /** Lanes in use; false until the first check says the readers take them. */
  get enabled(): boolean {
    return this.ready;
  }

  /** Checks now, then every recheckMs until the readers take lanes. */
  start(): Promise<void> {
    return this.checks.start();
  }

  stop(): void {
    this.checks.stop();
  }

  private async check(): Promise<void> {
    try {
      const consumers = await this.jsm.consumers.list(this.stream).next();
      this.ready = consumersTakeLanes(consumers);
      if (this.ready) this.opts.logger?.info({ stream: this.stream }, 'publishing on lane subjects');
      else
        this.opts.logger?.warn(
          { stream: this.stream },
          'a consumer of the ticks stream does not take lane subjects yet (a price-cache before lanes): publishing on ticks.<partition> until it does',
        );
    } catch (err) {
      this.opts.logger?.warn(
        { err: String(err) },
        'cannot list the ticks stream consumers: checking again later',
      );
    }
  }
}
