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
  /** Extra channel options (tests use them to shorten timers). */
  channelOptions?: ChannelOptions;
  /** Extra interceptors, e.g. bearerTokenInterceptor for GRPC_AUTH_MODE=jwt servers. */
  interceptors?: Interceptor[];
}

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

export function createClient<C extends Client>(
  Ctor: ClientConstructor<C>,
  target: string,
  opts: ClientOptions,
): C {
  const options: ChannelOptions = {
    'grpc.service_config': serviceConfig(opts.service, opts.retryableMethods ?? []),
    'grpc.enable_retries': 1,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.dns_min_time_between_resolutions_ms': 5_000,
    interceptors: [deadlineInterceptor(opts.unaryDeadlineMs), ...(opts.interceptors ?? [])],
    ...opts.channelOptions,
  };
  return new Ctor(normalizeTarget(target), opts.credentials ?? grpcCredentials.createInsecure(), options);
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
