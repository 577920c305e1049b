// Gateway configuration: every variable with its default and a one-line doc
// (`node services/gateway/src/main.ts --help` prints the table).
import {
  bool,
  commonConfig,
  int,
  list,
  loadConfig,
  oneOf,
  str,
  type ConfigOf,
  type ConfigSpec,
  grpcClientConfig,
  jwtConfig,
} from '@tickmesh/kit';

export const gatewayConfigSpec = {
  ...commonConfig,
  // TLS and service JWTs for the calls to PriceService and CustomerService.
  ...grpcClientConfig,
  ...jwtConfig,
  METRICS_PORT: {
    ...commonConfig.METRICS_PORT,
    doc: 'Optional extra port for /metrics, /healthz and /readyz (0: only on HTTP_PORT, where they always are)',
  },
  HTTP_HOST: { schema: str(), default: '0.0.0.0', doc: 'Bind address of the HTTP + WebSocket server' },
  HTTP_PORT: {
    schema: int(0, 65535),
    default: '8080',
    doc: 'Port of the HTTP + WebSocket server (/ws, /, /healthz, /readyz, /metrics)',
  },
  PRICE_SERVICE_TARGET: {
    schema: str().min(1),
    default: 'dns:///127.0.0.1:50052',
    doc: 'gRPC target of tickmesh.price.v1.PriceService (dns:/// + round_robin)',
  },
  CUSTOMER_SERVICE_TARGET: {
    schema: str().min(1),
    default: 'dns:///127.0.0.1:50053',
    doc: 'gRPC target of tickmesh.customer.v1.CustomerService (used only with AUTH_MODE=api-key)',
  },
  GRPC_UNARY_DEADLINE_MS: {
    schema: int(50, 60_000),
    default: '2000',
    doc: 'Deadline of unary upstream calls (VerifyApiKey, health)',
  },

  AUTH_MODE: {
    schema: oneOf('none', 'api-key', 'jwt'),
    default: 'none',
    doc: 'none (local development), api-key (verified by the customer service) or jwt (signed token)',
  },
  AUTH_TIMEOUT_MS: {
    schema: int(100, 120_000),
    default: '5000',
    doc: 'With auth on, the `auth` op must arrive within this (else close 4002)',
  },
  API_KEY_CACHE_TTL_MS: {
    schema: int(0, 3_600_000),
    default: '30000',
    doc: 'How long a verified API key is trusted without asking again',
  },
  API_KEY_NEGATIVE_TTL_MS: {
    schema: int(0, 3_600_000),
    default: '5000',
    doc: 'How long a rejected API key is remembered as rejected',
  },
  API_KEY_CACHE_SIZE: {
    schema: int(1, 1_000_000),
    default: '10000',
    doc: 'Most API-key verdicts kept (least recently used evicted)',
  },
  JWT_SECRET: {
    schema: str(),
    default: '',
    secret: true,
    doc: 'HMAC secret of HS256/384/512 tokens (AUTH_MODE=jwt, unless JWT_JWKS_URL)',
  },
  JWT_JWKS_URL: {
    schema: str(),
    default: '',
    doc: 'JWKS URL of asymmetric token keys (AUTH_MODE=jwt); used instead of JWT_SECRET when set',
  },
  JWT_ISSUER: { schema: str(), default: '', doc: 'Required `iss` of tokens (empty: not checked)' },
  JWT_AUDIENCE: { schema: str(), default: '', doc: 'Required `aud` of tokens (empty: not checked)' },
  JWT_CLOCK_TOLERANCE_S: {
    schema: int(0, 300),
    default: '5',
    doc: 'Clock skew tolerated on exp/nbf, in seconds',
  },

  ALLOWED_ORIGINS: {
    schema: list(),
    default: '',
    doc: 'Comma-separated browser origins allowed to open /ws (empty: all; requests without Origin are not browsers and pass)',
  },
  MAX_CONNECTIONS: {
    schema: int(1, 1_000_000),
    default: '20000',
    doc: 'WebSocket connections per process (beyond: close 4009)',
  },
  MAX_CONNECTION_AGE_MS: {
    schema: int(0, 7 * 86_400_000),
    default: '0',
    doc: 'Close each WebSocket with 1001 after a lifetime drawn between half and all of this, so clients reconnect through the load balancer and spread over new pods (0: never; checked every HEARTBEAT_MS / 2)',
  },
  MAX_CONNECTIONS_PER_IP: {
    schema: int(1, 1_000_000),
    default: '200',
    doc: 'WebSocket connections per client IP (beyond: close 4009)',
  },
  TRUSTED_PROXY_HOPS: {
    schema: int(0, 10),
    default: '0',
    doc: 'Proxies in front of the gateway whose X-Forwarded-For is trusted (0: use the socket address)',
  },
  MAX_SUBSCRIPTIONS_PER_CONNECTION: {
    schema: int(1, 100_000),
    default: '200',
    doc: 'Symbols one connection may follow ("*" counts as one)',
  },
  CLIENT_MESSAGES_PER_SECOND: {
    schema: int(1, 100_000),
    default: '20',
    doc: 'Sustained client messages per second (token bucket rate)',
  },
  CLIENT_MESSAGES_BURST: {
    schema: int(1, 100_000),
    default: '40',
    doc: 'Client messages allowed in a burst (token bucket size)',
  },
  CLIENT_FLOOD_TOLERANCE: {
    schema: int(1, 100_000),
    default: '20',
    doc: 'Rate-limited messages tolerated (refilled at 1/s) before the connection is closed with 4029',
  },
  MAX_FRAME_BYTES: {
    schema: int(128, 16 * 1024 * 1024),
    default: '4096',
    doc: 'Largest client message (beyond: close 1009)',
  },

  HEARTBEAT_MS: {
    schema: int(100, 300_000),
    default: '15000',
    doc: 'Heartbeat to idle clients and WebSocket ping interval (a peer silent for 2 intervals is dropped)',
  },
  CLIENT_HIGH_WATER_BYTES: {
    schema: int(1024, 1024 * 1024 * 1024),
    default: '262144',
    doc: 'Socket backlog above which a client gets conflated updates (latest per symbol) instead of every frame',
  },
  CLIENT_MAX_BUFFER_BYTES: {
    schema: int(1024, 1024 * 1024 * 1024),
    default: '4194304',
    doc: 'Socket backlog at which a client is closed with 4008 at once',
  },
  CLIENT_MAX_READ_LAG_MS: {
    schema: int(0, 600_000),
    default: '1000',
    doc: 'A client whose read-lag probe (a WebSocket ping) goes unanswered this long gets conflated updates until it answers; sees bytes stuck in kernel buffers that the backlog figure misses (0: off)',
  },
  CLIENT_LAG_PROBE_MS: {
    schema: int(0, 600_000),
    default: '1000',
    doc: 'Least time between read-lag probes sent with data frames, per client (0: only the liveness pings every HEARTBEAT_MS)',
  },
  CLIENT_LAG_PROBES_PER_SECOND: {
    schema: int(0, 1_000_000),
    default: '1000',
    doc: 'Read-lag probes per second over all clients: with more clients each client is probed less often than CLIENT_LAG_PROBE_MS, every clients/this seconds (0: no bound)',
  },
  SLOW_CLIENT_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '10000',
    doc: 'A client that stays behind (conflated) this long is closed with 4008',
  },
  SLOW_CLIENT_CLOSE_GRACE_MS: {
    schema: int(0, 60_000),
    default: '5000',
    doc: 'After a 4008/1001 close frame is queued, how long the client may take to read it before the socket is destroyed',
  },
  FANOUT_MAX_WINDOW_MS: {
    schema: int(0, 1000),
    default: '25',
    doc: 'Upper bound of the adaptive batching window',
  },
  FANOUT_WINDOW_FACTOR: {
    schema: int(0, 100),
    default: '0',
    doc: 'Extra wait between fan-out passes = this x the recent CPU time of a pass (fan-out then takes at most ~1/(1+factor) of a core, for larger frames and more latency); 0: the next pass starts as soon as the previous one ended (natural batching)',
  },
  FANOUT_SLICE_CLIENTS: {
    schema: int(1, 100_000),
    default: '128',
    doc: 'Clients a fan-out pass serves before it lets the event loop run (updates that arrive then reach the rest of the pass)',
  },
  FANOUT_MAX_PENDING: {
    schema: int(1, 1_000_000),
    default: '20000',
    doc: 'Updates held for the fan-out at most (reached: a whole pass runs at once)',
  },

  UPSTREAM_MAX_SYMBOLS: {
    schema: int(1, 1_000_000),
    default: '20000',
    doc: 'Most symbols mirrored from the price-cache (more are ignored and logged)',
  },
  UPSTREAM_CONNECT_TIMEOUT_MS: {
    schema: int(100, 600_000),
    default: '5000',
    doc: 'A new upstream stream must deliver its snapshot within this, else it is retried',
  },
  UPSTREAM_HEARTBEAT_TIMEOUT_FACTOR: {
    schema: int(2, 100),
    default: '3',
    doc: 'The upstream is broken when silent for this x its advertised heartbeat interval',
  },
  UPSTREAM_DEFAULT_HEARTBEAT_MS: {
    schema: int(100, 600_000),
    default: '5000',
    doc: 'Heartbeat interval assumed until the upstream advertises one',
  },
  UPSTREAM_ROTATE_INTERVAL_MS: {
    schema: int(0, 86_400_000),
    default: '15000',
    doc: 'Replace the upstream stream (make-before-break) this often; keep below the price-cache GRPC_MAX_CONNECTION_AGE_GRACE_MS; 0: only on connection ageing',
  },
  UPSTREAM_OVERLAP_MAX_MS: {
    schema: int(0, 600_000),
    default: '3000',
    doc: 'During a stream replacement, how long the old stream may still be needed to catch up with the new one',
  },
  UPSTREAM_BACKOFF_INITIAL_MS: {
    schema: int(1, 600_000),
    default: '200',
    doc: 'First reconnect backoff cap (full jitter)',
  },
  UPSTREAM_BACKOFF_MAX_MS: {
    schema: int(1, 600_000),
    default: '2000',
    doc: 'Largest reconnect backoff cap (full jitter): how late, at most, a returning price-cache is retried',
  },
  SERVE_STATIC: { schema: bool(), default: 'true', doc: 'Serve the live page at /' },
} satisfies ConfigSpec;

export type GatewayConfig = ConfigOf<typeof gatewayConfigSpec>;

export function loadGatewayConfig(): GatewayConfig {
  const config = loadConfig('gateway', gatewayConfigSpec);
  const problems = checkGatewayConfig(config);
  if (problems.length > 0) {
    process.stderr.write(`gateway: invalid configuration:\n  ${problems.join('\n  ')}\n`);
    process.exit(2);
  }
  return config;
}

/** Cross-variable rules that one schema per variable cannot express. */
export function checkGatewayConfig(config: GatewayConfig): string[] {
  const problems: string[] = [];
  if (config.AUTH_MODE === 'jwt' && config.JWT_SECRET === '' && config.JWT_JWKS_URL === '') {
    problems.push('AUTH_MODE=jwt needs JWT_SECRET or JWT_JWKS_URL');
  }
  if (config.AUTH_MODE === 'jwt' && config.JWT_JWKS_URL === '' && Buffer.byteLength(config.JWT_SECRET) < 32) {
    problems.push('JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key)');
  }
  if (config.JWT_JWKS_URL !== '' && !/^https?:\/\//.test(config.JWT_JWKS_URL)) {
    problems.push('JWT_JWKS_URL must be an http(s) URL');
  }
  if (config.CLIENT_MAX_BUFFER_BYTES <= config.CLIENT_HIGH_WATER_BYTES) {
    problems.push('CLIENT_MAX_BUFFER_BYTES must be above CLIENT_HIGH_WATER_BYTES');
  }
  if (config.UPSTREAM_BACKOFF_MAX_MS < config.UPSTREAM_BACKOFF_INITIAL_MS) {
    problems.push('UPSTREAM_BACKOFF_MAX_MS must be at least UPSTREAM_BACKOFF_INITIAL_MS');
  }
  for (const origin of config.ALLOWED_ORIGINS) {
    if (!/^https?:\/\/[^/]+$/.test(origin))
      problems.push(`ALLOWED_ORIGINS: ${origin} is not an origin (scheme://host[:port])`);
  }
  return problems;
}
