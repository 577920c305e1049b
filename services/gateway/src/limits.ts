// Connection and message limits: a token bucket per connection (messages per
// second with a burst) and a counter of open connections per client IP.

export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    nowMs: number,
  ) {
    this.tokens = capacity;
    this.lastMs = nowMs;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  available(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }

  private refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed / 1000) * this.ratePerSecond);
  }
}

/** Open connections per key (client IP). Entries vanish at zero, so its size is bounded by the connections. */
export class ConnectionCounter {
  private readonly counts = new Map<string, number>();
  private totalCount = 0;

  constructor(
    private readonly maxPerKey: number,
    private readonly maxTotal: number,
  ) {}

  get total(): number {
    return this.totalCount;
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Counts a new connection, or says which limit refuses it. */
  tryAcquire(key: string): 'ok' | 'per-ip' | 'total' {
    if (this.totalCount >= this.maxTotal) return 'total';
    const n = this.counts.get(key) ?? 0;
    if (n >= this.maxPerKey) return 'per-ip';
    this.counts.set(key, n + 1);
    this.totalCount++;
    return 'ok';
  }

  release(key: string): void {
    const n = this.counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
    this.totalCount--;
  }
}

/**
 * The client's IP: the socket address, or with `trustedHops` proxies in front
 * the address that the outermost trusted proxy saw (the trustedHops-th entry
 * from the right of X-Forwarded-For). Anything further left is client-supplied
 * and never trusted.
 */
export function clientIp(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedHops: number,
): string {
  const direct = normalizeIp(socketAddress ?? 'unknown');
  if (trustedHops <= 0 || forwardedFor === undefined) return direct;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const hops = header
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  // Fewer entries than trusted proxies: the leftmost is the one the outermost proxy wrote.
  const candidate = hops[Math.max(0, hops.length - trustedHops)];
  if (candidate === undefined || candidate.length > 64 || !/^[0-9a-fA-F.:]+$/.test(candidate)) return direct;
  return normalizeIp(candidate);
}

function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
