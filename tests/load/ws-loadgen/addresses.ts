// Source addresses of the load clients: the gateway limits connections per
// IP (MAX_CONNECTIONS_PER_IP, 200 by default) and must keep that limit on
// during the benchmark, so clients are spread over 127.0.0.2, 127.0.0.3, ...
// with at most `maxPerIp` on each. Every 127.0.0.0/8 address reaches the
// loopback interface on Linux with no set-up.

export const FIRST_HOST = 2;
export const LAST_HOST = 254;

/** The source address of global client number `index` (0-based). */
export function sourceAddress(index: number, maxPerIp: number, firstHost = FIRST_HOST): string {
  if (!Number.isInteger(index) || index < 0) throw new Error(`bad client index ${index}`);
  if (!Number.isInteger(maxPerIp) || maxPerIp < 1) throw new Error(`bad maxPerIp ${maxPerIp}`);
  const host = firstHost + Math.floor(index / maxPerIp);
  // 127.0.0.x first; past .254, continue on 127.0.1.x, 127.0.2.x, ...
  const span = LAST_HOST - FIRST_HOST + 1;
  const offset = host - FIRST_HOST;
  const third = Math.floor(offset / span);
  if (third > 255) throw new Error(`too many clients for the loopback range at ${maxPerIp} per address`);
  return `127.0.${third}.${FIRST_HOST + (offset % span)}`;
}

/** Splits `clients` global indexes into `workers` contiguous shares (sizes differ by at most one). */
export function shares(clients: number, workers: number): Array<{ from: number; to: number }> {
  const n = Math.max(1, Math.min(workers, clients || 1));
  const out: Array<{ from: number; to: number }> = [];
  let from = 0;
  for (let w = 0; w < n; w++) {
    const size = Math.floor(clients / n) + (w < clients % n ? 1 : 0);
    out.push({ from, to: from + size });
    from += size;
  }
  return out;
}

/** How many distinct source addresses `clients` clients use. */
export function addressCount(clients: number, maxPerIp: number): number {
  return Math.ceil(clients / maxPerIp);
}
