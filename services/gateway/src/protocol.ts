// The WebSocket protocol tickmesh.v1 (docs/websocket-protocol.md): parsing and
// validation of client messages, and the server messages. Pure: no sockets.
// Every rejection carries a stable error code so clients can act on it.
import { symbolProblem } from '@tickmesh/kit';

export const PROTOCOL_VERSION = 'tickmesh.v1';
/** Sec-WebSocket-Protocol of the JSON encoding (also the default when none is offered). */
export const SUBPROTOCOL_JSON = 'tickmesh.v1.json';
/** Sec-WebSocket-Protocol of the binary encoding: protobuf messages of tickmesh/gateway/v1/websocket.proto. */
export const SUBPROTOCOL_PROTO = 'tickmesh.v1.proto';
export const SUPPORTED_SUBPROTOCOLS = [SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO] as const;
/** How a connection encodes its messages, chosen by its subprotocol. */
export type Encoding = 'json' | 'proto';

/** Stable error codes of `{"type":"error"}` messages. */
export const ErrorCode = {
  /** The message is not valid JSON or not a JSON object. */
  badJson: 'bad_json',
  /** A field is missing or has the wrong type (the message names it). */
  badRequest: 'bad_request',
  /** `op` is not one this protocol version knows. */
  unknownOp: 'unknown_op',
  /** A symbol does not match ^[A-Z0-9][A-Z0-9_-]{0,15}$. */
  badSymbol: 'bad_symbol',
  /** The subscription would exceed the per-connection limit. */
  tooManySymbols: 'too_many_symbols',
  /** Over the message rate limit: the message was ignored. */
  rateLimited: 'rate_limited',
  /** Authentication is required (or still in progress) before this op. */
  notAuthenticated: 'not_authenticated',
  /** The credentials were rejected: the connection closes with 4001. */
  authFailed: 'auth_failed',
  /** The credentials could not be checked now: the connection closes with 1013. */
  authUnavailable: 'auth_unavailable',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Close codes, with what a client should do (docs/websocket-protocol.md). */
export const CloseCode = {
  /** Server shutting down: reconnect (with jitter); another instance will answer. */
  goingAway: 1001,
  /** A client message exceeded the frame limit: fix the client; reconnecting is allowed. */
  messageTooBig: 1009,
  /** Unexpected server error: reconnect with backoff. */
  internalError: 1011,
  /** A dependency needed to accept the connection is down (auth service): reconnect later with backoff. */
  tryAgainLater: 1013,
  /** Authentication failed: do not reconnect with the same credentials. */
  authFailed: 4001,
  /** No `auth` op within the auth timeout: reconnect and authenticate first. */
  authTimeout: 4002,
  /** The credentials expired during the connection: reconnect with fresh ones. */
  credentialsExpired: 4003,
  /** The client could not keep up (stayed behind too long): reconnect, perhaps with fewer symbols. */
  tooSlow: 4008,
  /** Too many connections (per IP or in total): reconnect later with backoff. */
  tooManyConnections: 4009,
  /** Sustained message flood: reconnect after a backoff and send less. */
  flood: 4029,
} as const;

export type MessageId = number | string;

export type ClientOp =
  | { op: 'auth'; id?: MessageId; token: string }
  | { op: 'subscribe' | 'unsubscribe'; id?: MessageId; all: boolean; symbols: string[] }
  | { op: 'ping'; id?: MessageId };

export interface ProtocolError {
  code: ErrorCode;
  message: string;
  id?: MessageId;
}

export type ParseResult = { ok: true; value: ClientOp } | { ok: false; error: ProtocolError };

const MAX_TOKEN_CHARS = 8192;
const MAX_ID_CHARS = 64;
/** Longer symbol lists than this are refused before any work (the subscription limit decides the rest). */
export const MAX_SYMBOLS_PER_OP = 1000;

function fail(code: ErrorCode, message: string, id?: MessageId): ParseResult {
  return { ok: false, error: id === undefined ? { code, message } : { code, message, id } };
}

/** Parses one text frame. Unknown fields are ignored (forward compatibility). */
export function parseClientMessage(text: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail(ErrorCode.badJson, 'message is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail(ErrorCode.badJson, 'message must be a JSON object');
  }
  return validateClientMessage(json as Record<string, unknown>);
}

/** A message's `id`: absent, an integer or a short string; anything else is refused. */
export function parseMessageId(
  value: unknown,
): { ok: true; id: MessageId | undefined } | { ok: false; error: ProtocolError } {
  if (value === undefined || value === null) return { ok: true, id: undefined };
  if (
    (typeof value === 'number' && Number.isSafeInteger(value)) ||
    (typeof value === 'string' && value.length <= MAX_ID_CHARS)
  )
    return { ok: true, id: value };
  return {
    ok: false,
    error: {
      code: ErrorCode.badRequest,
      message: `id: must be an integer or a string of at most ${MAX_ID_CHARS} characters`,
    },
  };
}

/** Validates a decoded client message (from JSON, or from the binary encoding: proto-codec.ts). */
export function validateClientMessage(msg: Record<string, unknown>): ParseResult {
  const parsedId = parseMessageId(msg.id);
  if (!parsedId.ok) return parsedId;
  const id = parsedId.id;
  const withId = <T extends object>(value: T): T & { id?: MessageId } =>
    id === undefined ? value : { ...value, id };
  if (typeof msg.op !== 'string') return fail(ErrorCode.badRequest, 'op: required, a string', id);
  switch (msg.op) {
    case 'ping':
      return { ok: true, value: withId({ op: 'ping' as const }) };
    case 'auth': {
      if (typeof msg.token !== 'string' || msg.token.length === 0) {
        return fail(ErrorCode.badRequest, 'token: required, a non-empty string', id);
      }
      if (msg.token.length > MAX_TOKEN_CHARS) {
        return fail(ErrorCode.badRequest, `token: at most ${MAX_TOKEN_CHARS} characters`, id);
      }
      return { ok: true, value: withId({ op: 'auth' as const, token: msg.token }) };
    }
    case 'subscribe':
    case 'unsubscribe': {
      const parsed = parseSymbols(msg.symbols);
      if ('error' in parsed) return fail(parsed.error.code, parsed.error.message, id);
      return { ok: true, value: withId({ op: msg.op, all: parsed.all, symbols: parsed.symbols }) };
    }
    default:
      return fail(ErrorCode.unknownOp, `op: unknown op ${JSON.stringify(truncate(msg.op, 32))}`, id);
  }
}

/** `"*"`, or an array of symbols and/or `"*"`; duplicates removed, order kept. */
export function parseSymbols(
  value: unknown,
): { all: boolean; symbols: string[] } | { error: { code: ErrorCode; message: string } } {
  if (value === '*') return { all: true, symbols: [] };
  if (!Array.isArray(value)) {
    return {
      error: { code: ErrorCode.badRequest, message: 'symbols: required, an array of symbols or "*"' },
    };
  }
  if (value.length === 0)
    return { error: { code: ErrorCode.badRequest, message: 'symbols: must not be empty' } };
  if (value.length > MAX_SYMBOLS_PER_OP) {
    return {
      error: { code: ErrorCode.tooManySymbols, message: `symbols: at most ${MAX_SYMBOLS_PER_OP} in one op` },
    };
  }
  let all = false;
  const seen = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const s: unknown = value[i];
    if (s === '*') {
      all = true;
      continue;
    }
    const problem = symbolProblem(s);
    if (problem !== undefined) {
      const shown = typeof s === 'string' ? ` ${JSON.stringify(truncate(s, 32))}` : '';
      return { error: { code: ErrorCode.badSymbol, message: `symbols[${i}]${shown}: ${problem}` } };
    }
    seen.add(s as string);
  }
  return { all, symbols: [...seen] };
}

function truncate(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max)}...`;
}

// ---- server messages ----------------------------------------------------

export interface WelcomeInfo {
  session: string;
  heartbeatMs: number;
  authRequired: boolean;
  authTimeoutMs: number;
  upstream: 'up' | 'down';
  limits: {
    maxSubscriptions: number;
    messagesPerSecond: number;
    messagesBurst: number;
    maxFrameBytes: number;
  };
}

export function welcomeMessage(info: WelcomeInfo): string {
  return JSON.stringify({
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    session: info.session,
    heartbeatMs: info.heartbeatMs,
    authRequired: info.authRequired,
    authTimeoutMs: info.authRequired ? info.authTimeoutMs : undefined,
    upstream: info.upstream,
    limits: info.limits,
  });
}

export function replyMessage(
  op: string,
  id: MessageId | undefined,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({ type: 'reply', op, id, ...extra });
}

export function errorMessage(error: ProtocolError): string {
  return JSON.stringify({ type: 'error', code: error.code, message: error.message, id: error.id });
}

export function pongMessage(id: MessageId | undefined, nowMs: number): string {
  return JSON.stringify({ type: 'pong', id, ts: nowMs });
}

export function heartbeatMessage(nowMs: number): string {
  return `{"type":"heartbeat","ts":${nowMs}}`;
}

export type ResnapshotReason = 'epoch' | 'upstream';

/** Tells the client to discard its state: a `snapshot` of all its symbols follows at once. */
export function resnapshotMessage(reason: ResnapshotReason, epoch: number | undefined): string {
  return JSON.stringify({ type: 'resnapshot', reason, epoch });
}

/** The upstream feed broke: updates pause; a `resnapshot` follows when it is back. */
export function upstreamDownMessage(nowMs: number): string {
  return JSON.stringify({
    type: 'notice',
    code: 'upstream_down',
    message: 'price feed interrupted; a resnapshot follows when it is back',
    ts: nowMs,
  });
}

/** `{"type":"snapshot","quotes":[...],"missing":[...]}` from pre-serialized quotes. */
export function snapshotMessage(quoteJsons: readonly string[], missing: readonly string[]): string {
  return `{"type":"snapshot","quotes":[${quoteJsons.join(',')}],"missing":${JSON.stringify(missing)}}`;
}

/** `{"type":"quotes","quotes":[...]}` from pre-serialized quotes: built once per group, sent to many. */
export function quotesMessage(quoteJsons: readonly string[]): string {
  return `{"type":"quotes","quotes":[${quoteJsons.join(',')}]}`;
}
