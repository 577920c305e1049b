// One way to call another service: `dns:///` targets with client-side
// round_robin over a headless Service, keepalive, a deadline on every unary
// call (never on streams), and retries of idempotent unary methods through
// the service config.
import {
  credentials as grpcCredentials,
  InterceptingCall,
  type ChannelCredentials,
  type Client,
  type ChannelOptions,
  type Interceptor,
} from '@grpc/grpc-js';
import type { ConfigOf, grpcClientConfig, jwtConfig } from '../config.js';
import { bearerTokenInterceptor } from './auth.js';
import { channelCredentials } from './tls.js';

export interface ClientOptions {
  /** Deadline applied to unary calls that set none. */
  unaryDeadlineMs: number;
  /** Fully-qualified service name, for the retry policy. */
  service: string;
  /** Idempotent methods that may be retried on UNAVAILABLE, e.g. ["GetQuote"]. */
  retryableMethods?: string[];
  credentials?: ChannelCredentials;
  /**
   * Longest wait between the channel's reconnect attempts (grpc-js default
   * 120 s, first wait 1 s): with the default, a server that was down for 7 s
   * is found again only ~2-3 s after it is back.
   */
  reconnectBackoffMaxMs?: number;
  /** Extra channel options (tests use them to shorten timers). */
  channelOptions?: ChannelOptions;
  /** Extra interceptors, e.g. bearerTokenInterceptor for GRPC_AUTH_MODE=jwt servers. */
  interceptors?: Interceptor[];
}

/** First wait before reconnecting a lost channel; grpc-js adds ±20% jitter and grows it 1.6× per attempt. */
const INITIAL_RECONNECT_BACKOFF_MS = 250;
/** Matches GRPC_CLIENT_RECONNECT_MAX_MS's default. */
const DEFAULT_RECONNECT_BACKOFF_MAX_MS = 2_000;

type ClientConstructor<C> = new (
  address: string,
  credentials: ChannelCredentials,
  options?: ChannelOptions,
) => C;

/** Adds `dns:///` to a bare host:port so the channel resolves every address behind a name. */
export function normalizeTarget(target: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(target) && !/^[^:/]+:\d+$/.test(target) ? target : `dns:///${target}`;
}

export function serviceConfig(service: string, retryableMethods: string[]): string {
  return JSON.stringify({
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig:
      retryableMethods.length === 0
        ? []
        : [
            {
              name: retryableMethods.map((method) => ({ service, method })),
              retryPolicy: {
                maxAttempts: 3,
                initialBackoff: '0.05s',
                maxBackoff: '0.5s',
                backoffMultiplier: 2,
                retryableStatusCodes: ['UNAVAILABLE'],
              },
            },
          ],
  });
}

/** Sets a deadline on unary and client-streaming calls that carry none. */
export function deadlineInterceptor(deadlineMs: number): Interceptor {
  return (options, nextCall) => {
    const streaming = options.method_definition.responseStream;
    if (!streaming && options.deadline === undefined) {
      return new InterceptingCall(nextCall({ ...options, deadline: Date.now() + deadlineMs }));
    }
    return new InterceptingCall(nextCall(options));
  };
}

/** The channel options every tickmesh client uses (exported for the tests). */
export function clientChannelOptions(opts: ClientOptions): ChannelOptions {
  const reconnectMax = opts.reconnectBackoffMaxMs ?? DEFAULT_RECONNECT_BACKOFF_MAX_MS;
  return {
    'grpc.service_config': serviceConfig(opts.service, opts.retryableMethods ?? []),
    'grpc.enable_retries': 1,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.dns_min_time_between_resolutions_ms': 5_000,
    'grpc.initial_reconnect_backoff_ms': Math.min(INITIAL_RECONNECT_BACKOFF_MS, reconnectMax),
    'grpc.max_reconnect_backoff_ms': reconnectMax,
    interceptors: [deadlineInterceptor(opts.unaryDeadlineMs), ...(opts.interceptors ?? [])],
    ...opts.channelOptions,
  };
}

export function createClient<C extends Client>(
  Ctor: ClientConstructor<C>,
  target: string,
  opts: ClientOptions,
): C {
  return new Ctor(
    normalizeTarget(target),
    opts.credentials ?? grpcCredentials.createInsecure(),
    clientChannelOptions(opts),
  );
}

/** Credentials and interceptors for calling tickmesh services, from grpcClientConfig + jwtConfig values. */
export function clientSecurity(
  config: ConfigOf<typeof grpcClientConfig> & Partial<ConfigOf<typeof jwtConfig>>,
  subject: string,
): Pick<ClientOptions, 'credentials' | 'interceptors'> {
  const security: Pick<ClientOptions, 'credentials' | 'interceptors'> = {
    credentials: channelCredentials({
      caFile: config.GRPC_CLIENT_TLS_CA_FILE,
      certFile: config.GRPC_CLIENT_TLS_CERT_FILE,
      keyFile: config.GRPC_CLIENT_TLS_KEY_FILE,
    }),
  };
  if (config.GRPC_CLIENT_SEND_JWT) {
    if (!config.GRPC_JWT_SECRET) throw new Error('GRPC_CLIENT_SEND_JWT needs GRPC_JWT_SECRET');
    security.interceptors = [
      bearerTokenInterceptor({
        secret: config.GRPC_JWT_SECRET,
        issuer: config.GRPC_JWT_ISSUER,
        audience: config.GRPC_JWT_AUDIENCE,
        subject,
      }),
    ];
  }
  return security;
}
