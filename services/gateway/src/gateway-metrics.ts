// Prometheus metrics of the gateway (served at /metrics with the process
// defaults of the kit registry). Counters are bumped once per fan-out pass with
// totals, never once per recipient, to keep the fan-out loop cheap.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FanoutMetrics } from './fanout.js';

export class GatewayMetrics implements FanoutMetrics {
  readonly connections: Gauge;
  readonly connectionsOpened: Counter;
  readonly connectionsRejected: Counter;
  readonly closes: Counter;
  readonly lifetimeCloses: Counter;
  readonly framesOut: Counter;
  readonly quotesOut: Counter;
  readonly conflatedUpdates: Counter;
  readonly slowClientCloses: Counter;
  readonly readLagSeconds: Histogram;
  readonly lagProbeIntervalSeconds: Gauge;
  readonly clientErrors: Counter;
  readonly clientMessages: Counter;
  readonly tickToSendSeconds: Histogram;
  readonly flushSeconds: Histogram;
  readonly flushWindowSeconds: Gauge;
  readonly upstreamConnected: Gauge;
  readonly upstreamBreaks: Counter;
  readonly upstreamRotations: Counter;
  readonly upstreamMessages: Counter;
  readonly resyncs: Counter;
  readonly authResults: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connections = new Gauge({
      name: 'tickmesh_gateway_connections',
      help: 'Open WebSocket connections',
      registers,
    });
    this.connectionsOpened = new Counter({
      name: 'tickmesh_gateway_connections_opened_total',
      help: 'WebSocket connections accepted',
      registers,
    });
    this.connectionsRejected = new Counter({
      name: 'tickmesh_gateway_connections_rejected_total',
      help: 'WebSocket connections refused, by reason (origin, per-ip, total, path, shutting-down)',
      labelNames: ['reason'],
      registers,
    });
    this.closes = new Counter({
      name: 'tickmesh_gateway_closes_total',
      help: 'WebSocket connections closed, by close code',
      labelNames: ['code'],
      registers,
    });
    this.lifetimeCloses = new Counter({
      name: 'tickmesh_gateway_lifetime_closes_total',
      help: 'WebSocket connections closed with 1001 because they reached their lifetime (MAX_CONNECTION_AGE_MS)',
      registers,
    });
    this.framesOut = new Counter({
      name: 'tickmesh_gateway_frames_sent_total',
      help: 'Quote frames handed to client sockets',
      registers,
    });
    this.quotesOut = new Counter({
      name: 'tickmesh_gateway_quotes_sent_total',
      help: 'Quotes delivered to clients (one per quote per recipient)',
      registers,
    });
    this.conflatedUpdates = new Counter({
      name: 'tickmesh_gateway_conflated_updates_total',
      help: 'Updates a slow client never got (replaced by a later update of the same symbol)',
      registers,
    });
    this.slowClientCloses = new Counter({
      name: 'tickmesh_gateway_slow_client_closes_total',
      help: 'Clients closed with 4008 (too slow), by reason (timeout, buffer)',
      labelNames: ['reason'],
      registers,
    });
    this.readLagSeconds = new Histogram({
      name: 'tickmesh_gateway_client_read_lag_seconds',
      help: 'Round trip of read-lag probes: how far behind clients read what the gateway wrote',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.lagProbeIntervalSeconds = new Gauge({
      name: 'tickmesh_gateway_lag_probe_interval_seconds',
      help: 'Current interval between read-lag probes to one client (widens past CLIENT_LAG_PROBES_PER_SECOND)',
      registers,
    });
    this.clientErrors = new Counter({
      name: 'tickmesh_gateway_client_errors_total',
      help: 'Error messages sent to clients, by code',
      labelNames: ['code'],
      registers,
    });
    this.clientMessages = new Counter({
      name: 'tickmesh_gateway_client_messages_total',
      help: 'Messages received from clients',
      registers,
    });
    this.tickToSendSeconds = new Histogram({
      name: 'tickmesh_gateway_tick_to_send_seconds',
      help: 'Now minus the quote event time when the fan-out pass that sent it to every client finished',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5],
      registers,
    });
    this.flushSeconds = new Histogram({
      name: 'tickmesh_gateway_flush_seconds',
      help: 'Time one fan-out pass took over all clients (frames handed to sockets; the turns it yielded not counted)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.flushWindowSeconds = new Gauge({
      name: 'tickmesh_gateway_flush_window_seconds',
      help: 'Current adaptive batching window',
      registers,
    });
    this.upstreamConnected = new Gauge({
      name: 'tickmesh_gateway_upstream_connected',
      help: '1 while the PriceService stream is live',
      registers,
    });
    this.upstreamBreaks = new Counter({
      name: 'tickmesh_gateway_upstream_breaks_total',
      help: 'Times the upstream stream broke (clients were told upstream_down)',
      registers,
    });
    this.upstreamRotations = new Counter({
      name: 'tickmesh_gateway_upstream_rotations_total',
      help: 'Upstream streams replaced make-before-break, by trigger (interval, connectivity, epoch)',
      labelNames: ['trigger'],
      registers,
    });
    this.upstreamMessages = new Counter({
      name: 'tickmesh_gateway_upstream_messages_total',
      help: 'Messages received from the PriceService stream, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.resyncs = new Counter({
      name: 'tickmesh_gateway_resnapshots_total',
      help: 'Times every client was re-snapshotted, by reason (epoch, upstream)',
      labelNames: ['reason'],
      registers,
    });
    this.authResults = new Counter({
      name: 'tickmesh_gateway_auth_total',
      help: 'Authentication attempts, by result (ok, rejected, unavailable)',
      labelNames: ['result'],
      registers,
    });
  }

  sent(frames: number, quotes: number): void {
    if (frames > 0) this.framesOut.inc(frames);
    if (quotes > 0) this.quotesOut.inc(quotes);
  }

  conflated(count: number): void {
    this.conflatedUpdates.inc(count);
  }

  readLag(ms: number): void {
    this.readLagSeconds.observe(ms / 1000);
  }

  slowClientClosed(reason: 'timeout' | 'buffer'): void {
    this.slowClientCloses.inc({ reason });
  }

  flushed(durationMs: number, windowMs: number): void {
    this.flushSeconds.observe(durationMs / 1000);
    this.flushWindowSeconds.set(windowMs / 1000);
  }

  tickToSend(ms: number): void {
    this.tickToSendSeconds.observe(Math.max(0, ms) / 1000);
  }
}
