// Waiting with a bound: polling a condition until it holds.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (the predicate is always tried at least once). */
  timeoutMs: number;
  /** Pause between two tries (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout message: "timed out after 500 ms waiting for <what>". */
  what?: string;
}

/** What ends a wait: any answer but false, undefined and null. */
export type Done<T> = Exclude<T, false | undefined | null>;

/**
 * Tries `predicate` every intervalMs until it answers something other than false, undefined
 * or null, and resolves with that answer. A predicate that throws counts as "not yet"; the
 * timeout error names the last thing it threw (also as its `cause`).
 */
export async function waitUntil<T>(predicate: () => T | Promise<T>, opts: WaitOptions): Promise<Done<T>> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const answer = await predicate();
      if (answer !== false && answer !== undefined && answer !== null) return answer as Done<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const last = lastError === undefined ? '' : `; last try: ${(lastError as Error).message ?? lastError}`;
      throw new Error(
        `timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? 'a condition'}${last}`,
        {
          cause: lastError,
        },
      );
    }
    await sleep(opts.intervalMs ?? 100);
  }
}
