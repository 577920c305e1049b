// Reads back everything a TICKS stream holds, for the tests and the benchmark:
// every stored message decoded to its ticks, with the partition it was on.
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Tick } from '@tickmesh/kit/proto';
import { decodeBatch, partitionOfSubject } from '@tickmesh/kit';

export interface StoredBatch {
  streamSeq: number;
  partition: number;
  msgId: string | undefined;
  ticks: Tick[];
}

export async function readStream(nc: NatsConnection, stream: string): Promise<StoredBatch[]> {
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  const info = await jsm.streams.info(stream);
  const out: StoredBatch[] = [];
  if (info.state.messages === 0) return out;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!m) continue; // deleted (limits) or never there
    out.push({
      streamSeq: m.seq,
      partition: partitionOfSubject(m.subject) ?? -1,
      msgId: m.header?.get('Nats-Msg-Id') || undefined,
      ticks: decodeBatch(m.data),
    });
  }
  return out;
}

/** Every stored tick of `producerId`, in stream order. */
export function ticksOf(batches: StoredBatch[], producerId: string): Tick[] {
  return batches.flatMap((b) => b.ticks.filter((t) => t.producerId === producerId));
}

/**
 * The ordering promise the price-cache relies on (ticks/contract.ts): in each
 * partition, a producer's stored seqs never go back to a seq that was not
 * stored before (repeats of stored ticks are fine, they are dropped). Returns
 * the first violation found, or undefined.
 */
export function orderViolation(batches: StoredBatch[]): string | undefined {
  const seen = new Map<string, { max: number; all: Set<number> }>();
  for (const b of batches) {
    for (const t of b.ticks) {
      const key = `${b.partition}/${t.producerId}`;
      let s = seen.get(key);
      if (!s) seen.set(key, (s = { max: 0, all: new Set() }));
      if (t.producerSeq <= s.max && !s.all.has(t.producerSeq)) {
        return `partition ${b.partition} producer ${t.producerId}: seq ${t.producerSeq} stored after ${s.max} without having been stored before`;
      }
      s.max = Math.max(s.max, t.producerSeq);
      s.all.add(t.producerSeq);
    }
  }
  return undefined;
}
