// Reconnect delays: exponential backoff with full jitter (a uniform draw
// below the exponential cap), so many gateways that lost the same upstream
// do not reconnect in lockstep.
export function fullJitterDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}
