// The JetStream contract between the ticker (writer) and the price-cache
// (reader). See docs/architecture.md "Ticks in JetStream".
//
//  - Stream TICKS (configurable), subjects `ticks.>`, file storage.
//  - Ticks are partitioned by a hash of the symbol (partition =
//    0..TICK_PARTITIONS-1); every tick of a symbol is in one partition. A
//    producer's ticks of one partition form a lane, published on the lane's
//    own subject `ticks.<partition>.<producer token>` with
//    Nats-Expected-Last-Subject-Sequence: JetStream itself refuses a batch
//    whose writer did not know the lane's last message, so the stored ticks
//    of a lane are in strictly increasing producer_seq whichever process or
//    call wrote them (services/ticker/src/lanes.ts). Writers older than lanes
//    publish on `ticks.<partition>`; readers take both (partitionSubjects).
//  - A message body is a protobuf `tickmesh.market.v1.TickBatch`: ticks of ONE
//    producer and ONE partition, in increasing producer_seq.
//  - Its JetStream message id (Nats-Msg-Id) is derived from the producer id,
//    the partition and the first and last producer_seq, so a retried publish
//    of the same batch is stored once within the duplicate window.
//  - The price-cache drops any tick whose producer_seq is <= the highest it
//    applied for that (symbol, producer): a resent tick is applied once
//    however it was re-batched. This is correct because the ticker publishes
//    each partition's batches strictly one after another and retries the
//    head batch until JetStream stores it, so the stored ticks of a producer
//    in a partition never skip one that a later resend would bring back.
import { TickBatch, type Tick } from '../gen/tickmesh/market/v1/market.js';

export const TICK_SUBJECT_PREFIX = 'ticks';
export const QUOTE_SUBJECT_PREFIX = 'quotes';
export const DEFAULT_TICK_PARTITIONS = 8;
/** TICKS stream metadata key holding the partition count: written by the ticker, checked by every service. */
export const PARTITIONS_METADATA_KEY = 'tickmesh.partitions';

/** FNV-1a 32-bit: stable across processes and languages. */
export function fnv1a(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function partitionOf(symbol: string, partitions: number): number {
  return fnv1a(symbol) % partitions;
}

export function tickSubject(partition: number): string {
  return `${TICK_SUBJECT_PREFIX}.${partition}`;
}

/**
 * A producer id as one subject token: `.` (a token separator) becomes `%2E`.
 * Injective, because producer ids never contain `%` (PRODUCER_ID_PATTERN).
 */
export function producerToken(producerId: string): string {
  return producerId.replaceAll('.', '%2E');
}

/** The subject of one producer's lane in one partition. */
export function laneSubject(partition: number, producerId: string): string {
  return `${TICK_SUBJECT_PREFIX}.${partition}.${producerToken(producerId)}`;
}

/** Every subject a partition's messages are on: lanes, and the subject writers before lanes used. */
export function partitionSubjects(partition: number): [string, string] {
  return [tickSubject(partition), `${TICK_SUBJECT_PREFIX}.${partition}.>`];
}

/** The subjects a JetStream consumer filters, whether set as filter_subject or filter_subjects. */
export function consumerFilters(c: { filter_subject?: string; filter_subjects?: string[] }): string[] {
  if (c.filter_subjects && c.filter_subjects.length > 0) return c.filter_subjects;
  return c.filter_subject ? [c.filter_subject] : [];
}

/** Parses `ticks.<n>` or `ticks.<n>.<producer token>` back to n, or undefined for any other subject. */
export function partitionOfSubject(subject: string): number | undefined {
  const m = /^ticks\.(\d+)(?:\.[^.*>\s]+)?$/.exec(subject);
  return m ? Number(m[1]) : undefined;
}

export function quoteSubject(symbol: string): string {
  return `${QUOTE_SUBJECT_PREFIX}.${symbol}`;
}

export function batchMessageId(
  producerId: string,
  partition: number,
  firstSeq: number,
  lastSeq: number,
): string {
  return `${producerId}/${partition}/${firstSeq}/${lastSeq}`;
}

export function encodeBatch(ticks: Tick[]): Uint8Array {
  return TickBatch.encode({ ticks }).finish();
}

export function decodeBatch(data: Uint8Array): Tick[] {
  return TickBatch.decode(data).ticks;
}
