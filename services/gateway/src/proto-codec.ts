// The binary encoding of tickmesh.v1 (subprotocol tickmesh.v1.proto, proto
// tickmesh/gateway/v1/websocket.proto). The gateway builds every server
// message once as JSON (protocol.ts); a connection that chose the binary
// encoding gets the same message as a protobuf ServerMessage, converted once
// per OutFrame and cached on it, so a fan-out frame shared by a group is
// converted once for all its binary members, never per recipient. Client
// messages are decoded here and then validated by the same rules as JSON ones.
import { ClientMessage, ServerMessage } from '../../common/src/gen/tickmesh/gateway/v1/websocket.js';
import type { Quote } from '../../common/src/gen/tickmesh/market/v1/market.js';
import type { OutFrame } from './fanout.js';
import { ErrorCode, validateClientMessage, type ParseResult } from './protocol.js';

type Json = Record<string, unknown>;

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s) => typeof s === 'string') : []);

/** A quote of the JSON protocol (quote-json.ts) as the market.v1 Quote it came from. */
function quoteOf(q: Json): Partial<Quote> {
  return {
    symbol: str(q.symbol),
    seq: num(q.seq),
    epoch: num(q.epoch),
    last: num(q.last),
    bid: num(q.bid),
    ask: num(q.ask),
    open: num(q.open),
    high: num(q.high),
    low: num(q.low),
    prevClose: num(q.prevClose),
    volume: num(q.volume),
    change: num(q.change),
    changePct: num(q.changePct),
    lastSize: num(q.lastSize),
    eventTimeMs: num(q.ts),
    conflated: q.conflated === true,
  };
}

const quotesOf = (v: unknown): Partial<Quote>[] => (Array.isArray(v) ? (v as Json[]).map(quoteOf) : []);

/** The ServerMessage of one JSON server message (protocol.ts), same content. Throws on an unknown type. */
export function serverMessageOf(m: Json): ServerMessage {
  switch (m.type) {
    case 'quotes':
      return ServerMessage.fromPartial({ quotes: { quotes: quotesOf(m.quotes) } });
    case 'snapshot':
      return ServerMessage.fromPartial({
        snapshot: { quotes: quotesOf(m.quotes), missing: strings(m.missing) },
      });
    case 'heartbeat':
      return ServerMessage.fromPartial({ heartbeat: { tsMs: num(m.ts) } });
    case 'pong':
      return ServerMessage.fromPartial({ pong: { id: str(m.id), tsMs: num(m.ts) } });
    case 'reply':
      return ServerMessage.fromPartial({
        reply: {
          op: str(m.op),
          id: str(m.id),
          subscriptions: strings(m.subscriptions),
          principal: str(m.principal),
        },
      });
    case 'error':
      return ServerMessage.fromPartial({
        error: { code: str(m.code), message: str(m.message), id: str(m.id) },
      });
    case 'resnapshot':
      return ServerMessage.fromPartial({ resnapshot: { reason: str(m.reason), epoch: num(m.epoch) } });
    case 'notice':
      return ServerMessage.fromPartial({
        notice: { code: str(m.code), message: str(m.message), tsMs: num(m.ts) },
      });
    case 'welcome': {
      const l = (m.limits ?? {}) as Json;
      return ServerMessage.fromPartial({
        welcome: {
          protocol: str(m.protocol),
          session: str(m.session),
          heartbeatMs: num(m.heartbeatMs),
          authRequired: m.authRequired === true,
          authTimeoutMs: num(m.authTimeoutMs),
          upstream: str(m.upstream),
          limits: {
            maxSubscriptions: num(l.maxSubscriptions),
            messagesPerSecond: num(l.messagesPerSecond),
            messagesBurst: num(l.messagesBurst),
            maxFrameBytes: num(l.maxFrameBytes),
          },
        },
      });
    }
    default:
      throw new Error(`no binary form for server message type ${JSON.stringify(m.type)}`);
  }
}

/** The frame as an encoded ServerMessage, converted on first use and cached on the frame. */
export function protoPayload(frame: OutFrame): Buffer {
  if (!frame.protoPayload) {
    const msg = serverMessageOf(JSON.parse(frame.payload.toString('utf8')) as Json);
    const bytes = ServerMessage.encode(msg).finish();
    frame.protoPayload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return frame.protoPayload;
}

/** Decodes and validates one binary client frame (same rules and error codes as JSON). */
export function parseBinaryClientMessage(data: Buffer): ParseResult {
  let m: ClientMessage;
  try {
    m = ClientMessage.decode(data);
  } catch {
    return {
      ok: false,
      error: { code: ErrorCode.badRequest, message: 'not a tickmesh.gateway.v1.ClientMessage' },
    };
  }
  const id = m.id === '' ? undefined : m.id;
  if (m.auth) return validateClientMessage({ id, op: 'auth', token: m.auth.token });
  if (m.subscribe) return validateClientMessage({ id, op: 'subscribe', symbols: m.subscribe.symbols });
  if (m.unsubscribe) return validateClientMessage({ id, op: 'unsubscribe', symbols: m.unsubscribe.symbols });
  if (m.ping) return validateClientMessage({ id, op: 'ping' });
  // No op set: an op of a newer protocol version (skipped as an unknown field), or none at all.
  const checked = validateClientMessage({ id, op: 'ping' }); // validates the id alone
  const error = { code: ErrorCode.unknownOp, message: 'op: none set, or one this server does not know' };
  return { ok: false, error: checked.ok && id !== undefined ? { ...error, id } : error };
}
