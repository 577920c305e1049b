// A FIFO with O(1) push and bulk removal from the head, and a fixed capacity
// that the caller enforces (`full`): the queues of the ticker never grow past
// what the configuration allows.
export class BoundedDeque<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get full(): boolean {
    return this.length >= this.capacity;
  }

  /** Appends; false (and nothing added) when full. */
  push(item: T): boolean {
    if (this.full) return false;
    this.items.push(item);
    return true;
  }

  /** The i-th item from the head (0 = head), or undefined. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.length ? undefined : this.items[this.head + i];
  }

  /** Removes and returns the first n items. */
  shift(n: number): T[] {
    const count = Math.min(n, this.length);
    const out = this.items.slice(this.head, this.head + count);
    this.head += count;
    // Compact once the dead prefix dominates, so memory follows the live length.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    } else if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return out;
  }

  /** Removes and returns everything. */
  drain(): T[] {
    return this.shift(this.length);
  }
}
