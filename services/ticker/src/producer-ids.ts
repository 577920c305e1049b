// Producer ids and sequences: what makes a tick identifiable for dedupe.
//
// Sequences that the ticker (or a producer without its own counter) assigns
// are time-based: seq = max(last + 1, Date.now() * 1000). A restarted process
// therefore continues above everything it produced before (as long as it
// averaged fewer than 1000 ticks per millisecond and the clock did not jump
// back by more than the restart took), with no state on disk. 1000 * ms stays
// below 2^53 until the year 2255, so it is exact as a JavaScript number.

/** Producer ids end up in JetStream message ids (`<producer>/<partition>/...`): no `/`, no spaces. */
export const PRODUCER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

export function producerIdProblem(value: string): string | undefined {
  if (value.length === 0) return 'is required';
  if (value.length > 128) return 'must be at most 128 characters';
  if (!PRODUCER_ID_PATTERN.test(value)) return 'must match ^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$';
  return undefined;
}

/** Makes a valid producer id out of free text (a host name, a file name). */
export function toProducerId(raw: string): string {
  const cleaned = raw.replace(/[^A-Za-z0-9_.:@-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (cleaned || 'producer').slice(0, 128);
}

export class SeqAllocator {
  private last: number;

  constructor(
    private readonly now: () => number = Date.now,
    last = 0,
  ) {
    this.last = last;
  }

  next(): number {
    const seq = Math.max(this.last + 1, Math.floor(this.now()) * 1000);
    this.last = seq;
    return seq;
  }

  /** Makes the next sequence greater than `seq` (a producer that chose its own). */
  advancePast(seq: number): void {
    if (seq > this.last) this.last = seq;
  }

  get current(): number {
    return this.last;
  }
}
