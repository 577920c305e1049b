// The WebSocket endpoint /ws: upgrade checks (path, origin allowlist,
// subprotocol), connection limits per IP and in total, one Session per
// socket, protocol-level pings (the transport's read-lag probes) that drop
// dead peers, heartbeats to idle clients, connection lifetimes (1001 after a
// random share of maxConnectionAgeMs, so clients rebalance over new pods), and
// the shutdown that closes everyone with 1001.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { redactUrl, type Logger } from '@tickmesh/kit';
import type { Fanout } from './fanout.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import { lagProbeIntervalMs } from './lag-probe-pacing.js';
import { clientIp, ConnectionCounter } from './limits.js';
import { CloseCode, SUBPROTOCOL_PROTO, SUPPORTED_SUBPROTOCOLS, type Encoding } from './protocol.js';
import { Session, type SessionDeps } from './session.js';
import { WsTransport } from './ws-transport.js';

export interface WsEndpointOptions {
  path: string;
  allowedOrigins: string[];
  trustedProxyHops: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Connections are closed with 1001 after a lifetime drawn from [age/2, age]; 0: never. */
  maxConnectionAgeMs: number;
  maxFrameBytes: number;
  heartbeatMs: number;
  closeGraceMs: number;
  /** Least time between read-lag probes sent with data frames (ms); 0: only the liveness pings. */
  lagProbeIntervalMs: number;
  /** Read-lag probes per second over all clients; past it each client's interval widens (0: no bound). */
  lagProbesPerSecond: number;
  fanout: Fanout;
  sessionDeps: Omit<SessionDeps, 'fanout' | 'logger'>;
  metrics: GatewayMetrics;
  logger: Logger;
}

interface Connection {
  session: Session;
  transport: WsTransport;
  ip: string;
  /** performance.now() after which the connection is closed to rebalance; Infinity: never. */
  closeAtMs: number;
}

export class WsEndpoint {
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<WebSocket, Connection>();
  private readonly counter: ConnectionCounter;
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;
  private draining = false;
  /** The current per-client probe interval, recomputed as clients come and go (lag-probe-pacing.ts). */
  private probeIntervalMs = 0;

  constructor(private readonly opts: WsEndpointOptions) {
    this.counter = new ConnectionCounter(opts.maxConnectionsPerIp, opts.maxConnections);
    this.repaceProbes();
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: opts.maxFrameBytes,
      // A client that offers subprotocols must offer one of ours (the first we support, in our
      // order: JSON before binary); none offered means tickmesh.v1.json.
      handleProtocols: (offered) => SUPPORTED_SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    // Half the heartbeat: pings every other tick, heartbeats to clients idle for half an interval.
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.floor(opts.heartbeatMs / 2)));
    this.timer.unref();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Handles an HTTP upgrade request; anything but a valid /ws upgrade is refused with a status. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.opts.path) return this.refuse(socket, 404, 'Not Found', 'path');
    if (this.draining) return this.refuse(socket, 503, 'Service Unavailable', 'shutting-down');
    const origin = req.headers.origin;
    if (
      origin !== undefined &&
      this.opts.allowedOrigins.length > 0 &&
      !this.opts.allowedOrigins.includes(origin)
    ) {
      this.opts.logger.info({ origin }, 'WebSocket refused: origin not allowed');
      return this.refuse(socket, 403, 'Forbidden', 'origin');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  /** Closes every client with 1001 and waits (bounded) until they are gone. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.timer);
    for (const c of this.connections.values()) c.session.close(CloseCode.goingAway, 'server shutting down');
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const [ws] of this.connections) ws.terminate();
    this.wss.close();
  }

  private refuse(socket: Duplex, code: number, text: string, reason: string): void {
    this.opts.metrics.connectionsRejected.inc({ reason });
    socket.end(`HTTP/1.1 ${code} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const ip = clientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], this.opts.trustedProxyHops);
    const encoding: Encoding = ws.protocol === SUBPROTOCOL_PROTO ? 'proto' : 'json';
    const transport = new WsTransport(ws, {
      encoding,
      onEncodeFailure: () => this.opts.logger.error('a server message has no binary form: closing with 1011'),
      closeGraceMs: this.opts.closeGraceMs,
      probeIntervalMs: () => this.probeIntervalMs,
      onProbeAnswered: (ms) => this.opts.metrics.readLag(ms),
    });
    ws.on('error', (err) => this.opts.logger.debug({ err: err.message }, 'WebSocket error'));
    const verdict = this.draining ? 'shutting-down' : this.counter.tryAcquire(ip);
    if (verdict !== 'ok') {
      this.opts.metrics.connectionsRejected.inc({ reason: verdict });
      if (verdict === 'shutting-down') transport.close(CloseCode.goingAway, 'server shutting down');
      else transport.close(CloseCode.tooManyConnections, 'too many connections');
      return;
    }
    const id = randomBytes(9).toString('base64url');
    const session = new Session(id, transport, {
      ...this.opts.sessionDeps,
      encoding,
      fanout: this.opts.fanout,
      logger: this.opts.logger,
    });
    const age = this.opts.maxConnectionAgeMs;
    // Random between half and all of the age, so clients that connected together do not return together.
    // Monotonic: a wall-clock step must not close everyone at once.
    const closeAtMs = age > 0 ? performance.now() + age * (0.5 + Math.random() * 0.5) : Infinity;
    const conn: Connection = { session, transport, ip, closeAtMs };
    this.connections.set(ws, conn);
    this.repaceProbes();
    this.opts.metrics.connections.inc();
    this.opts.metrics.connectionsOpened.inc();
    ws.on('message', (data, isBinary) => session.onMessage(data as Buffer, isBinary));
    ws.once('close', (code) => {
      this.connections.delete(ws);
      this.repaceProbes();
      this.counter.release(ip);
      session.onClose();
      this.opts.metrics.connections.dec();
      this.opts.metrics.closes.inc({ code: String(code) });
      this.opts.logger.debug({ session: id, code }, 'WebSocket closed');
    });
    this.opts.logger.debug(
      { session: id, ip, url: redactUrl(req.url), protocol: ws.protocol || 'default' },
      'WebSocket opened',
    );
    session.start();
  }

  private repaceProbes(): void {
    const o = this.opts;
    this.probeIntervalMs = lagProbeIntervalMs(
      o.lagProbeIntervalMs,
      this.connections.size,
      o.lagProbesPerSecond,
    );
    o.metrics.lagProbeIntervalSeconds.set(this.probeIntervalMs / 1000);
  }

  private tick(): void {
    this.ticks++;
    // Protocol pings every other tick: a peer that has not answered one for two intervals is gone.
    const ping = this.ticks % 2 === 0;
    const ageOut = this.opts.maxConnectionAgeMs > 0 && !this.draining;
    if (ping || ageOut) {
      const now = performance.now();
      for (const c of this.connections.values()) {
        if (ping && c.transport.probe() >= 2 * this.opts.heartbeatMs) {
          this.opts.logger.debug({ session: c.session.id }, 'no pong: dropping the connection');
          c.transport.terminate();
        } else if (ageOut && now >= c.closeAtMs) {
          c.closeAtMs = Infinity; // once
          this.opts.metrics.lifetimeCloses.inc();
          c.session.close(CloseCode.goingAway, 'connection lifetime reached');
        }
      }
    }
    this.opts.fanout.heartbeat(this.opts.heartbeatMs / 2);
  }
}
