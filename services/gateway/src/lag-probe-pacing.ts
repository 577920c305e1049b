// How often each client gets a read-lag probe. Every probe costs a pong for
// the gateway to read (a syscall and a parse) and, on loopback, for the client
// to write, so per-client probes make the cost grow with the clients: at 5,000
// clients probing every second was 5,000 pongs a second on a machine already
// saturated by the fan-out (docs/gateway.md "Backpressure and slow clients").
// A process-wide budget bounds it: past `maxPerSecond x minIntervalMs / 1000`
// clients each client's interval widens so that all of them together stay
// within budget.
// Detection of a client that stops reading slows with it (interval plus
// CLIENT_MAX_READ_LAG_MS), while the kernel buffers it hides behind hold
// minutes of its feed, and the backlog check still covers the user-space side.

/** The interval (ms) between read-lag probes to one client, given how many clients there are. */
export function lagProbeIntervalMs(minIntervalMs: number, clients: number, maxPerSecond: number): number {
  if (minIntervalMs <= 0) return 0; // probes with data frames are off
  if (maxPerSecond <= 0) return minIntervalMs; // no budget: the floor alone
  return Math.max(minIntervalMs, (1000 * clients) / maxPerSecond);
}
