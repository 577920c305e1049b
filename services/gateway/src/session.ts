// One WebSocket connection speaking tickmesh.v1: authentication, the rate
// limit, and the ops (auth, subscribe, unsubscribe, ping). Every bad input is
// answered with an error code and changes nothing; only authentication
// failures, floods and limits close the connection, each with its own code.
import type { Logger } from '@tickmesh/kit';
import type { Authenticator } from './auth.js';
import { Fanout, OutFrame, type ClientTransport, type FanoutClient } from './fanout.js';
import { TokenBucket } from './limits.js';
import {
  CloseCode,
  ErrorCode,
  errorMessage,
  parseClientMessage,
  pongMessage,
  replyMessage,
  upstreamDownMessage,
  welcomeMessage,
  type ClientOp,
  type Encoding,
  type MessageId,
  type ProtocolError,
} from './protocol.js';
import { parseBinaryClientMessage } from './proto-codec.js';

export interface SessionLimits {
  maxSubscriptions: number;
  messagesPerSecond: number;
  messagesBurst: number;
  /** Rate-limited messages tolerated (refilled at 1/s) before close 4029. */
  floodTolerance: number;
  authTimeoutMs: number;
  maxFrameBytes: number;
  heartbeatMs: number;
}

export interface SessionMetrics {
  clientMessage(): void;
  clientError(code: string): void;
  authResult(result: 'ok' | 'rejected' | 'unavailable'): void;
}

export interface SessionDeps {
  fanout: Fanout;
  authenticator: Authenticator;
  limits: SessionLimits;
  logger: Logger;
  upstreamLive: () => boolean;
  metrics?: SessionMetrics;
  now?: () => number;
  /** The connection's encoding (its subprotocol); json when not given. */
  encoding?: Encoding;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export class Session {
  readonly client: FanoutClient;
  private authenticated: boolean;
  private authInFlight = false;
  private closed = false;
  private principal = 'anonymous';
  private authTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly bucket: TokenBucket;
  private readonly floodBucket: TokenBucket;
  private readonly now: () => number;

  constructor(
    readonly id: string,
    private readonly transport: ClientTransport,
    private readonly deps: SessionDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.client = deps.fanout.addClient(transport);
    this.authenticated = !deps.authenticator.required;
    const l = deps.limits;
    this.bucket = new TokenBucket(l.messagesPerSecond, l.messagesBurst, this.now());
    this.floodBucket = new TokenBucket(1, l.floodTolerance, this.now());
  }

  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  get who(): string {
    return this.principal;
  }

  /** Sends the welcome and, when auth is required, starts the auth timer. */
  start(): void {
    const l = this.deps.limits;
    this.send(
      welcomeMessage({
        session: this.id,
        heartbeatMs: l.heartbeatMs,
        authRequired: this.deps.authenticator.required,
        authTimeoutMs: l.authTimeoutMs,
        upstream: this.deps.upstreamLive() ? 'up' : 'down',
        limits: {
          maxSubscriptions: l.maxSubscriptions,
          messagesPerSecond: l.messagesPerSecond,
          messagesBurst: l.messagesBurst,
          maxFrameBytes: l.maxFrameBytes,
        },
      }),
    );
    if (this.deps.authenticator.required) {
      this.authTimer = setTimeout(() => {
        if (!this.authenticated) this.close(CloseCode.authTimeout, 'authentication timeout');
      }, l.authTimeoutMs);
      this.authTimer.unref();
    }
  }

  /** One frame from the client. Never throws. */
  onMessage(data: Buffer | string, isBinary: boolean): void {
    if (this.closed) return;
    this.deps.metrics?.clientMessage();
    const now = this.now();
    if (!this.bucket.take(now)) {
      if (this.floodBucket.take(now)) {
        this.sendError({ code: ErrorCode.rateLimited, message: 'too many messages: this one was ignored' });
      } else {
        this.close(CloseCode.flood, 'message flood');
      }
      return;
    }
    const binary = this.deps.encoding === 'proto';
    if (isBinary !== binary) {
      this.sendError({
        code: ErrorCode.badRequest,
        message: binary
          ? 'text frames are not part of tickmesh.v1.proto: send binary ClientMessage frames'
          : 'binary frames are not part of tickmesh.v1.json: send JSON text',
      });
      return;
    }
    const parsed = binary
      ? parseBinaryClientMessage(typeof data === 'string' ? Buffer.from(data) : data)
      : parseClientMessage(typeof data === 'string' ? data : data.toString('utf8'));
    if (!parsed.ok) {
      this.sendError(parsed.error);
      return;
    }
    this.handle(parsed.value);
  }

  /** The socket closed (either side). */
  onClose(): void {
    this.closed = true;
    this.clearTimers();
    this.deps.fanout.removeClient(this.client);
  }

  /** Closes with a code and reason (shutdown, limits). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    this.deps.fanout.removeClient(this.client);
    this.transport.close(code, reason);
  }

  private handle(op: ClientOp): void {
    if (op.op === 'auth') {
      this.auth(op.token, op.id);
      return;
    }
    if (!this.authenticated) {
      this.sendError({
        code: ErrorCode.notAuthenticated,
        message: this.authInFlight
          ? 'authentication in progress: wait for its reply'
          : 'send {"op":"auth","token":...} first',
        id: op.id,
      });
      return;
    }
    switch (op.op) {
      case 'ping':
        this.send(pongMessage(op.id, this.now()));
        return;
      case 'subscribe':
        this.subscribe(op.symbols, op.all, op.id);
        return;
      case 'unsubscribe':
        this.unsubscribe(op.symbols, op.all, op.id);
        return;
    }
  }

  private subscribe(symbols: string[], all: boolean, id: MessageId | undefined): void {
    const c = this.client;
    const adding = symbols.filter((s) => !c.symbols.has(s)).length + (all && !c.all ? 1 : 0);
    const max = this.deps.limits.maxSubscriptions;
    if (c.subscriptionCount + adding > max) {
      this.sendError({
        code: ErrorCode.tooManySymbols,
        message: `at most ${max} subscriptions per connection ("*" counts as one); ${c.subscriptionCount} held, ${adding} more asked`,
        id,
      });
      return;
    }
    // The reply names the whole subscription; the snapshot of what is new follows it.
    this.send(replyMessage('subscribe', id, { subscriptions: this.subscriptionList(symbols, all) }));
    this.deps.fanout.subscribe(c, symbols, all);
    if (!this.deps.upstreamLive()) this.send(upstreamDownMessage(this.now()));
  }

  private unsubscribe(symbols: string[], all: boolean, id: MessageId | undefined): void {
    this.deps.fanout.unsubscribe(this.client, symbols, all);
    this.send(replyMessage('unsubscribe', id, { subscriptions: this.subscriptionList([], false) }));
  }

  /** The subscription after adding `symbols`/`all`: "*" first, then symbols sorted. */
  private subscriptionList(symbols: readonly string[], all: boolean): string[] {
    const c = this.client;
    const set = new Set(c.symbols);
    for (const s of symbols) set.add(s);
    const list = [...set].sort();
    return c.all || all ? ['*', ...list] : list;
  }

  private auth(token: string, id: MessageId | undefined): void {
    if (this.authInFlight) {
      this.sendError({ code: ErrorCode.badRequest, message: 'an auth op is already being checked', id });
      return;
    }
    this.authInFlight = true;
    this.deps.authenticator.authenticate(token).then(
      (result) => {
        this.authInFlight = false;
        if (this.closed) return;
        if (result.ok) {
          this.deps.metrics?.authResult('ok');
          this.authenticated = true;
          this.principal = result.principal;
          if (this.authTimer) clearTimeout(this.authTimer);
          this.authTimer = undefined;
          this.scheduleExpiry(result.expiresAt);
          this.send(replyMessage('auth', id, { principal: result.principal }));
          return;
        }
        this.deps.metrics?.authResult(result.kind);
        if (result.kind === 'rejected') {
          this.sendError({
            code: ErrorCode.authFailed,
            message: `authentication failed: ${result.reason}`,
            id,
          });
          this.close(CloseCode.authFailed, 'authentication failed');
        } else {
          this.sendError({
            code: ErrorCode.authUnavailable,
            message: 'credentials cannot be checked now: retry later',
            id,
          });
          this.close(CloseCode.tryAgainLater, 'authentication unavailable');
        }
      },
      (err: unknown) => {
        // Authenticators resolve; this is a bug, never the client's fault.
        this.authInFlight = false;
        this.deps.logger.error({ err }, 'authenticator failed');
        this.close(CloseCode.internalError, 'internal error');
      },
    );
  }

  private scheduleExpiry(expiresAt: number | undefined): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (expiresAt === undefined) return;
    const inMs = expiresAt - this.now();
    if (inMs <= 0) {
      this.close(CloseCode.credentialsExpired, 'credentials expired');
      return;
    }
    if (inMs > MAX_TIMER_MS) return;
    this.expiryTimer = setTimeout(
      () => this.close(CloseCode.credentialsExpired, 'credentials expired'),
      inMs,
    );
    this.expiryTimer.unref();
  }

  private sendError(error: ProtocolError): void {
    this.deps.metrics?.clientError(error.code);
    this.send(errorMessage(error));
  }

  private send(text: string): void {
    if (this.closed) return;
    this.deps.fanout.sendDirect(this.client, OutFrame.text(text));
  }

  private clearTimers(): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.authTimer = undefined;
    this.expiryTimer = undefined;
  }
}
