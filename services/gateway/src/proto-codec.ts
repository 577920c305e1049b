// The binary encoding of tickmesh.v1 (subprotocol tickmesh.v1.proto, proto
// tickmesh/gateway/v1/websocket.proto). A connection that chose it gets each
// server message as a protobuf ServerMessage, built once per OutFrame and
// cached on it, so a fan-out frame shared by a group is encoded once for all
// its binary members. Quotes and snapshots are spliced from quotes encoded
// once when they arrived (quote-mirror.ts), so even per-client frames
// (catch-ups, snapshots) encode nothing again; the other messages, rare and
// small, are converted from their JSON form. Every quotes/snapshot frame is
// built with its quotes (OutFrame.quotes/snapshot), so no quote is ever
// converted from JSON. Client messages are decoded here
// and then validated by the same rules as JSON ones.
import { ClientMessage, ServerMessage } from '@tickmesh/kit/proto';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { OutFrame, ProtoQuotes } from './fanout.js';
import { ErrorCode, parseMessageId, validateClientMessage, type ParseResult } from './protocol.js';

type Json = Record<string, unknown>;

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
/** For int64 fields: the 64-bit writers throw on a fraction. */
const int = (v: unknown): number => Math.trunc(num(v));
/** For uint64 fields: they also throw on a negative number. */
const uint = (v: unknown): number => Math.max(0, int(v));
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s) => typeof s === 'string') : []);

/**
 * The ServerMessage of one JSON server message (protocol.ts), same content.
 * Throws on a type without a binary form here: quotes and snapshots are never
 * converted, they are spliced from their quotes (OutFrame.quotes/snapshot).
 */
export function serverMessageOf(m: Json): ServerMessage {
  switch (m.type) {
    case 'heartbeat':
      return ServerMessage.fromPartial({ heartbeat: { tsMs: int(m.ts) } });
    case 'pong':
      return ServerMessage.fromPartial({ pong: { id: str(m.id), tsMs: int(m.ts) } });
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
      return ServerMessage.fromPartial({ resnapshot: { reason: str(m.reason), epoch: uint(m.epoch) } });
    case 'notice':
      return ServerMessage.fromPartial({
        notice: { code: str(m.code), message: str(m.message), tsMs: int(m.ts) },
      });
    case 'welcome': {
      const l = (m.limits ?? {}) as Json;
      return ServerMessage.fromPartial({
        welcome: {
          protocol: str(m.protocol),
          session: str(m.session),
          heartbeatMs: uint(m.heartbeatMs),
          authRequired: m.authRequired === true,
          authTimeoutMs: uint(m.authTimeoutMs),
          upstream: str(m.upstream),
          limits: {
            maxSubscriptions: uint(l.maxSubscriptions),
            messagesPerSecond: num(l.messagesPerSecond),
            messagesBurst: uint(l.messagesBurst),
            maxFrameBytes: uint(l.maxFrameBytes),
          },
        },
      });
    }
    default:
      throw new Error(`no binary form for server message type ${JSON.stringify(m.type)}`);
  }
}

/**
 * The frame as an encoded ServerMessage, converted on first use and cached on
 * the frame; undefined when it has no binary form (a bug: the failure is
 * cached too, so the frame's other binary recipients do not retry it).
 */
export function protoPayload(frame: OutFrame): Buffer | undefined {
  if (frame.protoPayload === undefined && !frame.protoFailed) {
    try {
      const bytes = frame.protoQuotes
        ? splicedQuotes(frame.protoQuotes)
        : ServerMessage.encode(serverMessageOf(JSON.parse(frame.payload.toString('utf8')) as Json)).finish();
      frame.protoPayload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch {
      frame.protoFailed = true;
    }
  }
  return frame.protoPayload;
}

/**
 * A quotes/snapshot ServerMessage from quotes encoded once (quote-mirror.ts):
 * each goes in as an embedded message, so nothing is encoded again. Field
 * numbers of websocket.proto: ServerMessage.snapshot 8 / quotes 9, their
 * repeated Quote 1, Snapshot.missing 2 (the tests compare with ts-proto).
 */
function splicedQuotes(p: ProtoQuotes): Uint8Array {
  const w = new BinaryWriter();
  w.uint32(p.kind === 'quotes' ? (9 << 3) | 2 : (8 << 3) | 2).fork();
  for (const q of p.quotes) w.uint32((1 << 3) | 2).bytes(q.proto);
  for (const s of p.missing) w.uint32((2 << 3) | 2).string(s);
  w.join();
  return w.finish();
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
  const ops = [m.auth, m.subscribe, m.unsubscribe, m.ping].filter((op) => op !== undefined).length;
  if (ops > 1) return refused(ErrorCode.badRequest, 'op: more than one set', id);
  if (m.auth) return validateClientMessage({ id, op: 'auth', token: m.auth.token });
  if (m.subscribe) return validateClientMessage({ id, op: 'subscribe', symbols: m.subscribe.symbols });
  if (m.unsubscribe) return validateClientMessage({ id, op: 'unsubscribe', symbols: m.unsubscribe.symbols });
  if (m.ping) return validateClientMessage({ id, op: 'ping' });
  // No op set: an op of a newer protocol version (skipped as an unknown field), or none at all.
  return refused(ErrorCode.unknownOp, 'op: none set, or one this server does not know', id);
}

/** A refusal of a message without exactly one op; it carries the id when that id is valid. */
function refused(code: ErrorCode, message: string, id: string | undefined): ParseResult {
  const parsed = parseMessageId(id);
  return {
    ok: false,
    error: parsed.ok && parsed.id !== undefined ? { code, message, id: parsed.id } : { code, message },
  };
}

/**
 * For clients (the watcher, tests, the load generator): an op in its JSON
 * shape as a binary ClientMessage, the inverse of parseBinaryClientMessage.
 * `symbols: "*"` becomes ["*"]; an op this protocol does not know sets none.
 */
export function clientMessageOf(op: {
  op: string;
  id?: string | number;
  symbols?: readonly string[] | '*';
  token?: string;
}): Uint8Array {
  const m: ClientMessage = { id: op.id === undefined ? '' : String(op.id) };
  const symbols = op.symbols === '*' ? ['*'] : [...(op.symbols ?? [])];
  if (op.op === 'auth') m.auth = { token: op.token ?? '' };
  else if (op.op === 'subscribe') m.subscribe = { symbols };
  else if (op.op === 'unsubscribe') m.unsubscribe = { symbols };
  else if (op.op === 'ping') m.ping = {};
  return ClientMessage.encode(m).finish();
}

/**
 * For clients: the one message a ServerMessage carries, as its JSON `type`
 * (the oneof field names are the JSON types) and its fields; undefined when
 * it carries none or several.
 */
export function serverMessageBody(
  m: ServerMessage,
): { type: string; body: Record<string, unknown> } | undefined {
  const set = Object.entries(m).filter(([, v]) => v !== undefined);
  if (set.length !== 1) return undefined;
  const [type, body] = set[0]!;
  return { type, body: body as Record<string, unknown> };
}
