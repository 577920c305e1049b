// The adaptive batching window of the fan-out (docs/gateway.md "Batching").
//
// Rule: the next fan-out pass starts no earlier than `window` after the
// previous one ended, where window = factor x (moving average of recent pass
// costs), capped at maxWindowMs. A pass's cost is the CPU time the process
// spent handing the frames of all clients to their sockets (never more than
// its wall time), so it grows with clients and update rate. CPU time, not wall
// time: on a busy machine a pass that is preempted halfway lasts longer
// without costing more, and a wall-clock window would then make the gateway
// idle for time it never used, falling further behind the more the machine
// is shared. Consequences:
//  - idle or light load: passes take microseconds, the window is ~0 and an
//    update goes out on the next turn of the event loop;
//  - heavy load: each client's frame carries all updates that arrived since
//    its previous frame, so frames per client per second fall as load rises.
//    With factor 0 that is the whole batching: the next pass starts when the
//    previous one ended, and the interval between a client's frames is the
//    fan-out time itself (the default). A factor f > 0 adds f x that time of idling,
//    capping fan-out at ~1/(1+f) of a core and so leaving the rest to
//    handshakes, client messages and whatever shares the machine, for larger
//    frames and more latency;
//  - the cap bounds the latency the window itself adds.
export class FlushPacer {
  private avgMs = 0;
  private lastEndMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly opts: {
      factor: number;
      maxWindowMs: number;
      /** Weight of the newest flush in the moving average. */
      smoothing?: number;
    },
  ) {}

  /**
   * Records a pass that ended at endMs (monotonic clock) after wallMs of its
   * own (not counting the turns it yielded), using cpuMs of CPU time (the
   * wall time when not given).
   */
  record(endMs: number, wallMs: number, cpuMs?: number): void {
    const wall = Math.max(0, wallMs);
    const took = cpuMs === undefined ? wall : Math.min(wall, Math.max(0, cpuMs));
    const a = this.opts.smoothing ?? 0.3;
    this.avgMs = this.avgMs === 0 ? took : a * took + (1 - a) * this.avgMs;
    this.lastEndMs = endMs;
  }

  /** Current window in ms. */
  get windowMs(): number {
    return Math.min(this.opts.maxWindowMs, this.opts.factor * this.avgMs);
  }

  /** How long to wait before flushing updates that are pending at `nowMs`. */
  delayMs(nowMs: number): number {
    return Math.max(0, this.lastEndMs + this.windowMs - nowMs);
  }
}
