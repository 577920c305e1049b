// The JetStream reads behind the lane check (lanes.ts): a lane's newest
// message, the first one at or after a stream seq, and the stream's horizon.
// Only a lane's first use and the rare seq at or below its last stored one
// read anything; the batches themselves need no extra round trip.
import {
  JetStreamApiError,
  type JetStreamManager,
  type MsgRequest,
  type StoredMsg,
} from '@nats-io/jetstream';
import { decodeBatch } from '@tickmesh/kit';
import type { Horizon, LaneReader, StoredMessage } from './lanes.js';

type MsgQuery = MsgRequest | { next_by_subj: string; seq: number };

/** JetStream's "no message found" (10037). */
const NO_MESSAGE_FOUND = 10037;

export function jetStreamLaneReader(jsm: JetStreamManager, stream: string): LaneReader {
  const get = async (query: MsgQuery) => {
    let m: StoredMsg | null;
    try {
      // STREAM.MSG.GET takes next_by_subj too (nats-server 2.10+); the client's type omits it.
      m = await jsm.streams.getMessage(stream, query as MsgRequest);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === NO_MESSAGE_FOUND) return undefined;
      throw err;
    }
    return m ? toStored(m) : undefined;
  };
  return {
    last: (subject) => get({ last_by_subj: subject }),
    atOrAfter: (subject, streamSeq) => get({ next_by_subj: subject, seq: streamSeq }),
    async horizon(): Promise<Horizon> {
      const { state } = await jsm.streams.info(stream);
      // first_seq 1: nothing was ever removed. An empty stream removed everything up to its last message.
      if (state.first_seq <= 1) return { firstSeq: 1, removedBeforeMs: 0 };
      const at = state.messages > 0 ? state.first_ts : state.last_ts;
      return { firstSeq: state.first_seq, removedBeforeMs: parseTime(at) };
    },
  };
}

function toStored(m: StoredMsg): StoredMessage {
  return { streamSeq: m.seq, ticks: decodeBatch(m.data) };
}

/** JetStream times carry nanoseconds; Date.parse wants at most milliseconds. */
export function parseTime(iso: string): number {
  const ms = Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(ms) ? ms : 0;
}
