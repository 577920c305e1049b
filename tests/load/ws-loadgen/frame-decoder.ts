// Decodes gateway frames once per worker. The clients of one worker receive
// the same frames: the gateway builds one frame per subscription group and
// writes the same bytes to every member (docs/gateway.md "Fan-out"). Parsing
// each copy again was half of the load generator's CPU (~14 of ~28 µs per
// 16-quote frame), on the machine that also runs the gateway, so a worker
// keeps the last few distinct frames and reuses a decode when the bytes
// match in full (compared, not hashed). Each client still goes through every
// quote of every frame it received (client-state.ts). Frames of the binary
// encoding (tickmesh.v1.proto) decode into the same shape.
import { ServerMessage } from '@tickmesh/kit/proto';
import { serverMessageBody } from '../../../services/gateway/src/proto-codec.js';
import type { Quote } from '@tickmesh/kit/proto';
import { SymbolSlots } from '../lib/delivery.js';

/** Symbol slots for the whole process: a decode resolves each symbol once for every client that reads the frame. */
export const symbolSlots = new SymbolSlots();

/** One quote as a load client needs it, checked once. */
export interface DecodedQuote {
  symbol: string;
  /** symbolSlots.slotOf(symbol). */
  slot: number;
  seq: number;
  epoch: number;
  /** Event time in µs since the epoch, 0 when absent. */
  tsUs: number;
  last: number;
  volume: number;
  conflated: boolean;
}

/** A frame as a load client needs it. Shared by all clients: never modified. */
export interface DecodedFrame {
  /** The message type; undefined when the frame is not a JSON object. */
  type: string | undefined;
  id?: unknown;
  code?: string;
  /** Valid quotes of a `quotes` or `snapshot` message, in order. */
  quotes: readonly DecodedQuote[];
  /** Quotes without a string symbol and numeric seq and epoch. */
  badQuotes: number;
  /**
   * The quotes' event times (µs), each with how many quotes have it, in
   * order of first appearance. Ticks of one batch share their event time, so
   * a client records a frame's delays with a handful of histogram calls
   * instead of one per quote (the same values, counted).
   */
  eventTimes: readonly { tsUs: number; count: number }[];
  /** Quotes marked conflated. */
  conflatedCount: number;
}

interface WireQuote {
  symbol?: unknown;
  seq?: unknown;
  epoch?: unknown;
  ts?: unknown;
  last?: unknown;
  volume?: unknown;
  conflated?: unknown;
}

const NO_QUOTES: readonly DecodedQuote[] = Object.freeze([]);
/** A frame without quotes yet (the decoders add them). */
const frameOf = (type: string | undefined, id?: unknown, code?: string): DecodedFrame => ({
  type,
  id,
  code,
  quotes: NO_QUOTES,
  badQuotes: 0,
  eventTimes: [],
  conflatedCount: 0,
});
const notAMessage = (): DecodedFrame => frameOf(undefined);

/** Parses one frame (no caching). */
export function decodeFrame(text: string): DecodedFrame {
  let msg: { type?: unknown; quotes?: unknown; id?: unknown; code?: unknown };
  try {
    msg = JSON.parse(text) as typeof msg;
  } catch {
    return notAMessage();
  }
  if (typeof msg !== 'object' || msg === null) return notAMessage();
  const out = frameOf(
    typeof msg.type === 'string' ? msg.type : undefined,
    msg.id,
    typeof msg.code === 'string' ? msg.code : undefined,
  );
  if ((out.type === 'quotes' || out.type === 'snapshot') && Array.isArray(msg.quotes)) {
    const quotes: DecodedQuote[] = [];
    for (const q of msg.quotes as WireQuote[]) {
      if (
        typeof q !== 'object' ||
        q === null ||
        typeof q.symbol !== 'string' ||
        typeof q.seq !== 'number' ||
        typeof q.epoch !== 'number'
      ) {
        out.badQuotes++;
        continue;
      }
      quotes.push({
        symbol: q.symbol,
        slot: symbolSlots.slotOf(q.symbol),
        seq: q.seq,
        epoch: q.epoch,
        tsUs: typeof q.ts === 'number' && q.ts > 0 ? q.ts * 1000 : 0,
        last: typeof q.last === 'number' ? q.last : NaN,
        volume: typeof q.volume === 'number' ? q.volume : NaN,
        conflated: q.conflated === true,
      });
    }
    out.quotes = quotes;
    groupEventTimes(out);
  }
  return out;
}

function groupEventTimes(out: DecodedFrame): void {
  const times = new Map<number, { tsUs: number; count: number }>();
  for (const q of out.quotes) {
    if (q.conflated) out.conflatedCount++;
    if (q.tsUs <= 0) continue;
    const t = times.get(q.tsUs);
    if (t) t.count++;
    else times.set(q.tsUs, { tsUs: q.tsUs, count: 1 });
  }
  out.eventTimes = [...times.values()];
}

/** Decodes one binary frame of tickmesh.v1.proto (a ServerMessage) into the same shape. */
export function decodeProtoFrame(data: Uint8Array): DecodedFrame {
  let m: ServerMessage;
  try {
    m = ServerMessage.decode(data);
  } catch {
    return notAMessage();
  }
  const one = serverMessageBody(m);
  if (!one) return notAMessage();
  const body = one.body as { id?: string; code?: string; quotes?: Quote[] };
  const out = frameOf(one.type, body.id, body.code);
  if (body.quotes) {
    out.quotes = body.quotes.map((q) => ({
      symbol: q.symbol,
      slot: symbolSlots.slotOf(q.symbol),
      seq: q.seq,
      epoch: q.epoch,
      tsUs: q.eventTimeMs > 0 ? q.eventTimeMs * 1000 : 0,
      last: q.last,
      volume: q.volume,
      conflated: q.conflated,
    }));
    groupEventTimes(out);
  }
  return out;
}

export class FrameDecoder {
  private readonly bytes: Buffer[] = [];
  private readonly frames: DecodedFrame[] = [];
  private next = 0;
  hits = 0;
  misses = 0;

  /** capacity: distinct frames remembered (clients of a worker read at different points of the stream). */
  constructor(private readonly capacity = 16) {}

  /** binary: a tickmesh.v1.proto frame (ServerMessage), else JSON text. */
  decode(data: Buffer, binary = false): DecodedFrame {
    const n = this.bytes.length;
    // Newest first: most clients are reading the frame the last one did.
    for (let k = 0, i = this.next - 1; k < n; k++, i--) {
      if (i < 0) i += n;
      const b = this.bytes[i]!;
      if (b.length === data.length && b.equals(data)) {
        this.hits++;
        return this.frames[i]!;
      }
    }
    this.misses++;
    const frame = binary ? decodeProtoFrame(data) : decodeFrame(data.toString());
    // A copy: ws may hand out a view of a larger read buffer.
    const copy = Buffer.from(data);
    if (n < this.capacity) {
      this.bytes.push(copy);
      this.frames.push(frame);
      this.next = n + 1 === this.capacity ? 0 : n + 1;
    } else {
      this.bytes[this.next] = copy;
      this.frames[this.next] = frame;
      this.next = (this.next + 1) % this.capacity;
    }
    return frame;
  }
}
