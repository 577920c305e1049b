// Identifiers: UUIDv7 strings (RFC 9562), generated here rather than by the
// database. The 48-bit millisecond timestamp in front makes them sortable by
// creation time, so InnoDB appends to the primary key instead of splitting
// pages (as random UUIDv4 would), and ListCustomers pages on them (keyset).
// Unlike AUTO_INCREMENT they do not reveal how many customers exist, and no
// round trip is needed to learn the id of a new row (there is no RETURNING
// on MySQL). Within one process ids strictly increase: a 12-bit counter in
// rand_a orders ids minted in the same millisecond (RFC 9562, method 1).
import { randomFillSync } from 'node:crypto';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class IdGenerator {
  private lastMs = 0;
  private counter = 0;
  private readonly bytes = Buffer.alloc(16);

  constructor(private readonly clock: () => number = Date.now) {}

  next(): string {
    let ms = this.clock();
    if (ms <= this.lastMs) {
      // Same millisecond (or the clock stepped back): keep the last time and count.
      ms = this.lastMs;
      this.counter += 1;
      if (this.counter > 0xfff) {
        ms += 1;
        this.counter = 0;
      }
    } else {
      this.counter = 0;
    }
    this.lastMs = ms;
    const b = this.bytes;
    randomFillSync(b, 8, 8);
    b.writeUIntBE(ms, 0, 6);
    b[6] = 0x70 | (this.counter >> 8);
    b[7] = this.counter & 0xff;
    b[8] = 0x80 | (b[8]! & 0x3f);
    const hex = b.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

/** The canonical (lower-case) form of a UUID, or undefined when `value` is not one. */
export function canonicalId(value: string): string | undefined {
  if (value.length !== 36) return undefined;
  const lower = value.toLowerCase();
  return UUID_PATTERN.test(lower) ? lower : undefined;
}

/** The creation time encoded in a UUIDv7 (ms since the epoch). */
export function idTimeMs(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
